//! Errors of model construction and of the adapter calls that take user data.

/// What went wrong building or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The config describes a model that cannot be built; `field` is its JSON path.
    #[error("`{field}`: {message}")]
    Config { field: String, message: String },
    /// Images or index grids that do not fit the model (shape, channels, dtype, range).
    #[error("{0}")]
    Input(String),
    /// A weights file that does not fit the model.
    #[error(transparent)]
    Weights(#[from] crate::state_dict::StateDictError),
}

impl ModelError {
    pub(crate) fn input(message: impl Into<String>) -> Self {
        ModelError::Input(message.into())
    }
}

impl From<vqtok_config::ConfigError> for ModelError {
    fn from(e: vqtok_config::ConfigError) -> Self {
        ModelError::Config {
            field: e.path,
            message: e.message,
        }
    }
}
