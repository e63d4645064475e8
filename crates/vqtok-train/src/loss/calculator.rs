//! The seed's LossCalculator: picks the autoencoder loss for a model and owns the
//! discriminator, so the trainer runs one sequence on either path:
//! [`LossCalculator::generator_step`] → backward and the autoencoder's Adam →
//! [`LossCalculator::discriminator_step`] (D's own Adam, on D's steps).
//!
//! - Taming path (a taming model, unless `train_args.use_taming_loss` is false):
//!   taming's VQLPIPSWithDiscriminator ([`VqLpipsWithDiscriminator`]).
//! - Traditional path (VQ-VAE, VQ-VAE-2, or a taming model with `use_taming_loss:
//!   false`): [`TraditionalLoss`], with a discriminator only when `gan_weight > 0`.

use std::collections::HashMap;
use std::path::Path;

use tch::Tensor;
use vqtok_config::{Config, ModelConfig, ModelFamily};

use super::Split;
use super::discriminator::{
    Discriminator, DiscriminatorSpec, DiscriminatorState, Update, UpdateSettings,
};
use super::error::LossError;
use super::log::LossLog;
use super::options::LossOptions;
use super::traditional::TraditionalLoss;
use super::vqlpips::VqLpipsWithDiscriminator;

/// What one autoencoder forward hands the losses.
#[derive(Debug, Clone, Copy)]
pub struct Reconstruction<'a> {
    /// The model's input, normalised.
    pub inputs: &'a Tensor,
    /// The model's reconstruction, with its graph when training.
    pub recon: &'a Tensor,
    /// The quantizer loss (codebook + commitment), summed over levels.
    pub vq_loss: &'a Tensor,
    /// The decoder's final conv weight, for the adaptive GAN weight.
    pub last_layer: &'a Tensor,
}

/// Result of the autoencoder pass (taming's `optimizer_idx == 0`, the seed's
/// `compute_total_loss`).
#[derive(Debug)]
pub struct GeneratorOutput {
    /// What the trainer calls `backward` on (train split with a gradient graph only):
    /// its gradients w.r.t. the autoencoder equal those of the total loss; with the
    /// adversarial term on, its value does not (see `loss/adaptive.rs`). `None` when
    /// there is nothing to differentiate.
    pub backward_loss: Option<Tensor>,
    /// The total loss's value, detached.
    pub total_loss: Tensor,
    /// `{split}/total_loss, rec_loss, …` (taming's keys on the taming path).
    pub log: LossLog,
}

#[derive(Debug)]
enum Generator {
    Taming(VqLpipsWithDiscriminator),
    Traditional(TraditionalLoss),
}

/// The loss of a training run and its discriminator.
#[derive(Debug)]
pub struct LossCalculator {
    generator: Generator,
    discriminator: Option<Discriminator>,
}

impl LossCalculator {
    /// Taming loss for a taming model unless `train_args.use_taming_loss` is false;
    /// `true` with a non-taming model is a config error.
    pub fn new(config: &Config, opts: &LossOptions) -> Result<LossCalculator, LossError> {
        let is_taming = config.model.family() == ModelFamily::Taming;
        let taming = match config.train.use_taming_loss {
            Some(true) if !is_taming => {
                return Err(LossError::Config {
                    path: "train_args.use_taming_loss".into(),
                    message: "is true but the model is not a taming VQGAN, which alone owns \
                              the taming loss"
                        .into(),
                });
            }
            Some(flag) => flag,
            None => is_taming,
        };
        let generator = match &config.model {
            ModelConfig::Taming(args) if taming => Generator::Taming(
                VqLpipsWithDiscriminator::new(&args.lossconfig.params, opts)?,
            ),
            model => Generator::Traditional(TraditionalLoss::new(
                &config.train,
                model.output_channels(),
                opts,
            )?),
        };
        let discriminator = DiscriminatorSpec::from_config(config, taming)
            .map(|spec| Discriminator::new(&spec, opts))
            .transpose()?;
        Ok(LossCalculator {
            generator,
            discriminator,
        })
    }

    pub fn use_taming_loss(&self) -> bool {
        matches!(self.generator, Generator::Taming(_))
    }

    /// The discriminator, if the run has one.
    pub fn discriminator(&self) -> Option<&Discriminator> {
        self.discriminator.as_ref()
    }

    /// The autoencoder's loss at `step` (see [`GeneratorOutput`]).
    pub fn generator_step(
        &self,
        r: &Reconstruction,
        step: u64,
        split: Split,
    ) -> Result<GeneratorOutput, LossError> {
        let d = self.discriminator.as_ref();
        match &self.generator {
            Generator::Taming(l) => l.generator_step(r, step, d, split),
            Generator::Traditional(l) => l.generator_step(r, step, d, split),
        }
    }

    /// Updates the discriminator on `r`'s inputs and reconstruction (detached) when
    /// `step` is one of its steps, where the device flag `ok` holds (see
    /// [`Discriminator::update`]).
    pub fn discriminator_step(
        &mut self,
        r: &Reconstruction,
        step: u64,
        s: &UpdateSettings,
        ok: &Tensor,
    ) -> Result<Update, LossError> {
        match &mut self.discriminator {
            Some(d) => d.update(r.inputs, r.recon, step, s, ok),
            None => Ok(Update::NotDue),
        }
    }

    /// The discriminator's loss values for logging (validation), once it is on.
    pub fn discriminator_log(
        &self,
        r: &Reconstruction,
        step: u64,
        split: Split,
    ) -> Option<LossLog> {
        let d = self.discriminator.as_ref().filter(|d| d.is_on(step))?;
        Some(d.loss(r.inputs, r.recon, step, split).log)
    }

    /// The discriminator's share of a checkpoint (none without a discriminator).
    pub fn checkpoint_state(&self) -> Option<DiscriminatorState<'_>> {
        self.discriminator.as_ref().map(Discriminator::state)
    }

    /// Restores [`Self::checkpoint_state`]: the network from the checkpoint's model file
    /// tensors (`weights`, all of them; D's are picked by name) and the optimizer when
    /// given (validation needs only the weights). `source` names the file in errors.
    pub fn load_checkpoint_state(
        &mut self,
        weights: &HashMap<String, Tensor>,
        optimizer: Option<&HashMap<String, Tensor>>,
        source: &Path,
    ) -> Result<(), LossError> {
        match &mut self.discriminator {
            Some(d) => d.load(weights, optimizer, source),
            None => Ok(()),
        }
    }
}
