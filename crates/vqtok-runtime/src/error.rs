//! What can go wrong reading a model folder or running its graphs; every variant names
//! the file at fault.

use std::path::PathBuf;

use vqtok_core::exit::Blame;
use vqtok_core::fs::IoError;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] IoError),
    /// A model folder or one of its files does not have the expected content.
    #[error("{}: {message}", path.display())]
    BadInput { path: PathBuf, message: String },
    /// A model the contract cannot describe (e.g. mean/std normalisation for other than
    /// 3 channels).
    #[error("unsupported configuration: {0}")]
    Unsupported(String),
    /// ONNX Runtime could not be loaded, or failed to build or run a session.
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
}

impl RuntimeError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IoError::new(path, source).into()
    }

    pub fn bad_input(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        RuntimeError::BadInput {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl Blame for RuntimeError {
    fn is_user_error(&self) -> bool {
        match self {
            RuntimeError::Io(e) => e.is_user_error(),
            RuntimeError::BadInput { .. } | RuntimeError::Unsupported(_) => true,
            RuntimeError::Runtime(_) => false,
        }
    }
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
