//! How the losses are built: device, dtype and where the LPIPS weights are.

use std::path::PathBuf;

use tch::{Device, Kind};

/// Construction options shared by the taming loss and the traditional path.
#[derive(Debug, Clone)]
pub struct LossOptions {
    pub device: Device,
    /// dtype of the discriminator, LPIPS and the loss arithmetic: `Float` for
    /// training (also under mixed precision), `Double` for parity tests.
    pub kind: Kind,
    /// LPIPS weights file; `None` = `$VQTOK_LPIPS_WEIGHTS`. Only read when a
    /// perceptual weight is > 0.
    pub lpips_weights: Option<PathBuf>,
}

impl LossOptions {
    /// fp32 on `device`, LPIPS weights from the environment.
    pub fn new(device: Device) -> LossOptions {
        LossOptions {
            device,
            kind: Kind::Float,
            lpips_weights: None,
        }
    }
}
