//! taming's VectorQuantizer2: a codebook trained by gradients through the codebook term
//! of the loss. Also the classic VQ-VAE's `quantizer: "vq"` (= `legacy: false`).

use tch::nn::Init;
use tch::{Reduction, Tensor};

use super::QuantOutput;
use super::nearest::{compute_kind, flatten, nearest_codes, straight_through};
use super::stats::perplexity;
use crate::model::vars::Vars;

#[derive(Debug)]
pub struct VectorQuantizer {
    /// `embedding.weight`, `[K, D]`.
    pub weight: Tensor,
    beta: f64,
    legacy: bool,
}

impl VectorQuantizer {
    /// Codebook at `vs.embedding.weight`, initialised U(±1/K) as taming does (overriding
    /// nn.Embedding's N(0, 1)).
    pub fn new(vs: &Vars, size: i64, dim: i64, beta: f64, legacy: bool) -> Self {
        let bound = 1.0 / size as f64;
        let weight = vs.sub("embedding").param(
            "weight",
            &[size, dim],
            Init::Uniform {
                lo: -bound,
                up: bound,
            },
        );
        VectorQuantizer {
            weight,
            beta,
            legacy,
        }
    }

    /// Quantizes `z` `[B, D, h, w]`.
    ///
    /// Loss with `legacy` (taming's default and only VQModel behaviour):
    /// mean((sg(z_q) − z)²) + β·mean((z_q − sg(z))²) — commitment weight 1, codebook β.
    /// Without: β·commitment + codebook (van den Oord / Sonnet).
    pub fn forward(&self, z: &Tensor) -> QuantOutput {
        let size = z.size();
        let (b, h, w) = (size[0], size[2], size[3]);
        let kind = compute_kind(z.kind(), self.weight.kind());
        let (z_bhwd, z_flat) = flatten(z, kind);
        let idx = nearest_codes(&z_flat, &self.weight);
        // nn.Embedding's gather: its backward is deterministic on CUDA (index_select's
        // is an atomic index_add).
        let zq = Tensor::embedding(&self.weight.to_kind(kind), &idx, -1, false, false)
            .view([b, h, w, -1]);
        let commitment = zq.detach().mse_loss(&z_bhwd, Reduction::Mean);
        let codebook = zq.mse_loss(&z_bhwd.detach(), Reduction::Mean);
        let loss = if self.legacy {
            commitment + codebook * self.beta
        } else {
            commitment * self.beta + codebook
        };
        QuantOutput {
            quantized: straight_through(&z_bhwd, &zq),
            loss,
            perplexity: perplexity(&idx, self.weight.size()[0], kind),
            indices: idx.view([b, h, w]),
        }
    }
}
