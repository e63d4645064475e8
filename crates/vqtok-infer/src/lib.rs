//! vqtok-infer: the `vqtokenize` tool as a library. Videos become token files and token
//! files become videos through a model folder written by `vqtok-export` (ONNX graphs run
//! by ONNX Runtime; no libtorch, no Python).
//!
//! - `vqtok_runtime::ModelFolder`: the model folder, its identity (recorded in token
//!   files), and its encoder/decoder sessions;
//! - [`encode_video`]: streaming decode → resize/crop ([`Framing`]) → encoder batches →
//!   [`TokenFile`] (`*.vqt.safetensors`, see [`tokens`] for the format);
//! - [`decode_tokens`]: token file → decoder → mp4 (refuses another model's tokens);
//! - [`compare`]: token agreement of two files (engines, precisions);
//! - [`batch`]: many inputs, resume, worker threads, per-file failures, several processes
//!   on one output tree; [`shard`]: which inputs this process owns; [`summary`]: what a
//!   run reports and the exit status it ends with; [`index`]: the corpus index;
//! - [`engine`]: the model folder and runtime settings every command shares, resolved to
//!   an [`encoder::Encoder`] of the ORT engine or (feature `torch`) the libtorch engine
//!   ([`device`]: the `--device` flag both take).
//!
//! The `vqtokenize` binary only parses arguments and prints what these return.

pub mod batch;
pub mod compare;
mod decode;
pub mod device;
mod encode;
pub mod encoder;
pub mod engine;
mod error;
mod framing;
pub mod index;
pub mod progress;
pub mod shard;
pub mod summary;
mod token_writer;
pub mod tokens;
#[cfg(feature = "torch")]
pub mod torch;

pub use decode::{Compare, DecodeOptions, Decoded, OutputSize, check_model, decode_tokens};
pub use encode::{EncodeOptions, Encoded, QUEUE_BATCHES, Selection, encode_video, source_info};
pub use error::{InferError, Result};
pub use framing::{Framing, SizeRule, source_region};
pub use token_writer::TokenWriter;
pub use tokens::{IndexDtype, TOKEN_SUFFIX, TokenFile, TokenMeta};
