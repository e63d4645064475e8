//! The pixel normalisation of a model folder, from `data_args.normalize`:
//! `x̂ = (u8 / divisor − offset) / std` per channel, evaluated in f32 in that order (the
//! graphs compute exactly this; see [`crate::ENCODE_FORMULA`]).

use serde::{Deserialize, Serialize};
use vqtok_config::Normalize;

use crate::error::{Result, RuntimeError};

/// The per-channel constants of the normalisation, as the manifest records them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PixelIo {
    /// `minus_one_one` or `mean_std`.
    pub kind: String,
    pub divisor: Vec<f64>,
    pub offset: Vec<f64>,
    pub std: Vec<f64>,
}

impl PixelIo {
    /// The constants `norm` gives a model with `channels` channels (taming's
    /// `u8 / 127.5 − 1` applies to any count; mean/std is defined for RGB only).
    pub fn new(norm: &Normalize, channels: usize) -> Result<Self> {
        let (kind, per_channel) = match norm {
            Normalize::MinusOneOne => ("minus_one_one", false),
            Normalize::MeanStd { .. } => ("mean_std", true),
        };
        if per_channel && channels != 3 {
            return Err(RuntimeError::Unsupported(format!(
                "data_args.normalize gives mean/std for 3 channels but the model has {channels}"
            )));
        }
        let a = norm.pixel_affine();
        let take = |v: [f64; 3]| (0..channels).map(|c| v[c.min(2)]).collect();
        Ok(PixelIo {
            kind: kind.into(),
            divisor: take(a.divisor),
            offset: take(a.offset),
            std: take(a.std),
        })
    }

    pub fn channels(&self) -> usize {
        self.divisor.len()
    }

    /// True when no channel divides by a std (the graphs then skip that step).
    pub fn unit_std(&self) -> bool {
        self.std.iter().all(|&s| s == 1.0)
    }

    /// A normalised value of channel `c` on the [0, 255] pixel scale (unclamped), in f64.
    /// Channels past the list reuse it cyclically: only minus_one_one, equal for every
    /// channel, allows a decoder with another channel count than the encoder.
    pub fn to_pixel_scale(&self, c: usize, x: f64) -> f64 {
        let c = c % self.channels();
        (x * self.std[c] + self.offset[c]) * self.divisor[c]
    }

    /// How much one normalised unit of channel `c` is on the [0, 255] scale.
    pub fn pixel_scale(&self, c: usize) -> f64 {
        let c = c % self.channels();
        self.std[c] * self.divisor[c]
    }
}
