//! The discriminator, in one place for both loss paths: the PatchGAN network in its own
//! `VarStore` (variables `loss.discriminator.main.N.*`, as in a taming checkpoint), its
//! Adam, the rule that says when it takes part (`disc_start`, every `disc_update_every`
//! steps), its loss, and its checkpoint state.
//!
//! Its own `VarStore` keeps its parameters out of the autoencoder's optimizer, and the
//! generator pass reads its logits with the parameters frozen (PL's toggle_optimizer,
//! spec §1.6). Before `disc_start` it is not run at all: taming computes its losses times
//! 0 there (project decision 7 in ARCHITECTURE.md).

mod act_norm;
mod batch_norm;
mod gan;
mod nlayer;

use std::collections::HashMap;
use std::path::Path;

use tch::nn::VarStore;
use tch::{Kind, Tensor};
use vqtok_config::{Config, DiscLoss, LossParams, ModelConfig};

pub use gan::{adopt_weight, d_loss, g_loss, hinge_d_loss, vanilla_d_loss};
pub use nlayer::{DiscriminatorConfig, NLayerDiscriminator};

use super::Split;
use super::error::LossError;
use super::log::LossLog;
use super::options::LossOptions;
use crate::dist;
use crate::optim::{Adam, AdamConfig, OptimError};
use crate::state_dict::{LoadOptions, load_named};
use crate::train::failpoints;

/// Variable-name prefix of the discriminator (taming's `loss.discriminator`).
pub const DISCRIMINATOR_PREFIX: &str = "loss.discriminator";

/// Everything a discriminator is built from, whichever loss path configures it.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscriminatorSpec {
    pub net: DiscriminatorConfig,
    pub loss: DiscLoss,
    /// First step at which the adversarial term counts and D is updated.
    pub start: u64,
    /// D is updated on steps that are multiples of this.
    pub every: u64,
    /// taming's `disc_factor` (1 on the traditional path).
    pub factor: f64,
    pub adam: AdamConfig,
}

impl DiscriminatorSpec {
    /// The discriminator `config` trains with on the given path, or `None` when it has
    /// none (the traditional path with `gan_weight` 0).
    pub fn from_config(config: &Config, taming_loss: bool) -> Option<DiscriminatorSpec> {
        let t = &config.train;
        let adam = AdamConfig::from_train_args(t);
        match &config.model {
            ModelConfig::Taming(a) if taming_loss => Some(DiscriminatorSpec::taming(
                &a.lossconfig.params,
                t.disc_update_every,
                adam,
            )),
            _ => {
                let l = &t.traditional_loss;
                (l.gan_weight > 0.0).then(|| DiscriminatorSpec {
                    net: DiscriminatorConfig {
                        in_channels: config.model.output_channels(),
                        ndf: l.disc_ndf,
                        n_layers: l.disc_num_layers,
                        use_actnorm: false,
                    },
                    loss: l.disc_loss,
                    start: l.disc_start,
                    every: t.disc_update_every,
                    factor: 1.0,
                    adam,
                })
            }
        }
    }
}

impl DiscriminatorSpec {
    /// taming's discriminator: `lossconfig.params`, updated every `every` steps.
    pub fn taming(p: &LossParams, every: u64, adam: AdamConfig) -> DiscriminatorSpec {
        DiscriminatorSpec {
            net: DiscriminatorConfig {
                in_channels: p.disc_in_channels,
                ndf: p.disc_ndf,
                n_layers: p.disc_num_layers,
                use_actnorm: p.use_actnorm,
            },
            loss: p.disc_loss,
            start: p.disc_start,
            every,
            factor: p.disc_factor,
            adam,
        }
    }
}

/// Per-update settings the trainer decides (the schedule's lr, clipping).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpdateSettings {
    pub lr: f64,
    pub grad_clip: Option<f64>,
}

/// What [`Discriminator::update`] did.
#[derive(Debug)]
pub enum Update {
    /// Not one of its steps.
    NotDue,
    /// Its step ran: `train/disc_loss`, `logits_real`, `logits_fake`, and whether the
    /// update was applied (0-dim bool on the device: false when its loss or the
    /// generator's was not finite, and then no weight or moment changed).
    Done { log: LossLog, applied: Tensor },
}

/// The discriminator pass's value (taming's `optimizer_idx == 1`).
#[derive(Debug)]
pub struct DiscriminatorOutput {
    /// `factor · disc_loss(D(x), D(sg(x̂)))`, with a graph into D's parameters only.
    pub loss: Tensor,
    /// `{split}/disc_loss, logits_real, logits_fake`.
    pub log: LossLog,
}

/// A checkpoint's share of the discriminator.
#[derive(Debug)]
pub struct DiscriminatorState<'a> {
    /// The network (parameters and BatchNorm statistics), named `loss.discriminator.*`.
    pub weights: &'a VarStore,
    /// Its Adam (`{i}.step`, `{i}.exp_avg`, `{i}.exp_avg_sq`).
    pub optimizer: Vec<(String, Tensor)>,
}

#[derive(Debug)]
pub struct Discriminator {
    vs: VarStore,
    net: NLayerDiscriminator,
    opt: Adam,
    spec: DiscriminatorSpec,
    kind: Kind,
}

/// Casts the floating-point variables only (BatchNorm's `num_batches_tracked` stays
/// int64, ActNorm's `initialized` stays uint8).
fn set_float_kind(vs: &mut VarStore, kind: Kind) -> Result<(), LossError> {
    match kind {
        Kind::Float => vs.float(),
        Kind::Double => vs.double(),
        Kind::Half => vs.half(),
        Kind::BFloat16 => vs.bfloat16(),
        other => {
            return Err(LossError::Config {
                path: "LossOptions.kind".into(),
                message: format!("the losses need a floating-point dtype, got {other:?}"),
            });
        }
    }
    Ok(())
}

impl Discriminator {
    /// A freshly initialised discriminator (taming's `weights_init`) and its Adam.
    pub fn new(spec: &DiscriminatorSpec, opts: &LossOptions) -> Result<Discriminator, LossError> {
        let kind = opts.kind;
        let mut vs = VarStore::new(opts.device);
        let mut p = vs.root();
        for part in DISCRIMINATOR_PREFIX.split('.') {
            p = p.sub(part);
        }
        let net = NLayerDiscriminator::new(p, &spec.net);
        set_float_kind(&mut vs, kind)?;
        let opt = Adam::new(vs.trainable_variables(), spec.adam);
        Ok(Discriminator {
            vs,
            net,
            opt,
            spec: spec.clone(),
            kind,
        })
    }

    pub fn spec(&self) -> &DiscriminatorSpec {
        &self.spec
    }

    pub fn var_store(&self) -> &VarStore {
        &self.vs
    }

    /// What its forwards change in place before the step knows whether its losses are
    /// finite: BatchNorm's running statistics, and with ActNorm its data-dependent init,
    /// which writes parameters too (then every variable). Its Adam changes the rest.
    pub fn statistics(&self) -> Vec<Tensor> {
        if self.spec.net.use_actnorm {
            self.vs.variables().into_values().collect()
        } else {
            self.buffers()
        }
    }

    /// What its forwards update in place that no optimizer owns: BatchNorm's running
    /// statistics (and ActNorm's init state). A data-parallel job takes rank 0's before
    /// each step, as PyTorch DDP's default `broadcast_buffers=True` does.
    /// Sorted by name: every rank lists them in the same order.
    pub fn buffers(&self) -> Vec<Tensor> {
        let mut named: Vec<(String, Tensor)> = self
            .vs
            .variables()
            .into_iter()
            .filter(|(_, t)| !t.requires_grad())
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named.into_iter().map(|(_, t)| t).collect()
    }

    /// From `disc_start` on, the adversarial term counts and D runs.
    pub fn is_on(&self, step: u64) -> bool {
        step >= self.spec.start
    }

    /// The steps D is updated on.
    pub fn updates_at(&self, step: u64) -> bool {
        self.is_on(step) && step.is_multiple_of(self.spec.every)
    }

    /// taming's `adopt_weight(disc_factor, step, disc_start)`.
    pub fn factor(&self, step: u64) -> f64 {
        adopt_weight(self.spec.factor, step, self.spec.start)
    }

    /// Patch logits; `train` = batch statistics and running-stat updates. Runs under
    /// the caller's autocast state (bf16 convs inside a mixed-precision region).
    pub fn logits(&self, x: &Tensor, train: bool) -> Tensor {
        self.net.forward_t(x, train)
    }

    /// Logits with D's parameters frozen for this forward, so that a generator loss built
    /// on them sends gradients through D to its input but never into D's `.grad`.
    pub fn logits_frozen(&self, x: &Tensor, train: bool) -> Tensor {
        let params = self.vs.trainable_variables();
        let was: Vec<bool> = params.iter().map(Tensor::requires_grad).collect();
        for p in &params {
            let _ = p.set_requires_grad(false);
        }
        let out = self.logits(x, train);
        for (p, r) in params.iter().zip(was) {
            let _ = p.set_requires_grad(r);
        }
        out
    }

    /// The generator's adversarial loss −mean(D(x̂)) in the loss dtype (D in train mode
    /// for the train split, parameters frozen).
    pub fn generator_loss(&self, xrec: &Tensor, split: Split) -> Tensor {
        g_loss(&self.logits_frozen(xrec, split.is_train()), self.kind)
    }

    /// The discriminator pass on `inputs` and the generator pass's reconstructions,
    /// detached (project decision 1): D(x) then D(x̂) as two forwards, so train-mode
    /// BatchNorm normalises each separately.
    pub fn loss(
        &self,
        inputs: &Tensor,
        reconstructions: &Tensor,
        step: u64,
        split: Split,
    ) -> DiscriminatorOutput {
        let _no_grad = (!split.is_train()).then(tch::no_grad_guard);
        let train = split.is_train();
        let logits = |t: &Tensor| {
            self.logits(&t.detach().to_kind(self.kind), train)
                .to_kind(self.kind)
        };
        let (real, fake) = (logits(inputs), logits(reconstructions));
        let loss = d_loss(self.spec.loss, &real, &fake) * self.factor(step);
        let mut log = LossLog::new();
        log.push(split, "disc_loss", &loss);
        log.push(split, "logits_real", &real);
        log.push(split, "logits_fake", &fake);
        DiscriminatorOutput { loss, log }
    }

    /// On its steps ([`Self::updates_at`]): the train-split [`Self::loss`], zero_grad,
    /// backward, optional clipping, Adam at the schedule's lr — applied where `ok` (the
    /// generator step's device flag) holds and this loss is finite on every rank, decided
    /// on the device: otherwise nothing changes.
    pub fn update(
        &mut self,
        inputs: &Tensor,
        reconstructions: &Tensor,
        step: u64,
        s: &UpdateSettings,
        ok: &Tensor,
    ) -> Result<Update, LossError> {
        if !self.updates_at(step) || failpoints::fires_at("disc-skip-update", step) {
            return Ok(Update::NotDue);
        }
        let mut d = self.loss(inputs, reconstructions, step, Split::Train);
        if failpoints::fires_at("disc-nan-loss", step) {
            d.loss = &d.loss * f64::NAN;
        }
        let applied = ok.logical_and(&dist::finite_everywhere(&d.loss));
        self.opt.zero_grad();
        d.loss.f_backward()?;
        dist::average(&self.opt.grad_buffers());
        if let Some(c) = s.grad_clip {
            let _ = self.opt.clip_grad_norm(c);
        }
        self.opt.set_lr(s.lr);
        self.opt.step_if(&applied);
        Ok(Update::Done {
            log: d.log,
            applied,
        })
    }

    /// The network and its optimizer as a checkpoint stores them.
    pub fn state(&self) -> DiscriminatorState<'_> {
        DiscriminatorState {
            weights: &self.vs,
            optimizer: self.opt.state_dict(),
        }
    }

    /// Restores the network from `weights` (a checkpoint's model file: its
    /// `loss.discriminator.*` tensors, other keys ignored) and, when given, the optimizer.
    /// `source` names the file in errors.
    pub fn load(
        &mut self,
        weights: &HashMap<String, Tensor>,
        optimizer: Option<&HashMap<String, Tensor>>,
        source: &Path,
    ) -> Result<(), LossError> {
        let opts = LoadOptions {
            select_prefix: Some(format!("{DISCRIMINATOR_PREFIX}.")),
            ..LoadOptions::default()
        };
        load_named(&self.vs, weights, source, &opts)?;
        if let Some(state) = optimizer {
            self.opt.load_state_dict(state).map_err(|e| {
                let OptimError::State { key, message } = e;
                LossError::weights(&source.display().to_string(), &key, message)
            })?;
        }
        Ok(())
    }
}
