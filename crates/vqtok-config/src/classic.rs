//! The "traditional" family: VQ-VAE (van den Oord et al. 2017, Sonnet layout) and
//! VQ-VAE-2 (Razavi et al. 2019). Layer-by-layer definitions are in docs/models.md.

use serde::{Deserialize, Serialize};

use crate::model::CodebookLevel;
use crate::quantizer::{EmaArgs, QuantizerKind};

/// `model_args` for VqVae / vqvae.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VqVaeArgs {
    pub in_channels: usize,
    /// Channels of the encoder/decoder trunk.
    pub num_hiddens: usize,
    pub num_residual_layers: usize,
    pub num_residual_hiddens: usize,
    /// Codebook vector dimension D.
    pub embedding_dim: usize,
    /// Codebook size K.
    pub num_embeddings: usize,
    /// β of the commitment term.
    pub commitment_cost: f64,
    /// Spatial downsampling factor: a power of two ≥ 2 (one stride-2 conv per halving).
    pub downsample: usize,
    pub quantizer: QuantizerKind,
    pub ema: EmaArgs,
}

impl Default for VqVaeArgs {
    fn default() -> Self {
        Self {
            in_channels: 3,
            num_hiddens: 128,
            num_residual_layers: 2,
            num_residual_hiddens: 32,
            embedding_dim: 64,
            num_embeddings: 512,
            commitment_cost: 0.25,
            downsample: 4,
            quantizer: QuantizerKind::Vq,
            ema: EmaArgs::default(),
        }
    }
}

/// `model_args` for VQVAE2 / vqvae2: bottom codes at 1/4, top codes at 1/8.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VqVae2Args {
    pub in_channels: usize,
    pub channel: usize,
    pub n_res_block: usize,
    pub n_res_channel: usize,
    /// Dimension D of both codebooks.
    pub embed_dim: usize,
    /// Size K of both codebooks.
    pub n_embed: usize,
    pub commitment_cost: f64,
    pub quantizer: QuantizerKind,
    pub ema: EmaArgs,
}

impl Default for VqVae2Args {
    fn default() -> Self {
        Self {
            in_channels: 3,
            channel: 128,
            n_res_block: 2,
            n_res_channel: 32,
            embed_dim: 64,
            n_embed: 512,
            commitment_cost: 0.25,
            quantizer: QuantizerKind::Vq,
            ema: EmaArgs::default(),
        }
    }
}

impl VqVaeArgs {
    /// The model's one codebook (`quantize`).
    pub fn level(&self) -> CodebookLevel {
        CodebookLevel {
            name: "quantize",
            factor: self.downsample,
            codebook_size: self.num_embeddings,
            dim: self.embedding_dim,
        }
    }
}

impl VqVae2Args {
    /// The top (`quantize_t`, 1/8) and bottom (`quantize_b`, 1/4) codebooks, in the order
    /// the model returns their grids.
    pub fn levels(&self) -> [CodebookLevel; 2] {
        let level = |name, factor| CodebookLevel {
            name,
            factor,
            codebook_size: self.n_embed,
            dim: self.embed_dim,
        };
        [level("quantize_t", 8), level("quantize_b", 4)]
    }
}
