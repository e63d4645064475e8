//! Pixel normalisation inside the u8 graphs, from `data_args.normalize`.
//!
//! The constants come from `vqtok_config::Normalize::pixel_affine`: `x̂ = (u8 / a − b) / s` per channel (minus_one_one:
//! a = 127.5, b = 1, s = 1; mean/std: a = 255, b = mean, s = std), computed in that
//! order in f32 so that the graph produces the same bits as the data pipeline's
//! `x / 127.5 − 1` rather than an equivalent affine form that differs in the last
//! ulp (which can flip argmin near-ties). The inverse is `u8 = round(clamp((x̂·s + b)·a,
//! 0, 255))` with round-half-to-even (ONNX Round, like torch.round).

use serde::{Deserialize, Serialize};
use vqtok_config::Normalize;

use crate::error::{ExportError, Result};
use crate::onnx::{Attr, GraphBuilder};

/// How the u8 encoder maps pixels to model input (recorded in the manifest).
pub const ENCODE_FORMULA: &str = "x[c] = (u8[c] / divisor[c] - offset[c]) / std[c], in float32 in this order; encoder_float takes x as NCHW";
/// How the u8 decoder maps model output to pixels (recorded in the manifest).
pub const DECODE_FORMULA: &str = "u8[c] = round_half_to_even(clamp((x[c] * std[c] + offset[c]) * divisor[c], 0, 255)); decoder_float returns x as NCHW, unclamped";

/// The per-channel constants of the normalisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PixelIo {
    /// `minus_one_one` or `mean_std`.
    pub kind: String,
    pub divisor: Vec<f64>,
    pub offset: Vec<f64>,
    pub std: Vec<f64>,
}

impl PixelIo {
    pub fn new(norm: &Normalize, channels: usize) -> Result<Self> {
        let (kind, per_channel) = match norm {
            // taming's u8 / 127.5 − 1 applies to any channel count.
            Normalize::MinusOneOne => ("minus_one_one", false),
            Normalize::MeanStd { .. } => ("mean_std", true),
        };
        if per_channel && channels != 3 {
            return Err(ExportError::Unsupported(format!(
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

    fn unit_std(&self) -> bool {
        self.std.iter().all(|&s| s == 1.0)
    }

    fn consts(&self, g: &mut GraphBuilder, name: &str, v: &[f64]) -> String {
        let data: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        g.init_f32(&format!("pixels.{name}"), &[data.len()], &data)
    }

    /// u8 frames `[N, H, W, C]` → normalised f32 `[N, C, H, W]`.
    pub fn normalize(&self, g: &mut GraphBuilder, frames: &str) -> String {
        let x = g.op("Cast", &[frames], vec![Attr::Int("to", 1)]);
        let a = self.consts(g, "divisor", &self.divisor);
        let b = self.consts(g, "offset", &self.offset);
        let x = g.op("Div", &[&x, &a], vec![]);
        let mut x = g.op("Sub", &[&x, &b], vec![]);
        if !self.unit_std() {
            let s = self.consts(g, "std", &self.std);
            x = g.op("Div", &[&x, &s], vec![]);
        }
        g.op(
            "Transpose",
            &[&x],
            vec![Attr::Ints("perm", vec![0, 3, 1, 2])],
        )
    }

    /// Normalised f32 `[N, C, H, W]` → u8 frames `[N, H, W, C]`.
    pub fn to_u8(&self, g: &mut GraphBuilder, x: &str) -> String {
        let mut x = g.op(
            "Transpose",
            &[x],
            vec![Attr::Ints("perm", vec![0, 2, 3, 1])],
        );
        if !self.unit_std() {
            let s = self.consts(g, "std", &self.std);
            x = g.op("Mul", &[&x, &s], vec![]);
        }
        let a = self.consts(g, "divisor", &self.divisor);
        let b = self.consts(g, "offset", &self.offset);
        let x = g.op("Add", &[&x, &b], vec![]);
        let x = g.op("Mul", &[&x, &a], vec![]);
        let lo = g.const_f32(0.0);
        let hi = g.const_f32(255.0);
        let x = g.op("Clip", &[&x, &lo, &hi], vec![]);
        let x = g.op("Round", &[&x], vec![]);
        g.op("Cast", &[&x], vec![Attr::Int("to", 2)])
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
