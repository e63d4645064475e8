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
}

impl ModelError {
    pub(crate) fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        ModelError::Config {
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn input(message: impl Into<String>) -> Self {
        ModelError::Input(message.into())
    }
}
