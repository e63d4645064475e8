//! Codebooks: the gradient-trained VectorQuantizer2 and the EMA codebook, behind one
//! enum so every model family quantizes the same way.

mod ema;
mod nearest;
mod stats;
mod vq;

pub use ema::{EmaQuantizer, EmaState, ema_update};
pub use nearest::nearest_codes;
pub use stats::{BatchCodeStats, CodebookUsage, batch_stats, code_counts, dead_codes, perplexity};
pub use vq::VectorQuantizer;

use tch::Tensor;
use vqtok_config::{CodebookLevel, EmaArgs, QuantizerKind};

use super::vars::Vars;
use nearest::{compute_kind, flatten};

/// What quantizing one latent grid returns.
#[derive(Debug)]
pub struct QuantOutput {
    /// Straight-through quantized latents `[B, D, h, w]` (value z_q, gradient into z).
    pub quantized: Tensor,
    /// Scalar codebook + commitment loss.
    pub loss: Tensor,
    /// `[B, h, w]` int64 code indices.
    pub indices: Tensor,
    /// Scalar perplexity of this batch's codes.
    pub perplexity: Tensor,
}

/// Everything a codebook is built from.
#[derive(Debug, Clone)]
pub struct QuantizerConfig {
    /// K, the number of codes.
    pub codebook_size: i64,
    /// D.
    pub dim: i64,
    pub kind: QuantizerKind,
    /// β: commitment weight (legacy VQ: codebook weight).
    pub beta: f64,
    /// VectorQuantizer2's `legacy` β placement (ignored by EMA).
    pub legacy: bool,
    pub ema: EmaArgs,
}

impl QuantizerConfig {
    /// The codebook of `level` (its K and D) with the family's loss settings.
    pub fn new(
        level: &CodebookLevel,
        kind: QuantizerKind,
        beta: f64,
        legacy: bool,
        ema: &EmaArgs,
    ) -> QuantizerConfig {
        QuantizerConfig {
            codebook_size: level.codebook_size as i64,
            dim: level.dim as i64,
            kind,
            beta,
            legacy,
            ema: ema.clone(),
        }
    }
}

#[derive(Debug)]
pub enum Quantizer {
    Vq(VectorQuantizer),
    Ema(EmaQuantizer),
}

impl Quantizer {
    /// A codebook at `vs` (`quantize`, `quantize_t`, `quantize_b`).
    pub fn new(vs: &Vars, cfg: &QuantizerConfig) -> Self {
        match cfg.kind {
            QuantizerKind::Vq => Quantizer::Vq(VectorQuantizer::new(
                vs,
                cfg.codebook_size,
                cfg.dim,
                cfg.beta,
                cfg.legacy,
            )),
            QuantizerKind::Ema => Quantizer::Ema(EmaQuantizer::new(
                vs,
                cfg.codebook_size,
                cfg.dim,
                cfg.beta,
                &cfg.ema,
            )),
        }
    }

    /// Quantizes `z` `[B, D, h, w]`. With `train`, an EMA codebook updates once.
    pub fn forward_t(&self, z: &Tensor, train: bool) -> QuantOutput {
        match self {
            Quantizer::Vq(q) => q.forward(z),
            Quantizer::Ema(q) => q.forward_t(z, train),
        }
    }

    /// The codebook `[K, D]`.
    pub fn weight(&self) -> &Tensor {
        match self {
            Quantizer::Vq(q) => &q.weight,
            Quantizer::Ema(q) => q.weight(),
        }
    }

    /// K, the number of codes.
    pub fn codebook_size(&self) -> i64 {
        self.weight().size()[0]
    }

    /// Nearest-code indices `[B, h, w]` of `z` `[B, D, h, w]`, without loss or update
    /// (the encode path).
    pub fn codes(&self, z: &Tensor) -> Tensor {
        let size = z.size();
        let kind = compute_kind(z.kind(), self.weight().kind());
        let (_, z_flat) = flatten(z, kind);
        nearest_codes(&z_flat, self.weight()).view([size[0], size[2], size[3]])
    }

    /// Codebook rows for `[B, h, w]` indices, as latents `[B, D, h, w]` (taming's
    /// `get_codebook_entry` with shape (B, h, w, D)).
    pub fn embed(&self, indices: &Tensor) -> Tensor {
        Tensor::embedding(self.weight(), indices, -1, false, false)
            .permute([0, 3, 1, 2])
            .contiguous()
    }
}
