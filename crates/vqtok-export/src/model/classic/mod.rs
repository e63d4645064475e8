//! The classic family: VQ-VAE and VQ-VAE-2, layer by layer as docs/models.md defines
//! them (vqtok-train builds the same networks from the same document).

mod blocks;
pub mod vqvae;
pub mod vqvae2;

use blocks::{ClassicDecoder, ClassicEncoder};
