//! vqtok-export: a checkpoint (taming state-dict names + param.json) → a folder of
//! ONNX graphs that tokenize and detokenize frames without Python or libtorch,
//! plus the codebooks and a manifest; and the verification of those graphs against
//! the tch model (see [`verify`] for the reference file the training side writes).
//!
//! Model folder:
//! - `encoder.onnx`: u8 RGB frames `[N, H, W, C]` → int64 indices per level
//!   (normalisation, layout change, encoder, quant_conv, matmul-form distances,
//!   ArgMin all inside the graph);
//! - `decoder.onnx`: indices → u8 frames (codebook Gather, post_quant_conv, decoder,
//!   unnormalise, clamp, round);
//! - `encoder_float.onnx` / `decoder_float.onnx`: the same on normalised NCHW floats;
//! - `codebook.safetensors`, `manifest.json` (see [`Manifest`]);
//! - `weights.safetensors` (every parameter the graphs hold, taming names, f32) and
//!   `param.json`: what vqtokenize's torch engine builds the tch model from.
//!
//! Graphs use opset 17 with dynamic N, H, W; GroupNorm is decomposed into
//! InstanceNormalization on a `[N, 32, -1]` view. No tch dependency: the ONNX
//! protobuf types come from onnx.proto via prost (build.rs).

mod error;
mod export;
mod graphs;
mod model;
pub mod onnx;
mod pixels;
mod tensor_file;
pub mod verify;
mod weights;

pub use error::{ExportError, Result};
pub use export::{DEFAULT_EXTERNAL_DATA_THRESHOLD, ExportOptions, ModelSource, export};
pub use graphs::build_graph;
pub use tensor_file::{RawTensor, TensorFile, write_tensors};
pub use verify::{VerifyOptions, verify};
pub use weights::{CheckpointWeights, Init, RandomWeights, WeightSource};
