//! The seed's LossCalculator: picks the loss for a model and, on the traditional
//! path (VQ-VAE / VQ-VAE-2, or a taming model with `use_taming_loss: false`), owns
//! its own perceptual loss, discriminator and discriminator optimizer.
//!
//! Taming path: the trainer gets the model's [`VqLpipsWithDiscriminator`] and two
//! optimizers ([`LossCalculator::get_taming_optimizers`]) and drives the generator
//! and discriminator passes itself.
//!
//! Traditional path, per batch: [`TraditionalCalculator::compute_total_loss`] →
//! `backward` on `total_loss` and the model's optimizer step →
//! [`TraditionalCalculator::step_discriminator`], which updates the discriminator on
//! the steps `step >= disc_start && step % disc_update_every == 0`.

use std::collections::HashMap;

use tch::{Kind, Tensor};
use vqtok_config::{Config, ModelConfig, ReconLoss, TraditionalLoss, TrainArgs};

use super::Split;
use super::adaptive::balance;
use super::disc_store::Discriminator;
use super::discriminator::DiscriminatorConfig;
use super::error::LossError;
use super::gan::{d_loss, g_loss};
use super::log::LossLog;
use super::lpips::{Lpips, lpips_weights_path};
use super::options::LossOptions;
use super::vqlpips::VqLpipsWithDiscriminator;
use crate::model::VqModel;
use crate::optim::{Adam, AdamConfig};

/// Checkpoint-key prefix of the traditional path's discriminator optimizer.
pub const OPTIMIZER_DISC_PREFIX: &str = "optimizer_disc.";

/// The loss of a training run.
#[derive(Debug)]
pub enum LossCalculator {
    /// A taming model's VQLPIPSWithDiscriminator, trained with two Adams.
    Taming {
        loss: VqLpipsWithDiscriminator,
        adam: AdamConfig,
    },
    /// Reconstruction (+ LPIPS, + GAN) with the discriminator managed here.
    Traditional(TraditionalCalculator),
}

impl LossCalculator {
    /// Taming loss for a taming model unless `train_args.use_taming_loss` is false;
    /// `true` with a non-taming model is a config error.
    pub fn new(
        config: &Config,
        model: &dyn VqModel,
        opts: &LossOptions,
    ) -> Result<LossCalculator, LossError> {
        let use_taming = match config.train.use_taming_loss {
            Some(true) if !model.is_taming() => {
                return Err(LossError::Config {
                    path: "train_args.use_taming_loss".into(),
                    message: "is true but the model is not a taming VQGAN, which alone owns \
                              the taming loss"
                        .into(),
                });
            }
            Some(flag) => flag,
            None => model.is_taming(),
        };
        if !use_taming {
            return Ok(LossCalculator::Traditional(TraditionalCalculator::new(
                &config.train,
                model.output_channels(),
                opts,
            )?));
        }
        let ModelConfig::Taming(args) = &config.model else {
            return Err(LossError::Config {
                path: "model_type".into(),
                message: "the model is a taming VQGAN but the config's model_args are not \
                          taming's (no lossconfig)"
                    .into(),
            });
        };
        Ok(LossCalculator::Taming {
            loss: VqLpipsWithDiscriminator::new(&args.lossconfig.params, opts)?,
            adam: AdamConfig::from_train_args(&config.train),
        })
    }

    pub fn use_taming_loss(&self) -> bool {
        matches!(self, LossCalculator::Taming { .. })
    }

    /// Taming path: (autoencoder Adam over `model.trainable_vars()`, discriminator
    /// Adam), both with `train_args` lr/betas/eps as in taming's
    /// `configure_optimizers`. `None` on the traditional path.
    pub fn get_taming_optimizers(&self, model: &dyn VqModel) -> Option<(Adam, Adam)> {
        match self {
            LossCalculator::Taming { loss, adam } => Some((
                Adam::new(model.trainable_vars(), *adam),
                Adam::new(
                    loss.discriminator().var_store().trainable_variables(),
                    *adam,
                ),
            )),
            LossCalculator::Traditional(_) => None,
        }
    }
}

/// What [`TraditionalCalculator::compute_total_loss`] returns.
#[derive(Debug)]
pub struct LossDict {
    /// What the trainer calls `backward` on (train split with a gradient graph only):
    /// its gradients equal those of `total_loss`; with the adversarial term on, its value
    /// does not (see [`super::adaptive`]). `None` when there is nothing to differentiate.
    pub backward_loss: Option<Tensor>,
    /// `recon_loss + perceptual_weight·p_loss + d_weight·g_loss + vq_loss`, detached.
    pub total_loss: Tensor,
    /// Mean L1 or MSE (config), detached.
    pub recon_loss: Tensor,
    /// Batch-mean LPIPS, detached (0 when perceptual_weight is 0).
    pub p_loss: Tensor,
    /// −mean(D(x̂)), detached (0 before disc_start or without discriminator).
    pub g_loss: Tensor,
    /// `gan_weight` × taming's adaptive weight at the decoder's last layer, detached (0
    /// before disc_start, without discriminator, or without a gradient graph).
    pub d_weight: Tensor,
    /// Mean quantizer loss, detached.
    pub vq_loss: Tensor,
    /// The same values under `{split}/…` keys.
    pub log: LossLog,
    /// x and x̂, detached, for [`TraditionalCalculator::step_discriminator`] (train
    /// split with a discriminator only).
    gan_inputs: Option<(Tensor, Tensor)>,
}

#[derive(Debug)]
struct Gan {
    disc: Discriminator,
    opt: Adam,
}

/// The traditional path's losses and discriminator.
#[derive(Debug)]
pub struct TraditionalCalculator {
    cfg: TraditionalLoss,
    disc_update_every: u64,
    perceptual: Option<Lpips>,
    /// Present when `gan_weight > 0`.
    gan: Option<Gan>,
    kind: Kind,
}

impl TraditionalCalculator {
    /// `output_channels` is the reconstruction's channel count (the model's).
    pub fn new(
        train: &TrainArgs,
        output_channels: usize,
        opts: &LossOptions,
    ) -> Result<TraditionalCalculator, LossError> {
        let cfg = train.traditional_loss.clone();
        let perceptual = if cfg.perceptual_weight > 0.0 {
            if output_channels != 3 {
                return Err(LossError::Config {
                    path: "train_args.traditional_loss.perceptual_weight".into(),
                    message: format!(
                        "LPIPS-VGG compares RGB images, but the model reconstructs \
                         {output_channels} channels; set perceptual_weight to 0"
                    ),
                });
            }
            let weights = lpips_weights_path(opts.lpips_weights.as_deref())?;
            Some(Lpips::load(&weights, opts.device, opts.kind)?)
        } else {
            None
        };
        let gan = if cfg.gan_weight > 0.0 {
            let dcfg = DiscriminatorConfig {
                in_channels: output_channels,
                ndf: cfg.disc_ndf,
                n_layers: cfg.disc_num_layers,
                use_actnorm: false,
            };
            let disc = Discriminator::new(opts.device, opts.kind, &dcfg)?;
            let opt = Adam::new(
                disc.var_store().trainable_variables(),
                AdamConfig::from_train_args(train),
            );
            Some(Gan { disc, opt })
        } else {
            None
        };
        Ok(TraditionalCalculator {
            cfg,
            disc_update_every: train.disc_update_every,
            perceptual,
            gan,
            kind: opts.kind,
        })
    }

    /// The discriminator, if `gan_weight > 0`.
    pub fn discriminator(&self) -> Option<&Discriminator> {
        self.gan.as_ref().map(|g| &g.disc)
    }

    /// The autoencoder's loss. The adversarial term uses D in train mode (train split)
    /// with D's parameters frozen, from `disc_start` on; before that D is not run. Its
    /// weight is `gan_weight` times taming's adaptive weight at `last_layer` (the
    /// decoder's final conv weight), so the GAN gradient never swamps the reconstruction
    /// gradient (the seed hands its LossCalculator the decoder for this).
    pub fn compute_total_loss(
        &self,
        images: &Tensor,
        reconstructions: &Tensor,
        vq_loss: &Tensor,
        last_layer: &Tensor,
        step: u64,
        split: Split,
    ) -> Result<LossDict, LossError> {
        let _no_grad = (!split.is_train()).then(tch::no_grad_guard);
        let kind = self.kind;
        let x = images.detach().to_kind(kind);
        let xrec = reconstructions.to_kind(kind);
        let zero = || Tensor::zeros([], (kind, x.device()));
        let diff = &x - &xrec;
        let recon_loss = match self.cfg.recon_loss {
            ReconLoss::L1 => diff.abs().mean(kind),
            ReconLoss::Mse => diff.square().mean(kind),
        };
        let p_loss = match &self.perceptual {
            Some(lpips) => lpips.forward(&x, &xrec).mean(kind),
            None => zero(),
        };
        let vq = vq_loss.to_kind(kind).mean(kind);
        let nll = &recon_loss + &p_loss * self.cfg.perceptual_weight;
        let g = match &self.gan {
            Some(gan) if step >= self.cfg.disc_start => Some(g_loss(
                &gan.disc.logits_frozen(&xrec, split.is_train()),
                kind,
            )),
            _ => None,
        };
        let (d_weight, backward_loss) = match (&g, nll.requires_grad()) {
            (Some(g), true) => {
                let b = balance(&nll, g, &xrec, last_layer, self.cfg.gan_weight, 1.0, &vq)?;
                (b.d_weight, Some(b.backward))
            }
            (None, true) => (zero(), Some(&nll + &vq)),
            (_, false) => (zero(), None),
        };
        let g = g.unwrap_or_else(zero);
        let total = (&nll + &d_weight * &g + &vq).detach();

        let mut log = LossLog::new();
        log.push(split, "total_loss", &total);
        log.push(split, "recon_loss", &recon_loss);
        log.push(split, "p_loss", &p_loss);
        log.push(split, "g_loss", &g);
        log.push(split, "d_weight", &d_weight);
        log.push(split, "vq_loss", &vq);
        let gan_inputs = (self.gan.is_some() && split.is_train()).then(|| (x, xrec.detach()));
        Ok(LossDict {
            backward_loss,
            total_loss: total,
            recon_loss: recon_loss.detach(),
            p_loss: p_loss.detach(),
            g_loss: g.detach(),
            d_weight,
            vq_loss: vq.detach(),
            log,
            gan_inputs,
        })
    }

    /// True on the steps the discriminator is updated.
    pub fn is_disc_step(&self, step: u64) -> bool {
        self.gan.is_some()
            && step >= self.cfg.disc_start
            && step.is_multiple_of(self.disc_update_every)
    }

    /// Updates the discriminator on `loss`'s x and x̂ (detached) when
    /// [`Self::is_disc_step`]: D(x), D(x̂) in train mode, the configured D loss,
    /// zero_grad, backward, Adam step. Returns the `train/disc_loss`, `logits_real`,
    /// `logits_fake` log of an update, `None` otherwise.
    pub fn step_discriminator(
        &mut self,
        loss: &LossDict,
        step: u64,
    ) -> Result<Option<LossLog>, LossError> {
        if !self.is_disc_step(step) {
            return Ok(None);
        }
        let (Some(gan), Some((x, xrec))) = (&mut self.gan, &loss.gan_inputs) else {
            return Ok(None);
        };
        let real = gan.disc.logits(x, true).to_kind(self.kind);
        let fake = gan.disc.logits(xrec, true).to_kind(self.kind);
        let d = d_loss(self.cfg.disc_loss, &real, &fake);
        gan.opt.zero_grad();
        d.f_backward()?;
        gan.opt.step();
        let mut log = LossLog::new();
        log.push(Split::Train, "disc_loss", &d);
        log.push(Split::Train, "logits_real", &real);
        log.push(Split::Train, "logits_fake", &fake);
        Ok(Some(log))
    }

    /// The discriminator's variables (`loss.discriminator.*`) and its optimizer's state
    /// (`optimizer_disc.*`), as copies; empty without a discriminator.
    pub fn get_checkpoint_state(&self) -> Vec<(String, Tensor)> {
        let Some(gan) = &self.gan else {
            return Vec::new();
        };
        let mut state = gan.disc.state();
        state.extend(
            gan.opt
                .state_dict()
                .into_iter()
                .map(|(k, v)| (format!("{OPTIMIZER_DISC_PREFIX}{k}"), v)),
        );
        state
    }

    /// Restores [`Self::get_checkpoint_state`] from a checkpoint's tensors (other keys
    /// are ignored); every discriminator and optimizer key must be there.
    pub fn load_checkpoint_state(
        &mut self,
        named: &HashMap<String, Tensor>,
        source: &str,
    ) -> Result<(), LossError> {
        let Some(gan) = &mut self.gan else {
            return Ok(());
        };
        gan.disc.load(named, source)?;
        let opt_state: HashMap<String, Tensor> = named
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(OPTIMIZER_DISC_PREFIX)
                    .map(|k| (k.to_string(), v.shallow_clone()))
            })
            .collect();
        gan.opt.load_state_dict(&opt_state).map_err(|e| {
            let crate::optim::OptimError::State { key, message } = e;
            LossError::weights(source, &format!("{OPTIMIZER_DISC_PREFIX}{key}"), message)
        })
    }
}
