//! vqtok-runtime: the deployed model. A model folder is the contract between export,
//! which writes it, and vqtokenize, which runs it:
//!
//! - [`Manifest`] (`manifest.json`): family, config, levels and their grids, the pixel
//!   normalisation, each graph's I/O, every file's sha256, and the [`Verification`] report;
//! - [`ModelFolder`]: an opened folder, checked against its manifest, with its identity
//!   (the `model_sha256` token files record);
//! - [`Session`]: an ONNX Runtime session over one of its graphs ([`session`]).
//!
//! No libtorch, no protobuf code generation: what a consumer of a model folder links.

mod error;
mod folder;
mod manifest;
mod pixels;
pub mod session;
mod verification;

pub use error::{Result, RuntimeError};
pub use folder::{MODEL_ENV, ModelFolder};
pub use manifest::{
    CODEBOOK_FILE, CONFIG_FILE, DECODE_FORMULA, ENCODE_FORMULA, ElemType, FORMAT_VERSION, FRAMES,
    FileInfo, GraphInfo, GraphKind, IMAGES, IoInfo, LevelInfo, MANIFEST_FILE, Manifest,
    Normalization, Verification, WEIGHTS_FILE, indices_name,
};
pub use pixels::PixelIo;
pub use session::{Input, Optimization, Output, Provider, Session, SessionOptions};
pub use verification::{CaseReport, Gates, VerifyReport};
