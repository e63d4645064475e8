//! The losses (spec §4–6): LPIPS-VGG, the PatchGAN discriminator, taming's
//! VQLPIPSWithDiscriminator, and the seed's LossCalculator for the traditional path.
//! Every network here has its own `VarStore`: the discriminator's variables are
//! `loss.discriminator.main.N.*` (taming's names), LPIPS is frozen and never saved.

mod act_norm;
mod adaptive;
mod batch_norm;
mod calculator;
mod disc_store;
mod discriminator;
mod error;
mod gan;
mod log;
mod lpips;
mod options;
mod vqlpips;
mod weights;

pub use calculator::{LossCalculator, LossDict, OPTIMIZER_DISC_PREFIX, TraditionalCalculator};
pub use disc_store::{DISCRIMINATOR_PREFIX, Discriminator};
pub use discriminator::{DiscriminatorConfig, NLayerDiscriminator};
pub use error::LossError;
pub use gan::{adopt_weight, d_loss, g_loss, hinge_d_loss, vanilla_d_loss};
pub use log::LossLog;
pub use lpips::{LPIPS_WEIGHTS_ENV, Lpips, lpips_weights_path};
pub use options::LossOptions;
pub use vqlpips::{DiscriminatorOutput, GeneratorOutput, VqLpipsWithDiscriminator};
pub use vqtok_config::Split;
