//! VQLPIPSWithDiscriminator's autoencoder pass (taming `vqperceptual.py`, spec §4,
//! taming's `optimizer_idx == 0`): L1 + LPIPS reconstruction, the PatchGAN adversarial
//! term with taming's adaptive weight, and the codebook loss. The discriminator pass
//! (`optimizer_idx == 1`) is [`Discriminator::loss`], shared with the traditional path.
//!
//! The adaptive weight and the surrogate the trainer calls `backward` on come from
//! [`super::adaptive::balance`]: [`GeneratorOutput::backward_loss`] has taming's
//! autoencoder gradients but not its value; [`GeneratorOutput::total_loss`] is taming's
//! value.
//!
//! # Mixed precision
//! The trainer may call the passes inside a bf16 autocast region: the discriminator's
//! convs then run in bf16, LPIPS switches autocast off for itself, and every loss
//! value, gradient seed and the adaptive weight are computed in the loss dtype (the
//! logits are cast up before use; the remaining ops are elementwise or reductions,
//! which autocast leaves in fp32).

use tch::{Kind, Tensor};
use vqtok_config::LossParams;

use super::Split;
use super::adaptive::balance;
use super::calculator::{GeneratorOutput, Reconstruction};
use super::discriminator::Discriminator;
use super::error::LossError;
use super::log::LossLog;
use super::lpips::{Lpips, lpips_weights_path};
use super::options::LossOptions;

/// taming's VQLPIPSWithDiscriminator, generator side; holds the frozen LPIPS.
#[derive(Debug)]
pub struct VqLpipsWithDiscriminator {
    params: LossParams,
    perceptual: Option<Lpips>,
    kind: Kind,
}

impl VqLpipsWithDiscriminator {
    /// Loads LPIPS when `perceptual_weight > 0` (a missing weights file is an error).
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
        Ok(VqLpipsWithDiscriminator {
            params: params.clone(),
            perceptual,
            kind: opts.kind,
        })
    }

    /// The autoencoder pass.
    ///
    /// The reconstruction must come from the model forward with its graph (train), and
    /// `last_layer` be the decoder's final conv weight that produced it. Once `disc`
    /// is on, it runs in train mode for the train split (its running stats update) with
    /// its parameters frozen; before, it is not run and the adversarial term is 0.
    /// Without a gradient graph (validation under no_grad) the adaptive weight is 0, as
    /// in taming, and there is no `backward_loss`.
    pub fn generator_step(
        &self,
        r: &Reconstruction,
        global_step: u64,
        disc: Option<&Discriminator>,
        split: Split,
    ) -> Result<GeneratorOutput, LossError> {
        let _no_grad = (!split.is_train()).then(tch::no_grad_guard);
        let kind = self.kind;
        let p = &self.params;
        let x = r.inputs.detach().to_kind(kind);
        let xrec = r.recon.to_kind(kind);
        let zero = || Tensor::zeros([], (kind, x.device()));

        let rec = (&x - &xrec).abs();
        let (rec, p_loss) = match &self.perceptual {
            Some(lpips) => {
                let p_loss = lpips.forward(&x, &xrec);
                (rec + &p_loss * p.perceptual_weight, p_loss)
            }
            None => (rec, Tensor::zeros([1], (kind, x.device()))),
        };
        let nll = rec.mean(kind);
        let factor = disc.map_or(0.0, |d| d.factor(global_step));
        let quant = r.vq_loss.to_kind(kind).mean(kind);
        let g = disc
            .filter(|d| d.is_on(global_step))
            .map(|d| d.generator_loss(&xrec, split));

        let (d_weight, backward_loss) = match (&g, nll.requires_grad()) {
            (Some(g), true) => {
                let b = balance(
                    &nll,
                    g,
                    &xrec,
                    r.last_layer,
                    p.disc_weight,
                    factor,
                    &(&quant * p.codebook_weight),
                )?;
                (b.d_weight, Some(b.backward))
            }
            (None, true) => (zero(), Some(&nll + &quant * p.codebook_weight)),
            (_, false) => (zero(), None),
        };
        let g = g.unwrap_or_else(zero);
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
}
