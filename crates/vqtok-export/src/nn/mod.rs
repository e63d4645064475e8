//! Layers as ONNX subgraphs, candle-nn style: `new` fetches (and checks) the
//! parameters by state-dict name, `forward` appends nodes and returns the output value.
//! Layer definitions follow ../shared/spec/taming.md §2–3 and docs/models.md.

mod attention;
mod classic;
mod conv;
mod norm;
pub mod pixels;
mod quantizer;
mod resnet;
mod sampling;
mod taming;

pub use attention::AttnBlock;
pub use classic::{ClassicDecoder, ClassicEncoder};
pub use conv::{Conv2d, ConvTranspose2d};
pub use norm::GroupNorm;
pub use quantizer::Codebook;
pub use resnet::ResnetBlock;
pub use sampling::{Downsample, Upsample};
pub use taming::{TamingDecoder, TamingEncoder};

use crate::onnx::GraphBuilder;

/// swish(x) = x·σ(x) (taming's `nonlinearity`); ORT fuses the pair on CPU.
pub fn swish(g: &mut GraphBuilder, x: &str) -> String {
    let s = g.op("Sigmoid", &[x], vec![]);
    g.op("Mul", &[x, &s], vec![])
}

pub fn relu(g: &mut GraphBuilder, x: &str) -> String {
    g.op("Relu", &[x], vec![])
}
