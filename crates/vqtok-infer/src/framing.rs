//! How a source frame becomes a model input: a size rule and a fit, resolved per video
//! into vqtok-video's exact [`Geometry`] (which the token file records).
//!
//! Default (what the model was trained on): `--size` = the config's
//! `data_args.resolution` (else the architecture's nominal resolution) as a square, and
//! `--fit crop`: the short side is scaled to it and the centre is cut out — the
//! validation mapping of the training data pipeline. `--size source` keeps the whole
//! picture at its own size, each side rounded to the nearest multiple of the model's
//! factor (the small change of aspect is absorbed by `--fit`).

use std::fmt;
use std::str::FromStr;

use vqtok_video::{Fit, Geometry, round_to_multiple};

use crate::error::{InferError, Result};
use vqtok_runtime::ModelFolder;

/// The requested model input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SizeRule {
    /// The model's training resolution, square.
    #[default]
    Model,
    /// A fixed `width × height` (a single number: square).
    Fixed { width: usize, height: usize },
    /// The source's own size rounded to multiples of the model's factor.
    Source,
}

impl FromStr for SizeRule {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        let num = |v: &str| {
            v.trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("`{v}` is not a positive integer"))
        };
        match s {
            "model" => Ok(SizeRule::Model),
            "source" => Ok(SizeRule::Source),
            _ => match s.split_once(['x', 'X', '×']) {
                Some((w, h)) => Ok(SizeRule::Fixed {
                    width: num(w)?,
                    height: num(h)?,
                }),
                None => {
                    let n = num(s)?;
                    Ok(SizeRule::Fixed {
                        width: n,
                        height: n,
                    })
                }
            },
        }
    }
}

impl fmt::Display for SizeRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizeRule::Model => f.write_str("model"),
            SizeRule::Source => f.write_str("source"),
            SizeRule::Fixed { width, height } if width == height => write!(f, "{width}"),
            SizeRule::Fixed { width, height } => write!(f, "{width}x{height}"),
        }
    }
}

/// Size rule + fit: resolved per source into a [`Geometry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    pub size: SizeRule,
    pub fit: Fit,
}

impl Default for Framing {
    fn default() -> Self {
        Framing {
            size: SizeRule::Model,
            fit: Fit::Crop,
        }
    }
}

impl Framing {
    /// The model input size for a `src_width × src_height` source.
    pub fn target(
        &self,
        model: &ModelFolder,
        src_width: usize,
        src_height: usize,
    ) -> (usize, usize) {
        match self.size {
            SizeRule::Model => (model.resolution(), model.resolution()),
            SizeRule::Fixed { width, height } => (width, height),
            SizeRule::Source => round_to_multiple(src_width, src_height, model.size_multiple()),
        }
    }

    /// The exact mapping of a `src_width × src_height` source; fails when the target
    /// size is not a multiple of the model's factor.
    pub fn geometry(
        &self,
        model: &ModelFolder,
        src_width: usize,
        src_height: usize,
    ) -> Result<Geometry> {
        let (w, h) = self.target(model, src_width, src_height);
        model
            .manifest()
            .check_frame_size(h, w)
            .map_err(|m| InferError::invalid("size", m))?;
        Ok(Geometry::fit(src_width, src_height, w, h, self.fit)?)
    }
}

/// The part of a decoded frame that shows the source, mapped back to source pixels:
/// `(x, y, width, height)` of the output window and the source-pixel size it covers
/// (rounded down to even sides, which the video encoder needs). Pad bars are dropped; a
/// crop stays cropped (what was cut away was never tokenized).
pub fn source_region(g: &Geometry) -> ((usize, usize, usize, usize), (usize, usize)) {
    let x0 = (-g.offset_x).clamp(0, g.out_width as i64) as usize;
    let x1 = (g.scaled_width as i64 - g.offset_x).clamp(0, g.out_width as i64) as usize;
    let y0 = (-g.offset_y).clamp(0, g.out_height as i64) as usize;
    let y1 = (g.scaled_height as i64 - g.offset_y).clamp(0, g.out_height as i64) as usize;
    let (w, h) = (x1.saturating_sub(x0).max(1), y1.saturating_sub(y0).max(1));
    let sx = g.src_width as f64 / g.scaled_width as f64;
    let sy = g.src_height as f64 / g.scaled_height as f64;
    let even = |v: f64| ((v.round() as usize) & !1).max(2);
    ((x0, y0, w, h), (even(w as f64 * sx), even(h as f64 * sy)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_rules_parse_and_print() {
        assert_eq!("model".parse(), Ok(SizeRule::Model));
        assert_eq!("source".parse(), Ok(SizeRule::Source));
        let fixed = |width, height| SizeRule::Fixed { width, height };
        assert_eq!("256".parse(), Ok(fixed(256, 256)));
        assert_eq!("320x192".parse(), Ok(fixed(320, 192)));
        assert!("0".parse::<SizeRule>().is_err());
        assert!("12xa".parse::<SizeRule>().is_err());
        assert_eq!(fixed(320, 192).to_string(), "320x192");
        assert_eq!(fixed(64, 64).to_string(), "64");
    }

    #[test]
    fn source_region_undoes_pad_and_keeps_crop() {
        // 640×360 padded into 256²: scaled 256×144 at y offset -56.
        let pad = Geometry::fit(640, 360, 256, 256, Fit::Pad).unwrap();
        assert_eq!(source_region(&pad), ((0, 56, 256, 144), (640, 360)));
        // Cropped: the whole 256² window shows 360×360 source pixels.
        let crop = Geometry::fit(640, 360, 256, 256, Fit::Crop).unwrap();
        assert_eq!(source_region(&crop), ((0, 0, 256, 256), (360, 360)));
        // Stretched: everything maps back to the source size.
        let stretch = Geometry::fit(640, 360, 256, 256, Fit::Resize).unwrap();
        assert_eq!(source_region(&stretch), ((0, 0, 256, 256), (640, 360)));
        // Odd source sides become even.
        let odd = Geometry::fit(63, 47, 32, 32, Fit::Resize).unwrap();
        assert_eq!(source_region(&odd).1, (62, 46));
    }
}
