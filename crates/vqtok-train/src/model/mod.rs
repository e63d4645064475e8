//! The adapter interface every model implements (the seed's `create_model` and its
//! adapters), so the trainer, the loss calculator and export never look inside a family.
//!
//! A model lives in a `VarStore` the caller owns and holds only the autoencoder
//! (`encoder.*`, `decoder.*`, `quantize*`, … under taming's or docs/models.md's names);
//! discriminator and LPIPS live in var stores of their own. Models follow the var
//! store's kind (f64 for parity tests, f32 for training) and device.

mod classic;
mod conv;
mod error;
mod input;
mod norm;
mod quantize;
mod taming;
mod vars;

pub use classic::{ClassicDecoder, ClassicEncoder, ResStack, VqVae, VqVae2};
pub use conv::{Conv2d, ConvTranspose2d};
pub use error::ModelError;
pub use norm::GroupNorm;
pub use quantize::{
    BatchCodeStats, CodebookUsage, EmaQuantizer, EmaState, QuantOutput, Quantizer, QuantizerConfig,
    VectorQuantizer, batch_stats, code_counts, dead_codes, ema_update, nearest_codes, perplexity,
};
pub use taming::{AttnBlock, Decoder, Downsample, Encoder, ResnetBlock, TamingModel, Upsample};
pub use vars::Vars;

use std::path::Path;

use tch::nn::VarStore;
use tch::{Device, Tensor, nn};
use vqtok_config::ModelConfig;

use crate::state_dict::{LoadOptions, LoadReport, load_state_dict};

/// What one forward pass returns (the seed's `(vq_loss, recon, perplexity, indices)`).
#[derive(Debug)]
pub struct ModelOutput {
    /// Scalar quantizer loss (codebook + commitment terms), summed over levels.
    pub vq_loss: Tensor,
    /// Reconstruction, `[B, C, H, W]`, same normalisation as the input, not clamped.
    pub recon: Tensor,
    /// Per-level scalar perplexity of the batch's code assignments.
    pub perplexity: Vec<Tensor>,
    /// Per-level `[B, h, w]` int64 code indices (VQ-VAE-2: top, then bottom).
    pub indices: Vec<Tensor>,
}

/// One model family behind the seed's adapter interface.
///
/// `forward_t`, `encode` and `decode_indices` return `Result` (the seed's adapters
/// return plain values): they take user data — frames of any size, index grids read
/// from token files — and a wrong shape or an out-of-range code must be an error that
/// says what is wrong, not a panic inside libtorch. The checks read shapes only, except
/// that `decode_indices` reads the index range back from the device.
///
/// `Send` (models hold only tensors and settings): vqtokenize's torch engine keeps one
/// model behind a mutex that the worker threads of a batch run share.
pub trait VqModel: Send {
    /// Full pass. With `train`, dropout is active and EMA codebooks update (once).
    fn forward_t(&self, images: &Tensor, train: bool) -> Result<ModelOutput, ModelError>;
    /// Images `[B, C, H, W]` (normalised) → one `[B, h, w]` index grid per level
    /// (eval mode, no autograd, no codebook update).
    fn encode(&self, images: &Tensor) -> Result<Vec<Tensor>, ModelError>;
    /// Index grids (as returned by `encode`) → reconstruction `[B, C, H, W]`.
    fn decode_indices(&self, indices: &[Tensor]) -> Result<Tensor, ModelError>;
    /// The decoder's final conv weight, for the adaptive GAN weight.
    fn last_layer(&self) -> Tensor;
    /// Parameters the autoencoder optimizer updates (EMA codebook state excluded).
    fn trainable_vars(&self) -> Vec<Tensor>;
}

/// Builds the model `cfg` describes under `vs` (the seed's `create_model`; the config
/// already mapped `model_type` aliases to a family). Weights are freshly initialised as
/// PyTorch would; [`load_weights`] loads trained ones.
pub fn create_model(cfg: &ModelConfig, vs: &nn::Path) -> Result<Box<dyn VqModel>, ModelError> {
    Ok(match cfg {
        ModelConfig::Taming(a) => Box::new(TamingModel::new(vs, a)?),
        ModelConfig::VqVae(a) => Box::new(VqVae::new(vs, a)?),
        ModelConfig::VqVae2(a) => Box::new(VqVae2::new(vs, a)?),
    })
}

/// Loads a model's weights into `vs` from a state dict with taming's names (a checkpoint's
/// `model.safetensors`, or a taming model converted by `cargo xtask import-taming`):
/// every variable of the model, strictly; `loss.*` (discriminator, LPIPS) is not the
/// model's and is skipped.
pub fn load_weights(vs: &VarStore, path: &Path) -> Result<LoadReport, ModelError> {
    let opts = LoadOptions {
        ignore_prefixes: vec!["loss.".into()],
        ..LoadOptions::default()
    };
    Ok(load_state_dict(vs, path, &opts)?)
}

/// A trained model: its var store and the model built in it.
pub struct LoadedModel {
    pub vs: VarStore,
    pub model: Box<dyn VqModel>,
}

/// [`create_model`] on `device`, then [`load_weights`] from `weights`.
pub fn open_model(
    cfg: &ModelConfig,
    weights: &Path,
    device: Device,
) -> Result<LoadedModel, ModelError> {
    let vs = VarStore::new(device);
    let model = create_model(cfg, &vs.root())?;
    load_weights(&vs, weights)?;
    Ok(LoadedModel { vs, model })
}
