//! The classic family: VQ-VAE and VQ-VAE-2, layer by layer as docs/models.md defines
//! them (the ONNX exporter builds the same graphs from the same document).

mod blocks;
mod vqvae;
mod vqvae2;

pub use blocks::{ClassicDecoder, ClassicEncoder, ResStack};
pub use vqvae::VqVae;
pub use vqvae2::VqVae2;
