//! The seed's `normalize` / `unnormalize` pair as one per-channel affine map on u8 pixels.
//!
//! The seed feeds `normalize(images.float() / 255.)` to the model. Written on the u8 value this
//! is `scale[c] · u8 + shift[c]`; [`Normalizer::scale_shift`] hands those six f32 numbers out so
//! the trainer (tch) and the exported ONNX graphs apply exactly the same arithmetic as
//! [`Normalizer::normalize_u8`].

use vqtok_config::Normalize;

use crate::error::{Result, VideoError};

/// Where the channel index of element `i` of a slice comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Interleaved RGB (`… h w c`, the loader's batches): channel = `i % 3`.
    ChannelLast,
    /// Planar (`… c h w`, what the model sees): channel = `(i / plane) % 3` with
    /// `plane = h · w`.
    ChannelFirst { plane: usize },
}

impl Layout {
    fn channel(self, i: usize) -> usize {
        match self {
            Layout::ChannelLast => i % 3,
            Layout::ChannelFirst { plane } => (i / plane) % 3,
        }
    }

    fn check(self, len: usize) -> Result<()> {
        let unit = match self {
            Layout::ChannelLast => 3,
            Layout::ChannelFirst { plane: 0 } => {
                return Err(VideoError::invalid("layout", "plane size must be > 0"));
            }
            Layout::ChannelFirst { plane } => 3 * plane,
        };
        if !len.is_multiple_of(unit) {
            return Err(VideoError::invalid(
                "layout",
                format!(
                    "slice of {len} values is not a whole number of {unit}-value pixels/images"
                ),
            ));
        }
        Ok(())
    }
}

/// `normalized = scale[c] · u8 + shift[c]`, and its exact inverse.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalizer {
    scale: [f32; 3],
    shift: [f32; 3],
}

impl Normalizer {
    /// taming's `x·2 − 1` on `x = u8/255` gives scale `2/255`, shift `−1`; mean/std gives
    /// scale `1/(255·std)`, shift `−mean/std` (computed in f64, then rounded once to f32).
    pub fn new(kind: &Normalize) -> Normalizer {
        let (scale, shift): ([f64; 3], [f64; 3]) = match kind {
            Normalize::MinusOneOne => ([2.0 / 255.0; 3], [-1.0; 3]),
            Normalize::MeanStd { mean, std } => (
                std::array::from_fn(|c| 1.0 / (255.0 * std[c])),
                std::array::from_fn(|c| -mean[c] / std[c]),
            ),
        };
        Normalizer {
            scale: scale.map(|v| v as f32),
            shift: shift.map(|v| v as f32),
        }
    }

    /// The per-channel affine form on u8 values: `(scale, shift)`.
    pub fn scale_shift(&self) -> ([f32; 3], [f32; 3]) {
        (self.scale, self.shift)
    }

    /// u8 pixels → model input.
    pub fn normalize_u8(&self, src: &[u8], layout: Layout) -> Result<Vec<f32>> {
        layout.check(src.len())?;
        Ok(src
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let c = layout.channel(i);
                self.scale[c] * v as f32 + self.shift[c]
            })
            .collect())
    }

    /// The seed's `normalize`: `[0, 1]` floats → model input, in place.
    pub fn normalize(&self, x: &mut [f32], layout: Layout) -> Result<()> {
        layout.check(x.len())?;
        for (i, v) in x.iter_mut().enumerate() {
            let c = layout.channel(i);
            *v = self.scale[c] * 255.0 * *v + self.shift[c];
        }
        Ok(())
    }

    /// The seed's `unnormalize`: model output → `[0, 1]` floats (not clamped), in place.
    pub fn unnormalize(&self, x: &mut [f32], layout: Layout) -> Result<()> {
        layout.check(x.len())?;
        for (i, v) in x.iter_mut().enumerate() {
            let c = layout.channel(i);
            *v = (*v - self.shift[c]) / (self.scale[c] * 255.0);
        }
        Ok(())
    }

    /// Model output → u8 pixels: inverse affine, rounded to nearest and clamped to [0, 255].
    pub fn unnormalize_to_u8(&self, x: &[f32], layout: Layout) -> Result<Vec<u8>> {
        layout.check(x.len())?;
        Ok(x.iter()
            .enumerate()
            .map(|(i, &v)| {
                let c = layout.channel(i);
                let u = (v - self.shift[c]) / self.scale[c];
                // NaN (a diverged model) maps to 0 rather than poisoning a video.
                if u.is_nan() {
                    0
                } else {
                    u.round().clamp(0.0, 255.0) as u8
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imagenet() -> Normalize {
        Normalize::MeanStd {
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }

    #[test]
    fn minus_one_one_maps_the_ends_exactly() {
        let n = Normalizer::new(&Normalize::MinusOneOne);
        let out = n.normalize_u8(&[0, 255, 128], Layout::ChannelLast).unwrap();
        // f32: 2/255·255 − 1 is 1 up to one ulp.
        assert_eq!(out[0], -1.0);
        assert!((out[1] - 1.0).abs() < 1e-6, "{}", out[1]);
        assert!((out[2] - (128.0 / 255.0 * 2.0 - 1.0)).abs() < 1e-6);
    }

    #[test]
    fn every_u8_round_trips_for_both_kinds_and_layouts() {
        for kind in [Normalize::MinusOneOne, imagenet()] {
            let n = Normalizer::new(&kind);
            // 256 pixels of 3 channels, channel c holding value v at pixel v.
            let last: Vec<u8> = (0..=255u8).flat_map(|v| [v, v, v]).collect();
            let x = n.normalize_u8(&last, Layout::ChannelLast).unwrap();
            assert_eq!(n.unnormalize_to_u8(&x, Layout::ChannelLast).unwrap(), last);
            let first: Vec<u8> = (0..3).flat_map(|_| 0..=255u8).collect();
            let layout = Layout::ChannelFirst { plane: 256 };
            let x = n.normalize_u8(&first, layout).unwrap();
            assert_eq!(n.unnormalize_to_u8(&x, layout).unwrap(), first);
        }
    }

    #[test]
    fn float_pair_is_the_seeds_formula_and_round_trips() {
        let n = Normalizer::new(&imagenet());
        let orig = vec![0.0f32, 0.5, 1.0, 0.25, 0.75, 0.1];
        let mut x = orig.clone();
        n.normalize(&mut x, Layout::ChannelLast).unwrap();
        // (x − mean) / std per channel; f32 arithmetic, so 1e-5 relative.
        let want = [
            (0.0 - 0.485) / 0.229,
            (0.5 - 0.456) / 0.224,
            (1.0 - 0.406) / 0.225,
        ];
        for c in 0..3 {
            assert!(
                (x[c] as f64 - want[c]).abs() < 1e-5,
                "{c}: {} vs {}",
                x[c],
                want[c]
            );
        }
        n.unnormalize(&mut x, Layout::ChannelLast).unwrap();
        for (a, b) in x.iter().zip(&orig) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn scale_shift_is_what_normalize_applies() {
        let n = Normalizer::new(&imagenet());
        let (scale, shift) = n.scale_shift();
        let px = [10u8, 200, 77];
        let out = n.normalize_u8(&px, Layout::ChannelLast).unwrap();
        for c in 0..3 {
            assert_eq!(out[c], scale[c] * px[c] as f32 + shift[c]);
        }
        assert_eq!(
            Normalizer::new(&Normalize::MinusOneOne).scale_shift().1,
            [-1.0; 3]
        );
    }

    #[test]
    fn wrong_lengths_and_nan_are_handled() {
        let n = Normalizer::new(&Normalize::MinusOneOne);
        assert!(n.normalize_u8(&[1, 2], Layout::ChannelLast).is_err());
        assert!(
            n.normalize_u8(&[1, 2, 3], Layout::ChannelFirst { plane: 2 })
                .is_err()
        );
        assert!(
            n.normalize_u8(&[1, 2, 3], Layout::ChannelFirst { plane: 0 })
                .is_err()
        );
        let u = n
            .unnormalize_to_u8(&[f32::NAN, 5.0, -5.0], Layout::ChannelLast)
            .unwrap();
        assert_eq!(u, vec![0, 255, 0]);
    }
}
