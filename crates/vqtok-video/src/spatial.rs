//! Spatial mapping of a frame to the model's input size, as one recordable [`Geometry`].
//!
//! Exact geometry (what inference records to undo it):
//! 1. the source frame (`src_width × src_height`, after rotation) is resized to
//!    `scaled_width × scaled_height` (swscale: area averaging when shrinking, bilinear otherwise);
//! 2. output pixel `(x, y)` is scaled pixel `(x + offset_x, y + offset_y)`, or black `(0, 0, 0)`
//!    where that lies outside the scaled image (offsets ≥ 0 crop, offsets ≤ 0 pad);
//! 3. if `flip`, the output is mirrored left ↔ right.
//!
//! Scaled sizes are rounded to the nearest integer; a side never ends below 1 pixel.

use serde::{Deserialize, Serialize};

use crate::error::{Result, VideoError};
use crate::frame::Frame;
use crate::scale::Scaler;

/// How a frame is mapped to a target `W × H`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Keep the aspect, scale to cover `W × H`, centre-crop the excess.
    Crop,
    /// Keep the aspect, scale to fit inside `W × H`, centre it on black.
    Pad,
    /// Stretch to `W × H` (aspect not kept).
    Resize,
}

/// Where a crop window sits in the scaled frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crop {
    /// Centred (floor of half the excess) — validation and inference.
    Centre,
    /// Top-left corner of the window; clamped into the scaled frame.
    At { x: usize, y: usize },
}

/// A complete source → output mapping (see the module docs for the exact semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Geometry {
    pub src_width: usize,
    pub src_height: usize,
    pub scaled_width: usize,
    pub scaled_height: usize,
    pub offset_x: i64,
    pub offset_y: i64,
    pub out_width: usize,
    pub out_height: usize,
    pub flip: bool,
}

impl Geometry {
    /// The training/validation mapping: the short side becomes `resolution`, then a
    /// `resolution²` window is cut at `crop`.
    pub fn short_side_crop(
        src_width: usize,
        src_height: usize,
        resolution: usize,
        crop: Crop,
    ) -> Result<Geometry> {
        let mut g = Geometry::fit(src_width, src_height, resolution, resolution, Fit::Crop)?;
        if let Crop::At { x, y } = crop {
            g.offset_x = x.min(g.scaled_width - resolution) as i64;
            g.offset_y = y.min(g.scaled_height - resolution) as i64;
        }
        Ok(g)
    }

    /// Maps `src` to `out_width × out_height` by `fit`, centred.
    pub fn fit(
        src_width: usize,
        src_height: usize,
        out_width: usize,
        out_height: usize,
        fit: Fit,
    ) -> Result<Geometry> {
        if src_width == 0 || src_height == 0 || out_width == 0 || out_height == 0 {
            return Err(VideoError::invalid(
                "geometry",
                format!("sizes must be > 0: {src_width}×{src_height} → {out_width}×{out_height}"),
            ));
        }
        let sx = out_width as f64 / src_width as f64;
        let sy = out_height as f64 / src_height as f64;
        let scaled = |s: f64| {
            let w = ((src_width as f64 * s).round() as usize).max(1);
            let h = ((src_height as f64 * s).round() as usize).max(1);
            (w, h)
        };
        let (scaled_width, scaled_height) = match fit {
            Fit::Resize => (out_width, out_height),
            // The axis that decides the scale gets exactly the target size; rounding on the
            // other axis must not leave a gap (crop) or overflow (pad).
            Fit::Crop => {
                let (w, h) = scaled(sx.max(sy));
                if sx >= sy {
                    (out_width, h.max(out_height))
                } else {
                    (w.max(out_width), out_height)
                }
            }
            Fit::Pad => {
                let (w, h) = scaled(sx.min(sy));
                if sx <= sy {
                    (out_width, h.min(out_height))
                } else {
                    (w.min(out_width), out_height)
                }
            }
        };
        Ok(Geometry {
            src_width,
            src_height,
            scaled_width,
            scaled_height,
            offset_x: (scaled_width as i64 - out_width as i64).div_euclid(2),
            offset_y: (scaled_height as i64 - out_height as i64).div_euclid(2),
            out_width,
            out_height,
            flip: false,
        })
    }

    /// Applies the whole mapping to a frame of `src_width × src_height`.
    pub fn apply(&self, frame: &Frame) -> Result<Frame> {
        expect_size(frame, "frame", (self.src_width, self.src_height))?;
        let scaled = resize(frame, self.scaled_width, self.scaled_height)?;
        self.place(&scaled)
    }

    /// Steps 2–3 only, for a frame that is already `scaled_width × scaled_height` (the
    /// decoder scales while converting to RGB).
    pub fn place(&self, scaled: &Frame) -> Result<Frame> {
        expect_size(
            scaled,
            "scaled frame",
            (self.scaled_width, self.scaled_height),
        )?;
        let (ow, oh) = (self.out_width, self.out_height);
        let mut out = vec![0u8; ow * oh * 3];
        // The output columns that come from the scaled image, and their source column.
        let x0 = (-self.offset_x).clamp(0, ow as i64) as usize;
        let x1 = (self.scaled_width as i64 - self.offset_x).clamp(0, ow as i64) as usize;
        if x1 > x0 {
            for y in 0..oh {
                let sy = y as i64 + self.offset_y;
                if sy < 0 || sy >= self.scaled_height as i64 {
                    continue;
                }
                let sx = (x0 as i64 + self.offset_x) as usize;
                let src = (sy as usize * self.scaled_width + sx) * 3;
                let dst = (y * ow + x0) * 3;
                let n = (x1 - x0) * 3;
                out[dst..dst + n].copy_from_slice(&scaled.data[src..src + n]);
            }
        }
        let mut frame = Frame {
            width: ow,
            height: oh,
            data: out,
        };
        if self.flip {
            frame.flip_horizontal();
        }
        Ok(frame)
    }
}

/// Fails unless `frame` (`what`, in the message) is `width × height`.
fn expect_size(frame: &Frame, what: &str, (width, height): (usize, usize)) -> Result<()> {
    if (frame.width, frame.height) == (width, height) {
        return Ok(());
    }
    Err(VideoError::invalid(
        "geometry",
        format!(
            "{what} is {}×{}, geometry expects {width}×{height}",
            frame.width, frame.height
        ),
    ))
}

/// Rounds a size to the nearest multiple of `factor` per side (at least `factor`), e.g. the
/// model's downsampling factor for inference at native aspect.
pub fn round_to_multiple(width: usize, height: usize, factor: usize) -> (usize, usize) {
    let f = factor.max(1);
    let r = |v: usize| (((v + f / 2) / f) * f).max(f);
    (r(width), r(height))
}

/// Resizes an RGB24 frame (swscale; area when shrinking, bilinear otherwise).
pub fn resize(frame: &Frame, width: usize, height: usize) -> Result<Frame> {
    if (width, height) == (frame.width, frame.height) {
        return Ok(frame.clone());
    }
    crate::ensure_ffmpeg();
    let data = Scaler::new().rgb_to_rgb(&frame.data, frame.width, frame.height, width, height)?;
    Frame::new(width, height, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_side_crop_of_720p_to_256() {
        let g = Geometry::short_side_crop(1280, 720, 256, Crop::Centre).unwrap();
        // 1280·256/720 = 455.1 → 455; excess 199 → offset 99 (floor).
        assert_eq!((g.scaled_width, g.scaled_height), (455, 256));
        assert_eq!((g.offset_x, g.offset_y), (99, 0));
        assert_eq!((g.out_width, g.out_height), (256, 256));
        let portrait = Geometry::short_side_crop(48, 64, 32, Crop::Centre).unwrap();
        assert_eq!((portrait.scaled_width, portrait.scaled_height), (32, 43));
        assert_eq!((portrait.offset_x, portrait.offset_y), (0, 5));
        // A random-crop corner is clamped into the frame.
        let at = Geometry::short_side_crop(1280, 720, 256, Crop::At { x: 1000, y: 3 }).unwrap();
        assert_eq!((at.offset_x, at.offset_y), (199, 0));
    }

    #[test]
    fn fit_modes() {
        let pad = Geometry::fit(1280, 720, 512, 512, Fit::Pad).unwrap();
        assert_eq!((pad.scaled_width, pad.scaled_height), (512, 288));
        assert_eq!((pad.offset_x, pad.offset_y), (0, -112));
        let crop = Geometry::fit(1280, 720, 512, 512, Fit::Crop).unwrap();
        assert_eq!((crop.scaled_width, crop.scaled_height), (910, 512));
        assert_eq!(crop.offset_x, 199);
        let stretch = Geometry::fit(1280, 720, 64, 32, Fit::Resize).unwrap();
        assert_eq!(
            (
                stretch.scaled_width,
                stretch.scaled_height,
                stretch.offset_x
            ),
            (64, 32, 0)
        );
        assert!(Geometry::fit(0, 720, 64, 32, Fit::Resize).is_err());
        assert_eq!(round_to_multiple(1280, 717, 16), (1280, 720));
        assert_eq!(round_to_multiple(5, 700, 16), (16, 704));
    }

    /// 8×4 frame whose red channel is the x coordinate and green the y coordinate.
    fn coords(w: usize, h: usize) -> Frame {
        let data = (0..h)
            .flat_map(|y| (0..w).flat_map(move |x| [x as u8, y as u8, 7]))
            .collect();
        Frame::new(w, h, data).unwrap()
    }

    #[test]
    fn place_crops_pads_and_flips_exactly() {
        let f = coords(8, 4);
        let mut g = Geometry::fit(8, 4, 4, 4, Fit::Crop).unwrap();
        assert_eq!(g.offset_x, 2);
        let out = g.place(&f).unwrap();
        assert_eq!(out.pixel(0, 0), [2, 0, 7]);
        assert_eq!(out.pixel(3, 3), [5, 3, 7]);
        g.flip = true;
        let flipped = g.place(&f).unwrap();
        assert_eq!(flipped.pixel(0, 1), [5, 1, 7]);
        assert_eq!(flipped.pixel(3, 1), [2, 1, 7]);

        let pad = Geometry::fit(8, 4, 8, 8, Fit::Pad).unwrap();
        assert_eq!((pad.offset_x, pad.offset_y), (0, -2));
        let out = pad.place(&f).unwrap();
        assert_eq!(out.pixel(3, 0), [0, 0, 0]);
        assert_eq!(out.pixel(3, 2), [3, 0, 7]);
        assert_eq!(out.pixel(6, 5), [6, 3, 7]);
        assert_eq!(out.pixel(6, 6), [0, 0, 0]);
        assert!(pad.place(&coords(4, 4)).is_err());
    }

    #[test]
    fn resize_keeps_flat_colour_and_averages_when_shrinking() {
        let flat = Frame::filled(40, 30, [200, 100, 50]);
        let small = resize(&flat, 10, 8).unwrap();
        // A flat image stays flat through any filter, up to rounding (±1).
        for p in small.data.chunks(3) {
            for (a, b) in p.iter().zip([200u8, 100, 50]) {
                assert!(a.abs_diff(b) <= 1, "{p:?}");
            }
        }
        // Vertical stripes 0/255 one pixel wide shrink by 2 to mid grey (area average).
        let stripes: Vec<u8> = (0..16)
            .flat_map(|_| (0..16).flat_map(|x| [if x % 2 == 0 { 0 } else { 255 }; 3]))
            .collect();
        let s = resize(&Frame::new(16, 16, stripes).unwrap(), 8, 8).unwrap();
        assert!(
            s.data.iter().all(|&v| (124..=131).contains(&v)),
            "{:?}",
            &s.data[..12]
        );
        let apply = Geometry::short_side_crop(40, 30, 16, Crop::Centre)
            .unwrap()
            .apply(&flat)
            .unwrap();
        assert_eq!((apply.width, apply.height), (16, 16));
    }
}
