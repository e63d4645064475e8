//! The seed's `normalize` / `unnormalize` pair, on u8 pixels and on `[0, 1]` floats.
//!
//! The arithmetic is [`vqtok_config::PixelAffine`]'s: `x = (u8 / divisor − offset) / std`
//! per channel, in f32, in that order — the same operations the trainer (tch) and the
//! exported ONNX graphs perform, so all three produce identical bits.

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

/// `x = (u8 / divisor − offset) / std` per channel, and its inverse.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalizer {
    divisor: [f32; 3],
    offset: [f32; 3],
    std: [f32; 3],
}

impl Normalizer {
    pub fn new(kind: &Normalize) -> Normalizer {
        let a = kind.pixel_affine();
        Normalizer {
            divisor: a.divisor.map(|v| v as f32),
            offset: a.offset.map(|v| v as f32),
            std: a.std.map(|v| v as f32),
        }
    }

    /// `(divisor, offset, std)` as f32, for consumers that apply the formula themselves.
    pub fn affine(&self) -> ([f32; 3], [f32; 3], [f32; 3]) {
        (self.divisor, self.offset, self.std)
    }

    fn forward(&self, u: f32, c: usize) -> f32 {
        (u / self.divisor[c] - self.offset[c]) / self.std[c]
    }

    fn inverse(&self, x: f32, c: usize) -> f32 {
        (x * self.std[c] + self.offset[c]) * self.divisor[c]
    }

    /// u8 pixels → model input.
    pub fn normalize_u8(&self, src: &[u8], layout: Layout) -> Result<Vec<f32>> {
        layout.check(src.len())?;
        Ok(src
            .iter()
            .enumerate()
            .map(|(i, &v)| self.forward(v as f32, layout.channel(i)))
            .collect())
    }

    /// The seed's `normalize`: `[0, 1]` floats → model input, in place.
    pub fn normalize(&self, x: &mut [f32], layout: Layout) -> Result<()> {
        layout.check(x.len())?;
        for (i, v) in x.iter_mut().enumerate() {
            *v = self.forward(*v * 255.0, layout.channel(i));
        }
        Ok(())
    }

    /// The seed's `unnormalize`: model output → `[0, 1]` floats (not clamped), in place.
    pub fn unnormalize(&self, x: &mut [f32], layout: Layout) -> Result<()> {
        layout.check(x.len())?;
        for (i, v) in x.iter_mut().enumerate() {
            *v = self.inverse(*v, layout.channel(i)) / 255.0;
        }
        Ok(())
    }

    /// Model output → u8 pixels: inverse, clamped to [0, 255], rounded half to even (as
    /// the ONNX decoder's `Round`).
    pub fn unnormalize_to_u8(&self, x: &[f32], layout: Layout) -> Result<Vec<u8>> {
        layout.check(x.len())?;
        Ok(x.iter()
            .enumerate()
            .map(|(i, &v)| {
                let u = self.inverse(v, layout.channel(i));
                // NaN (a diverged model) maps to 0 rather than poisoning a video.
                if u.is_nan() {
                    0
                } else {
                    u.clamp(0.0, 255.0).round_ties_even() as u8
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
        // taming's u8 / 127.5 − 1, exact at both ends.
        assert_eq!(out[0], -1.0);
        assert_eq!(out[1], 1.0);
        assert_eq!(out[2], 128.0f32 / 127.5 - 1.0);
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
    fn affine_is_what_normalize_applies_in_that_order() {
        let n = Normalizer::new(&imagenet());
        let (divisor, offset, std) = n.affine();
        let px = [10u8, 200, 77];
        let out = n.normalize_u8(&px, Layout::ChannelLast).unwrap();
        for c in 0..3 {
            assert_eq!(out[c], (px[c] as f32 / divisor[c] - offset[c]) / std[c]);
        }
        assert_eq!(
            Normalizer::new(&Normalize::MinusOneOne).affine(),
            ([127.5; 3], [1.0; 3], [1.0; 3])
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
