//! Everything that can go wrong while exporting or verifying. Each variant names the
//! file or tensor at fault, because the user has to know which input to fix.

use std::path::PathBuf;

/// An export, verification or runtime failure.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The param.json is invalid (the message names file and key).
    #[error(transparent)]
    Config(#[from] vqtok_config::ConfigError),
    /// A safetensors file is malformed.
    #[error("{}: not a readable safetensors file: {message}", path.display())]
    Safetensors { path: PathBuf, message: String },
    /// The checkpoint lacks a tensor the architecture needs.
    #[error(
        "{}: missing weight `{name}` (expected shape {expected:?})",
        source_name
    )]
    MissingWeight {
        source_name: String,
        name: String,
        expected: Vec<usize>,
    },
    /// A tensor exists but does not fit the architecture in `param.json`.
    #[error(
        "{}: weight `{name}` has shape {found:?}, but the config needs {expected:?}",
        source_name
    )]
    WeightShape {
        source_name: String,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// A tensor has a dtype we cannot convert.
    #[error(
        "{}: tensor `{name}` has dtype {dtype}, expected {expected}",
        source_name
    )]
    WeightDtype {
        source_name: String,
        name: String,
        dtype: String,
        expected: &'static str,
    },
    /// The config asks for something the exporter cannot express.
    #[error("unsupported configuration: {0}")]
    Unsupported(String),
    /// A model folder or reference file does not have the expected content.
    #[error("{}: {message}", path.display())]
    BadInput { path: PathBuf, message: String },
    /// The model folder contract or ONNX Runtime (loading, sessions, runs).
    #[error(transparent)]
    Runtime(#[from] vqtok_runtime::RuntimeError),
    /// A graph gave outputs its manifest does not promise (a bug, not the input's fault).
    #[error("graph output: {0}")]
    Graph(String),
}

use vqtok_core::exit::Blame;

impl Blame for ExportError {
    /// The user's input (files, config, weights) is at fault rather than the program or
    /// the runtime.
    fn is_user_error(&self) -> bool {
        match self {
            ExportError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ),
            ExportError::Config(_)
            | ExportError::Safetensors { .. }
            | ExportError::MissingWeight { .. }
            | ExportError::WeightShape { .. }
            | ExportError::WeightDtype { .. }
            | ExportError::Unsupported(_)
            | ExportError::BadInput { .. } => true,
            ExportError::Runtime(e) => e.is_user_error(),
            ExportError::Graph(_) => false,
        }
    }
}

impl ExportError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ExportError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn bad_input(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ExportError::BadInput {
            path: path.into(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = ExportError> = std::result::Result<T, E>;
