//! VQLPIPSWithDiscriminator (taming `vqperceptual.py`, spec §4): L1 + LPIPS
//! reconstruction, PatchGAN adversarial term with taming's adaptive weight, and the
//! codebook loss, for the autoencoder ("optimizer 0") and the discriminator
//! ("optimizer 1").
//!
//! The adaptive weight and the surrogate the trainer calls `backward` on come from
//! [`super::adaptive::balance`]: [`GeneratorOutput::backward_loss`] has taming's
//! autoencoder gradients but not its value; [`GeneratorOutput::total_loss`] is taming's
//! value.
//!
//! # Mixed precision
//! The trainer may call both passes inside a bf16 autocast region: the discriminator's
//! convs then run in bf16, LPIPS switches autocast off for itself, and every loss
//! value, gradient seed and the adaptive weight are computed in the loss dtype (the
//! logits are cast up before use; the remaining ops are elementwise or reductions,
//! which autocast leaves in fp32).

use std::collections::HashMap;

use tch::{Kind, Tensor};
use vqtok_config::LossParams;

use super::Split;
use super::adaptive::balance;
use super::disc_store::Discriminator;
use super::discriminator::DiscriminatorConfig;
use super::error::LossError;
use super::gan::{adopt_weight, d_loss, g_loss};
use super::log::LossLog;
use super::lpips::{Lpips, lpips_weights_path};
use super::options::LossOptions;

/// Result of the autoencoder pass.
#[derive(Debug)]
pub struct GeneratorOutput {
    /// What the trainer calls `backward` on (train split with a gradient graph only):
    /// its gradients w.r.t. the autoencoder equal those of taming's total loss; its
    /// value does not. `None` when there is nothing to differentiate.
    pub backward_loss: Option<Tensor>,
    /// taming's total loss value, detached.
    pub total_loss: Tensor,
    /// `{split}/total_loss, quant_loss, nll_loss, rec_loss, p_loss, d_weight,
    /// disc_factor, g_loss`.
    pub log: LossLog,
}

/// Result of the discriminator pass.
#[derive(Debug)]
pub struct DiscriminatorOutput {
    /// `disc_factor_eff · disc_loss(D(x), D(sg(x̂)))`, with a graph into the
    /// discriminator's parameters only.
    pub loss: Tensor,
    /// `{split}/disc_loss, logits_real, logits_fake`.
    pub log: LossLog,
}

/// taming's VQLPIPSWithDiscriminator; owns the discriminator and the frozen LPIPS.
#[derive(Debug)]
pub struct VqLpipsWithDiscriminator {
    params: LossParams,
    perceptual: Option<Lpips>,
    disc: Discriminator,
    kind: Kind,
}

impl VqLpipsWithDiscriminator {
    /// Builds the discriminator (fresh taming init) and, if `perceptual_weight > 0`,
    /// loads LPIPS (a missing weights file is an error).
    pub fn new(
        params: &LossParams,
        opts: &LossOptions,
    ) -> Result<VqLpipsWithDiscriminator, LossError> {
        let path = |k: &str| format!("model_args.lossconfig.params.{k}");
        if params.disc_conditional {
            return Err(LossError::Config {
                path: path("disc_conditional"),
                message: "must be false: a VQModel never passes a condition".into(),
            });
        }
        let perceptual = if params.perceptual_weight > 0.0 {
            if params.disc_in_channels != 3 {
                return Err(LossError::Config {
                    path: path("perceptual_weight"),
                    message: format!(
                        "LPIPS-VGG compares RGB images, but the reconstructions have {} \
                         channels (disc_in_channels); set perceptual_weight to 0",
                        params.disc_in_channels
                    ),
                });
            }
            let weights = lpips_weights_path(opts.lpips_weights.as_deref())?;
            Some(Lpips::load(&weights, opts.device, opts.kind)?)
        } else {
            None
        };
        let cfg = DiscriminatorConfig {
            in_channels: params.disc_in_channels,
            ndf: params.disc_ndf,
            n_layers: params.disc_num_layers,
            use_actnorm: params.use_actnorm,
        };
        Ok(VqLpipsWithDiscriminator {
            params: params.clone(),
            perceptual,
            disc: Discriminator::new(opts.device, opts.kind, &cfg)?,
            kind: opts.kind,
        })
    }

    /// The discriminator (its `VarStore` feeds the discriminator optimizer).
    pub fn discriminator(&self) -> &Discriminator {
        &self.disc
    }

    /// Loads `loss.discriminator.*` from a taming-named state dict (other keys ignored).
    pub fn load_discriminator(
        &self,
        named: &HashMap<String, Tensor>,
        source: &str,
    ) -> Result<(), LossError> {
        self.disc.load(named, source)
    }

    /// The autoencoder pass (taming's `optimizer_idx == 0`).
    ///
    /// `reconstructions` must come from the model forward with its graph (train), and
    /// `last_layer` is the decoder's final conv weight that produced them. D runs in
    /// train mode for the train split (its running stats update) with its parameters
    /// frozen. Without a gradient graph (validation under no_grad) the adaptive weight
    /// is 0, as in taming, and there is no `backward_loss`.
    pub fn generator_step(
        &self,
        codebook_loss: &Tensor,
        inputs: &Tensor,
        reconstructions: &Tensor,
        global_step: u64,
        last_layer: &Tensor,
        split: Split,
    ) -> Result<GeneratorOutput, LossError> {
        let _no_grad = (!split.is_train()).then(tch::no_grad_guard);
        let kind = self.kind;
        let p = &self.params;
        let x = inputs.detach().to_kind(kind);
        let xrec = reconstructions.to_kind(kind);

        let rec = (&x - &xrec).abs();
        let (rec, p_loss) = match &self.perceptual {
            Some(lpips) => {
                let p_loss = lpips.forward(&x, &xrec);
                (rec + &p_loss * p.perceptual_weight, p_loss)
            }
            None => (rec, Tensor::zeros([1], (kind, x.device()))),
        };
        let nll = rec.mean(kind);
        let logits_fake = self.disc.logits_frozen(&xrec, split.is_train());
        let g = g_loss(&logits_fake, kind);
        let factor = adopt_weight(p.disc_factor, global_step, p.disc_start);
        let quant = codebook_loss.to_kind(kind).mean(kind);

        let (d_weight, backward_loss) = if nll.requires_grad() {
            let b = balance(
                &nll,
                &g,
                &xrec,
                last_layer,
                p.disc_weight,
                factor,
                &(&quant * p.codebook_weight),
            )?;
            (b.d_weight, Some(b.backward))
        } else {
            (Tensor::zeros([], (kind, x.device())), None)
        };
        let total = (&nll + &d_weight * factor * &g + &quant * p.codebook_weight).detach();

        let mut log = LossLog::new();
        log.push(split, "total_loss", &total);
        log.push(split, "quant_loss", &quant);
        log.push(split, "nll_loss", &nll);
        log.push(split, "rec_loss", &rec);
        log.push(split, "p_loss", &p_loss);
        log.push(split, "d_weight", &d_weight);
        log.push(
            split,
            "disc_factor",
            &Tensor::from(factor).to_kind(kind).to_device(x.device()),
        );
        log.push(split, "g_loss", &g);
        Ok(GeneratorOutput {
            backward_loss,
            total_loss: total,
            log,
        })
    }

    /// The discriminator pass (taming's `optimizer_idx == 1`) on `inputs` and the
    /// generator pass's reconstructions, detached (project decision 1). D(x) then
    /// D(x̂) as two forwards, so train-mode BatchNorm normalises each separately.
    pub fn discriminator_step(
        &self,
        inputs: &Tensor,
        reconstructions: &Tensor,
        global_step: u64,
        split: Split,
    ) -> DiscriminatorOutput {
        let _no_grad = (!split.is_train()).then(tch::no_grad_guard);
        let kind = self.kind;
        let train = split.is_train();
        let real = self
            .disc
            .logits(&inputs.detach().to_kind(kind), train)
            .to_kind(kind);
        let fake = self
            .disc
            .logits(&reconstructions.detach().to_kind(kind), train)
            .to_kind(kind);
        let factor = adopt_weight(self.params.disc_factor, global_step, self.params.disc_start);
        let loss = d_loss(self.params.disc_loss, &real, &fake) * factor;
        let mut log = LossLog::new();
        log.push(split, "disc_loss", &loss);
        log.push(split, "logits_real", &real);
        log.push(split, "logits_fake", &fake);
        DiscriminatorOutput { loss, log }
    }
}
