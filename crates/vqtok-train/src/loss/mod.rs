//! The losses (spec §4–6): LPIPS-VGG, the PatchGAN discriminator, taming's
//! VQLPIPSWithDiscriminator, the traditional path's loss, and the seed's LossCalculator
//! that picks one and owns the discriminator. Every network here has its own `VarStore`:
//! the discriminator's variables are `loss.discriminator.main.N.*` (taming's names),
//! LPIPS is frozen and never saved.

mod adaptive;
mod calculator;
mod discriminator;
mod error;
mod log;
mod lpips;
mod options;
mod traditional;
mod vqlpips;

pub use calculator::{GeneratorOutput, LossCalculator, Reconstruction};
pub use discriminator::{
    DISCRIMINATOR_PREFIX, Discriminator, DiscriminatorConfig, DiscriminatorOutput,
    DiscriminatorSpec, DiscriminatorState, NLayerDiscriminator, Update, UpdateSettings,
    adopt_weight, d_loss, g_loss, hinge_d_loss, vanilla_d_loss,
};
pub use error::LossError;
pub use log::LossLog;
pub use lpips::{LPIPS_WEIGHTS_ENV, Lpips, lpips_weights_path};
pub use options::LossOptions;
pub use traditional::TraditionalLoss;
pub use vqlpips::VqLpipsWithDiscriminator;
pub use vqtok_config::Split;
