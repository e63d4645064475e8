//! What can go wrong while tokenizing. Every variant names the file or option at fault,
//! and its [`Blame`] decides the exit status (2: fix your input, 1: ours).

use std::path::PathBuf;

use vqtok_core::exit::Blame;
use vqtok_core::fs::IoError;
use vqtok_runtime::RuntimeError;
use vqtok_video::VideoError;

#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// Loading the model folder or running ONNX Runtime failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// Decoding or writing a video failed.
    #[error(transparent)]
    Video(#[from] VideoError),
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] IoError),
    /// A file exists but its content is not what we need (not a token file, no frames …).
    #[error("{}: {message}", path.display())]
    BadInput { path: PathBuf, message: String },
    /// An option is out of range or does not fit the model.
    #[error("invalid `{field}`: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// A token file made by another model than the one given.
    #[error(
        "{}: made by model {found} ({found_family}), but {model} is model {expected}; \
         decode it with the model folder that encoded it",
        path.display()
    )]
    ModelMismatch {
        path: PathBuf,
        model: PathBuf,
        found: String,
        found_family: String,
        expected: String,
    },
    /// A graph returned something its manifest does not promise (a bug or a foreign folder).
    #[error("internal error: {0}")]
    Internal(String),
}

impl InferError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IoError::new(path, source).into()
    }

    pub(crate) fn bad_input(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        InferError::BadInput {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        InferError::Invalid {
            field,
            message: message.into(),
        }
    }

    /// A short, stable name for the kind of failure, by which the corpus index counts
    /// failures: a broken video says why it is unusable (`unreadable`, `corrupt`, …, the
    /// loader's skip reasons), everything else its variant.
    pub fn reason(&self) -> String {
        match self {
            InferError::Video(VideoError::File { reason, .. }) => serde_json::to_value(reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "video".into()),
            InferError::Video(_) => "video".into(),
            InferError::Runtime(_) => "runtime".into(),
            InferError::Io(_) => "io".into(),
            InferError::BadInput { .. } => "bad_input".into(),
            InferError::Invalid { .. } => "invalid_option".into(),
            InferError::ModelMismatch { .. } => "model_mismatch".into(),
            InferError::Internal(_) => "internal".into(),
        }
    }
}

impl Blame for InferError {
    /// The user's input (files, options, model folder) is at fault.
    fn is_user_error(&self) -> bool {
        match self {
            InferError::Runtime(e) => e.is_user_error(),
            InferError::Video(e) => e.is_user_error(),
            InferError::Io(e) => e.is_user_error(),
            InferError::BadInput { .. }
            | InferError::Invalid { .. }
            | InferError::ModelMismatch { .. } => true,
            InferError::Internal(_) => false,
        }
    }
}

pub type Result<T, E = InferError> = std::result::Result<T, E>;
