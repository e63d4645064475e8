//! Everything that can go wrong while building or running the losses. Each variant
//! names the file, key or config field the user has to look at.

use std::path::PathBuf;

/// Errors of the loss module.
#[derive(Debug, thiserror::Error)]
pub enum LossError {
    /// The LPIPS weights file is not there. Never fall back to random VGG weights:
    /// LPIPS with random weights is a meaningless loss that still "trains".
    #[error(
        "LPIPS weights not found at {}: run `cargo xtask setup` to create them, \
         or set `perceptual_weight: 0` to train without the perceptual loss",
        .0.display()
    )]
    LpipsWeightsMissing(PathBuf),
    /// Neither an explicit path nor `VQTOK_LPIPS_WEIGHTS` says where the weights are.
    #[error(
        "no LPIPS weights file given and VQTOK_LPIPS_WEIGHTS is not set: run `cargo xtask setup` \
         (it sets the variable for cargo) or set `perceptual_weight: 0`"
    )]
    LpipsWeightsUnset,
    /// A weights or checkpoint file lacks a tensor, or holds one of the wrong shape.
    #[error("{source_name}: `{key}`: {message}")]
    Weights {
        source_name: String,
        key: String,
        message: String,
    },
    /// The config asks for something the model cannot do (path = JSON path of the field).
    #[error("{path}: {message}")]
    Config { path: String, message: String },
    /// The `last_layer` passed to the generator pass gets no gradient from the
    /// reconstructions: it is not the decoder's final conv weight.
    #[error(
        "the last layer given for the adaptive GAN weight does not produce the \
         reconstructions (no gradient reaches it); pass the decoder's final conv weight"
    )]
    LastLayerUnused,
    #[error(transparent)]
    StateDict(#[from] crate::state_dict::StateDictError),
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

impl vqtok_core::exit::Blame for LossError {
    /// Problems the user fixes by changing the config or running setup.
    fn is_user_error(&self) -> bool {
        matches!(
            self,
            LossError::LpipsWeightsMissing(_)
                | LossError::LpipsWeightsUnset
                | LossError::Config { .. }
        )
    }
}

impl LossError {
    pub(crate) fn weights(source: &str, key: &str, message: impl Into<String>) -> Self {
        LossError::Weights {
            source_name: source.to_string(),
            key: key.to_string(),
            message: message.into(),
        }
    }
}
