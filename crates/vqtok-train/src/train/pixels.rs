//! The seed's `rearrange(images, 'b d h w c -> (b d) c h w')` + `normalize`, and the
//! way back to pixels, on tch tensors.
//!
//! The arithmetic is `vqtok_config::PixelAffine`'s — `(u8 / divisor − offset) / std`
//! in f32, in that order — exactly what the exported ONNX graphs compute, so the
//! tokens of a frame are the same in training, in verify and in deployment.

use tch::{Device, Kind, Tensor};
use vqtok_config::Normalize;

use crate::train::data::ClipBatch;

pub struct PixelNorm {
    divisor: Tensor,
    offset: Tensor,
    std: Tensor,
}

impl PixelNorm {
    pub fn new(normalize: &Normalize, device: Device) -> PixelNorm {
        let a = normalize.pixel_affine();
        let per_channel = |v: [f64; 3]| {
            Tensor::from_slice(&v.map(|x| x as f32))
                .view([1, 3, 1, 1])
                .to_device(device)
        };
        PixelNorm {
            divisor: per_channel(a.divisor),
            offset: per_channel(a.offset),
            std: per_channel(a.std),
        }
    }

    /// u8 `[b, d, h, w, 3]` → normalised f32 `[(b·d), 3, h, w]` on the device. The
    /// upload is u8 (a quarter of the bytes); the conversion runs on the device.
    pub fn model_input(&self, batch: &ClipBatch) -> Tensor {
        let [b, d, h, w, c] = batch.shape.map(|v| v as i64);
        let frames = Tensor::from_slice(&batch.images).view([b * d, h, w, c]);
        self.normalize_frames(&frames)
    }

    /// u8 `[N, H, W, 3]` (any device) → normalised f32 `[N, 3, H, W]` on this norm's device.
    pub fn normalize_frames(&self, frames: &Tensor) -> Tensor {
        let x = frames
            .to_device(self.divisor.device())
            .permute([0, 3, 1, 2])
            .to_kind(Kind::Float);
        ((x / &self.divisor) - &self.offset) / &self.std
    }

    /// Model output `[N, 3, H, W]` → float pixels on [0, 255] (clamped, not rounded),
    /// same layout and device.
    pub fn to_pixels(&self, x: &Tensor) -> Tensor {
        let x = x.detach().to_kind(Kind::Float);
        ((x * &self.std + &self.offset) * &self.divisor).clamp(0.0, 255.0)
    }

    /// Model output `[N, 3, H, W]` → u8 `[N, H, W, 3]` on the CPU: inverse, clamped to
    /// [0, 255], rounded half to even (as the ONNX decoder).
    pub fn to_u8_frames(&self, x: &Tensor) -> Tensor {
        self.to_pixels(x)
            .round()
            .to_kind(Kind::Uint8)
            .permute([0, 2, 3, 1])
            .contiguous()
            .to_device(Device::Cpu)
    }
}

/// Inputs above reconstructions, up to `max` frames side by side: RGB u8 `(h, w, data)`.
pub fn comparison_grid(
    norm: &PixelNorm,
    inputs: &Tensor,
    recon: &Tensor,
    max: i64,
) -> (u32, u32, Vec<u8>) {
    let n = inputs.size()[0].min(max);
    let row = |t: &Tensor| {
        let frames = norm.to_u8_frames(&t.narrow(0, 0, n));
        Tensor::cat(&frames.unbind(0), 1)
    };
    let grid = Tensor::cat(&[row(inputs), row(recon)], 0).contiguous();
    let [h, w, _] = grid.size()[..] else {
        unreachable!("a grid is h×w×3")
    };
    let data = Vec::<u8>::try_from(grid.view([-1])).expect("u8 grid converts");
    (h as u32, w as u32, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_matches_the_formula_and_inverts() {
        let norm = PixelNorm::new(&Normalize::MinusOneOne, Device::Cpu);
        let px: Vec<u8> = (0..=255u8).flat_map(|v| [v, 255 - v, v / 2]).collect();
        let batch = ClipBatch {
            images: px.clone(),
            shape: [1, 1, 16, 16, 3],
            paths: vec![],
        };
        let x = norm.model_input(&batch);
        assert_eq!(x.size(), [1, 3, 16, 16]);
        let first = x.double_value(&[0, 0, 0, 1]) as f32;
        assert_eq!(first, 1.0f32 / 127.5 - 1.0, "u8 / 127.5 − 1 in f32");
        let back = norm.to_u8_frames(&x);
        assert_eq!(Vec::<u8>::try_from(back.view([-1])).unwrap(), px);
    }

    #[test]
    fn grid_puts_inputs_above_reconstructions() {
        let norm = PixelNorm::new(&Normalize::MinusOneOne, Device::Cpu);
        let x = Tensor::ones([3, 3, 4, 5], (Kind::Float, Device::Cpu));
        let y = -Tensor::ones([3, 3, 4, 5], (Kind::Float, Device::Cpu));
        let (h, w, data) = comparison_grid(&norm, &x, &y, 2);
        assert_eq!((h, w), (8, 10));
        assert_eq!(data[0], 255);
        assert_eq!(data[data.len() - 1], 0);
    }
}
