//! The traditional path's autoencoder loss (the seed's LossCalculator for VQ-VAE and
//! VQ-VAE-2, or a taming model with `use_taming_loss: false`): L1 or MSE reconstruction,
//! optional LPIPS, the quantizer loss, and, from `disc_start`, the PatchGAN term weighted
//! by `gan_weight` times taming's adaptive weight at the decoder's last layer (the seed
//! hands its LossCalculator the decoder for this), so the GAN gradient never swamps the
//! reconstruction gradient.

use tch::{Kind, Tensor};
use vqtok_config::{ReconLoss, TrainArgs};

use super::Split;
use super::adaptive::balance;
use super::calculator::{GeneratorOutput, Reconstruction};
use super::discriminator::Discriminator;
use super::error::LossError;
use super::log::LossLog;
use super::lpips::{Lpips, lpips_weights_path};
use super::options::LossOptions;

#[derive(Debug)]
pub struct TraditionalLoss {
    recon: ReconLoss,
    perceptual_weight: f64,
    gan_weight: f64,
    perceptual: Option<Lpips>,
    kind: Kind,
}

impl TraditionalLoss {
    /// `output_channels` is the reconstruction's channel count (the model's).
    pub fn new(
        train: &TrainArgs,
        output_channels: usize,
        opts: &LossOptions,
    ) -> Result<TraditionalLoss, LossError> {
        let cfg = &train.traditional_loss;
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
        Ok(TraditionalLoss {
            recon: cfg.recon_loss,
            perceptual_weight: cfg.perceptual_weight,
            gan_weight: cfg.gan_weight,
            perceptual,
            kind: opts.kind,
        })
    }

    /// `rec_loss + perceptual_weight·p_loss + d_weight·g_loss + vq_loss`, where
    /// `rec_loss` is the configured L1 or MSE and `d_weight` is 0 until `disc` is on.
    pub fn generator_step(
        &self,
        r: &Reconstruction,
        step: u64,
        disc: Option<&Discriminator>,
        split: Split,
    ) -> Result<GeneratorOutput, LossError> {
        let _no_grad = (!split.is_train()).then(tch::no_grad_guard);
        let kind = self.kind;
        let x = r.inputs.detach().to_kind(kind);
        let xrec = r.recon.to_kind(kind);
        let zero = || Tensor::zeros([], (kind, x.device()));
        let diff = &x - &xrec;
        let rec_loss = match self.recon {
            ReconLoss::L1 => diff.abs().mean(kind),
            ReconLoss::Mse => diff.square().mean(kind),
        };
        let p_loss = match &self.perceptual {
            Some(lpips) => lpips.forward(&x, &xrec).mean(kind),
            None => zero(),
        };
        let vq = r.vq_loss.to_kind(kind).mean(kind);
        let nll = &rec_loss + &p_loss * self.perceptual_weight;
        let g = disc
            .filter(|d| d.is_on(step))
            .map(|d| d.generator_loss(&xrec, split));
        let (d_weight, backward_loss) = match (&g, nll.requires_grad()) {
            (Some(g), true) => {
                let b = balance(&nll, g, &xrec, r.last_layer, self.gan_weight, 1.0, &vq)?;
                (b.d_weight, Some(b.backward))
            }
            (None, true) => (zero(), Some(&nll + &vq)),
            (_, false) => (zero(), None),
        };
        let g = g.unwrap_or_else(zero);
        let total = (&nll + &d_weight * &g + &vq).detach();

        let mut log = LossLog::new();
        log.push(split, "total_loss", &total);
        log.push(split, "rec_loss", &rec_loss);
        log.push(split, "p_loss", &p_loss);
        log.push(split, "g_loss", &g);
        log.push(split, "d_weight", &d_weight);
        log.push(split, "vq_loss", &vq);
        Ok(GeneratorOutput {
            backward_loss,
            total_loss: total,
            log,
        })
    }
}
