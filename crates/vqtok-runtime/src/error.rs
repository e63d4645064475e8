//! What can go wrong reading a model folder or running its graphs; every variant names
//! the file at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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
        RuntimeError::Io {
            path: path.into(),
            source,
        }
    }

    pub fn bad_input(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        RuntimeError::BadInput {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl vqtok_core::exit::Blame for RuntimeError {
    fn is_user_error(&self) -> bool {
        match self {
            RuntimeError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ),
            RuntimeError::BadInput { .. } | RuntimeError::Unsupported(_) => true,
            RuntimeError::Runtime(_) => false,
        }
    }
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
