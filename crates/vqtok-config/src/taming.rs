//! The taming-transformers family (VQModel / EMAVQ), in the original's own key names
//! so that a taming `model.yaml` translates key for key.

use serde::{Deserialize, Serialize};

use crate::quantizer::EmaArgs;

/// `model_variant`: which taming class the adapter builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ModelVariant {
    /// `VQModel`: VectorQuantizer2 codebook trained by gradients.
    #[default]
    VQModel,
    /// `EMAVQ`: EMA codebook, excluded from the autoencoder optimizer.
    EMAVQ,
}

/// `model_args` for TamingVQGAN / EMAVQ / VQGAN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TamingArgs {
    #[serde(default)]
    pub model_variant: ModelVariant,
    /// Codebook size K.
    pub n_embed: usize,
    /// Codebook vector dimension D.
    pub embed_dim: usize,
    /// Commitment weight β (taming: 0.25).
    #[serde(default = "default_beta")]
    pub beta: f64,
    /// VectorQuantizer2's `legacy` flag: true keeps taming's β placement (spec §3.2).
    #[serde(default = "default_true")]
    pub legacy: bool,
    /// EMA codebook options, used when `model_variant` is EMAVQ.
    #[serde(default)]
    pub ema: EmaArgs,
    pub ddconfig: DdConfig,
    pub lossconfig: LossConfig,
    /// Initialise from a safetensors state dict with taming key names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ckpt_path: Option<String>,
    /// Key prefixes dropped from `ckpt_path` before loading (taming's `ignore_keys`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_keys: Vec<String>,
}

/// Encoder/decoder architecture (taming's `ddconfig`, passed to both).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DdConfig {
    #[serde(default)]
    pub double_z: bool,
    pub z_channels: usize,
    /// Nominal input size: only decides where attention goes (the network is fully convolutional).
    pub resolution: usize,
    #[serde(default = "default_three")]
    pub in_channels: usize,
    #[serde(default = "default_three")]
    pub out_ch: usize,
    pub ch: usize,
    pub ch_mult: Vec<usize>,
    pub num_res_blocks: usize,
    #[serde(default)]
    pub attn_resolutions: Vec<usize>,
    #[serde(default)]
    pub dropout: f64,
    #[serde(default = "default_true")]
    pub resamp_with_conv: bool,
}

impl TamingArgs {
    /// The model's one codebook (`quantize`).
    pub fn level(&self) -> crate::CodebookLevel {
        crate::CodebookLevel {
            name: "quantize",
            factor: self.ddconfig.factor(),
            codebook_size: self.n_embed,
            dim: self.embed_dim,
        }
    }
}

impl DdConfig {
    /// Spatial downsampling factor, 2^(len(ch_mult) − 1).
    pub fn factor(&self) -> usize {
        1 << self.ch_mult.len().saturating_sub(1)
    }

    /// Feature resolution at each encoder level (index = level).
    pub fn level_resolutions(&self) -> Vec<usize> {
        (0..self.ch_mult.len())
            .map(|i| self.resolution >> i)
            .collect()
    }
}

/// taming's `lossconfig`: `{target, params}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    /// Must name VQLPIPSWithDiscriminator (any module path).
    pub target: String,
    pub params: LossParams,
}

/// VQLPIPSWithDiscriminator's constructor arguments, with taming's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossParams {
    pub disc_start: u64,
    #[serde(default = "default_one")]
    pub codebook_weight: f64,
    /// Accepted for compatibility; unused, as in taming (spec §0.2 item 4).
    #[serde(default = "default_one")]
    pub pixelloss_weight: f64,
    #[serde(default = "default_disc_layers")]
    pub disc_num_layers: usize,
    #[serde(default = "default_three")]
    pub disc_in_channels: usize,
    #[serde(default = "default_one")]
    pub disc_factor: f64,
    #[serde(default = "default_one")]
    pub disc_weight: f64,
    #[serde(default = "default_one")]
    pub perceptual_weight: f64,
    #[serde(default)]
    pub use_actnorm: bool,
    #[serde(default)]
    pub disc_conditional: bool,
    #[serde(default = "default_ndf")]
    pub disc_ndf: usize,
    #[serde(default)]
    pub disc_loss: DiscLoss,
}

/// The discriminator's loss function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DiscLoss {
    #[default]
    Hinge,
    Vanilla,
}

fn default_beta() -> f64 {
    0.25
}
fn default_true() -> bool {
    true
}
fn default_three() -> usize {
    3
}
fn default_one() -> f64 {
    1.0
}
fn default_disc_layers() -> usize {
    3
}
fn default_ndf() -> usize {
    64
}
