//! The adapter interface every model implements (the seed's `create_model` and its
//! adapters), so the trainer, the loss calculator and export never look inside a family.

use tch::Tensor;

/// What one forward pass returns (the seed's `(vq_loss, recon, perplexity, indices)`).
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
pub trait VqModel {
    /// Full pass. With `train`, dropout is active and EMA codebooks update (once).
    fn forward_t(&self, images: &Tensor, train: bool) -> ModelOutput;
    /// Images `[B, C, H, W]` (normalised) → one `[B, h, w]` index grid per level.
    fn encode(&self, images: &Tensor) -> Vec<Tensor>;
    /// Index grids (as returned by `encode`) → reconstruction `[B, C, H, W]`.
    fn decode_indices(&self, indices: &[Tensor]) -> Tensor;
    /// The decoder's final conv weight, for the adaptive GAN weight.
    fn last_layer(&self) -> Tensor;
    /// Parameters the autoencoder optimizer updates (EMA codebook state excluded).
    fn trainable_vars(&self) -> Vec<Tensor>;
    /// Channels of the reconstruction.
    fn output_channels(&self) -> usize;
    /// True for the taming family (VQModel / EMAVQ), which owns VQLPIPSWithDiscriminator.
    fn is_taming(&self) -> bool;
}
