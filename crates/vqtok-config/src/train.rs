//! `train_args`: the optimisation loop (seed §4, §6).

use serde::{Deserialize, Serialize};

use crate::taming::DiscLoss;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainArgs {
    /// Use the model's VQLPIPSWithDiscriminator with two optimizers. Absent = auto
    /// (true for taming models); `true` with a non-taming model is an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_taming_loss: Option<bool>,
    /// Learning rate of every optimizer (taming uses one lr for both).
    pub lr: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr_decay: Option<LrDecay>,
    pub num_steps: u64,
    /// Clips per batch; each clip contributes `sequence_length` frames.
    pub batch_size: usize,
    pub adam_betas: [f64; 2],
    pub adam_eps: f64,
    /// The discriminator is stepped on batches where `step % disc_update_every == 0`.
    pub disc_update_every: u64,
    /// Clip the global gradient norm of each optimizer's parameters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grad_clip: Option<f64>,
    pub checkpoint_every: u64,
    /// Most recent checkpoints kept (the best-by-validation one is kept as well).
    pub keep_checkpoints: usize,
    pub log_every: u64,
    pub image_every: u64,
    pub val_every: u64,
    /// Validation batches per evaluation.
    pub val_batches: usize,
    pub seed: u64,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    pub amp: Amp,
    /// Deterministic kernels and data order, for bit-exact resume.
    pub deterministic: bool,
    /// Stop after this many consecutive steps with a non-finite loss.
    pub max_bad_steps: u32,
    /// The loss of the traditional (non-taming) path.
    pub traditional_loss: TraditionalLoss,
}

impl Default for TrainArgs {
    fn default() -> Self {
        Self {
            use_taming_loss: None,
            lr: 1e-4,
            lr_decay: None,
            num_steps: 100_000,
            batch_size: 8,
            adam_betas: [0.5, 0.9],
            adam_eps: 1e-8,
            disc_update_every: 3,
            grad_clip: None,
            checkpoint_every: 1000,
            keep_checkpoints: 3,
            log_every: 10,
            image_every: 500,
            val_every: 1000,
            val_batches: 4,
            seed: 23,
            device: "auto".into(),
            amp: Amp::None,
            deterministic: false,
            max_bad_steps: 5,
            traditional_loss: TraditionalLoss::default(),
        }
    }
}

/// Mixed precision. bf16 autocast runs on CUDA only; quantizer distances, LPIPS and
/// the adaptive weight stay in fp32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Amp {
    #[default]
    None,
    Bf16,
}

/// Learning-rate schedule applied on top of `lr`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrDecay {
    #[serde(rename = "type")]
    pub kind: LrDecayKind,
    /// Linear warm-up from 0 over this many steps.
    #[serde(default)]
    pub warmup_steps: u64,
    /// `step`: multiply by `gamma` every `step_size` steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_size: Option<u64>,
    /// `step` and `exponential`: the decay factor (per `step_size` steps, or per step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f64>,
    /// `cosine`: the floor reached at `num_steps`.
    #[serde(default)]
    pub min_lr: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrDecayKind {
    Step,
    Exponential,
    Cosine,
}

/// Loss of the traditional path (the seed's LossCalculator for VQ-VAE / VQ-VAE-2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TraditionalLoss {
    pub recon_loss: ReconLoss,
    /// LPIPS weight; 0 disables it (and the need for the VGG weights).
    pub perceptual_weight: f64,
    /// Weight of the generator's adversarial term; 0 disables the discriminator.
    pub gan_weight: f64,
    /// Step from which the adversarial term and discriminator updates are on.
    pub disc_start: u64,
    pub disc_loss: DiscLoss,
    pub disc_num_layers: usize,
    pub disc_ndf: usize,
}

impl Default for TraditionalLoss {
    fn default() -> Self {
        Self {
            recon_loss: ReconLoss::L1,
            perceptual_weight: 0.0,
            gan_weight: 0.0,
            disc_start: 0,
            disc_loss: DiscLoss::Hinge,
            disc_num_layers: 3,
            disc_ndf: 64,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReconLoss {
    L1,
    Mse,
}
