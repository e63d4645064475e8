//! An RGB24 image in memory and the pixel moves that need no resampling (rotation, flip).

use serde::{Deserialize, Serialize};

use crate::error::{Result, VideoError};

/// A tightly packed RGB24 image: `data[(y · width + x) · 3 + c]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl Frame {
    /// Checks that `data` holds exactly `width · height` RGB pixels.
    pub fn new(width: usize, height: usize, data: Vec<u8>) -> Result<Frame> {
        if width == 0 || height == 0 || data.len() != width * height * 3 {
            return Err(VideoError::invalid(
                "frame",
                format!(
                    "{width}×{height} RGB24 needs {} bytes, got {}",
                    width * height * 3,
                    data.len()
                ),
            ));
        }
        Ok(Frame {
            width,
            height,
            data,
        })
    }

    /// A frame of one colour.
    pub fn filled(width: usize, height: usize, rgb: [u8; 3]) -> Frame {
        Frame {
            width,
            height,
            data: rgb.repeat(width * height),
        }
    }

    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// Mirror left ↔ right in place.
    pub fn flip_horizontal(&mut self) {
        let row = self.width * 3;
        for line in self.data.chunks_exact_mut(row) {
            for x in 0..self.width / 2 {
                let (a, b) = (x * 3, (self.width - 1 - x) * 3);
                for c in 0..3 {
                    line.swap(a + c, b + c);
                }
            }
        }
    }

    /// The frame turned clockwise by `rotation` (90/270 swap width and height).
    pub fn rotated(&self, rotation: Rotation) -> Frame {
        let (w, h) = (self.width, self.height);
        let (ow, oh) = match rotation {
            Rotation::R0 => return self.clone(),
            Rotation::R90 | Rotation::R270 => (h, w),
            Rotation::R180 => (w, h),
        };
        let mut out = vec![0u8; self.data.len()];
        for y in 0..h {
            for x in 0..w {
                // Where source pixel (x, y) lands after turning the picture clockwise.
                let (ox, oy) = match rotation {
                    Rotation::R90 => (h - 1 - y, x),
                    Rotation::R180 => (w - 1 - x, h - 1 - y),
                    Rotation::R270 => (y, w - 1 - x),
                    Rotation::R0 => (x, y),
                };
                let s = (y * w + x) * 3;
                let d = (oy * ow + ox) * 3;
                out[d..d + 3].copy_from_slice(&self.data[s..s + 3]);
            }
        }
        Frame {
            width: ow,
            height: oh,
            data: out,
        }
    }
}

/// Clockwise turn that makes a stored picture upright, from the container's display matrix
/// (what the `ffmpeg` CLI's autorotate applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Rotation {
    #[default]
    R0,
    R90,
    R180,
    R270,
}

impl Rotation {
    /// Snaps any angle to the nearest quarter turn.
    pub fn from_clockwise_degrees(deg: f64) -> Rotation {
        if !deg.is_finite() {
            return Rotation::R0;
        }
        let quarter = ((deg / 90.0).round() as i64).rem_euclid(4);
        [Rotation::R0, Rotation::R90, Rotation::R180, Rotation::R270][quarter as usize]
    }

    /// True when the displayed picture is the stored one transposed.
    pub fn swaps_axes(self) -> bool {
        matches!(self, Rotation::R90 | Rotation::R270)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 3×2 frame whose red channel numbers the pixels 0..6 in row-major order.
    fn numbered() -> Frame {
        Frame::new(3, 2, (0..6u8).flat_map(|i| [i, 0, 0]).collect()).unwrap()
    }

    fn reds(f: &Frame) -> Vec<u8> {
        f.data.chunks(3).map(|p| p[0]).collect()
    }

    #[test]
    fn rotations_move_pixels_clockwise() {
        // 0 1 2      clockwise 90:  3 0
        // 3 4 5                     4 1
        //                           5 2
        let f = numbered();
        let r90 = f.rotated(Rotation::R90);
        assert_eq!((r90.width, r90.height), (2, 3));
        assert_eq!(reds(&r90), vec![3, 0, 4, 1, 5, 2]);
        assert_eq!(reds(&f.rotated(Rotation::R180)), vec![5, 4, 3, 2, 1, 0]);
        let r270 = f.rotated(Rotation::R270);
        assert_eq!(reds(&r270), vec![2, 5, 1, 4, 0, 3]);
        // Four quarter turns are the identity.
        let back = r90
            .rotated(Rotation::R90)
            .rotated(Rotation::R90)
            .rotated(Rotation::R90);
        assert_eq!(back, f);
    }

    #[test]
    fn flip_mirrors_each_row() {
        let mut f = numbered();
        f.flip_horizontal();
        assert_eq!(reds(&f), vec![2, 1, 0, 5, 4, 3]);
    }

    #[test]
    fn rotation_snaps_angles() {
        assert_eq!(Rotation::from_clockwise_degrees(89.6), Rotation::R90);
        assert_eq!(Rotation::from_clockwise_degrees(-90.0), Rotation::R270);
        assert_eq!(Rotation::from_clockwise_degrees(540.0), Rotation::R180);
        assert_eq!(Rotation::from_clockwise_degrees(f64::NAN), Rotation::R0);
        assert!(Rotation::R270.swaps_axes() && !Rotation::R180.swaps_axes());
    }

    #[test]
    fn new_checks_the_buffer_size() {
        assert!(Frame::new(2, 2, vec![0; 12]).is_ok());
        assert!(Frame::new(2, 2, vec![0; 11]).is_err());
        assert!(Frame::new(0, 2, vec![]).is_err());
    }
}
