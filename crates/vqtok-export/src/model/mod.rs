//! The model tree as ONNX subgraphs, file for file the mirror of vqtok-train's
//! `model/` (taming/, classic/, quantize/, conv, norm), candle-nn style: `new` fetches
//! (and checks) the parameters by state-dict name, `forward` appends nodes and returns
//! the output value. Layer definitions follow the taming spec (§2–3) and docs/models.md.
//!
//! Each family exposes `encode` (normalised images → one index grid per level) and
//! `decode` (index grids → normalised images) as separate functions: the encoder graph
//! must not carry the decoder's weights and vice versa.

mod classic;
mod conv;
mod norm;
mod quantize;
mod taming;

use vqtok_config::ModelConfig;

use crate::error::Result;
use crate::onnx::GraphBuilder;

pub use conv::{Conv2d, ConvTranspose2d};
pub use norm::GroupNorm;
pub use quantize::Codebook;

/// Appends the encoder of `model` on normalised `x`; returns one index grid per level
/// (coarsest first, as `ModelConfig::levels` lists them).
pub fn encode(g: &mut GraphBuilder, model: &ModelConfig, x: &str) -> Result<Vec<String>> {
    match model {
        ModelConfig::Taming(a) => taming::encode(g, a, x),
        ModelConfig::VqVae(a) => classic::vqvae::encode(g, a, x),
        ModelConfig::VqVae2(a) => classic::vqvae2::encode(g, a, x),
    }
}

/// Appends the decoder of `model` on index grids (one per level); returns the
/// normalised reconstruction `[N, C, H, W]`.
pub fn decode(g: &mut GraphBuilder, model: &ModelConfig, indices: &[String]) -> Result<String> {
    match model {
        ModelConfig::Taming(a) => taming::decode(g, a, indices),
        ModelConfig::VqVae(a) => classic::vqvae::decode(g, a, indices),
        ModelConfig::VqVae2(a) => classic::vqvae2::decode(g, a, indices),
    }
}

/// swish(x) = x·σ(x) (taming's `nonlinearity`); ORT fuses the pair on CPU.
fn swish(g: &mut GraphBuilder, x: &str) -> String {
    let s = g.op("Sigmoid", &[x], vec![]);
    g.op("Mul", &[x, &s], vec![])
}

fn relu(g: &mut GraphBuilder, x: &str) -> String {
    g.op("Relu", &[x], vec![])
}
