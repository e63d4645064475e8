//! Checks on what callers pass to the adapters (images from videos, index grids from
//! token files), so bad input is an error that names the problem instead of a panic
//! inside libtorch.

use tch::{Kind, Tensor};

use super::ModelError;

/// `[B, channels, H, W]` floating point with H and W positive multiples of `multiple`.
pub fn check_images(images: &Tensor, channels: usize, multiple: usize) -> Result<(), ModelError> {
    let size = images.size();
    if size.len() != 4 {
        return Err(ModelError::input(format!(
            "images must be [B, C, H, W], got shape {size:?}"
        )));
    }
    if !images.is_floating_point() {
        return Err(ModelError::input(format!(
            "images must be floating point, got {:?}",
            images.kind()
        )));
    }
    if size[0] < 1 || size[1] != channels as i64 {
        return Err(ModelError::input(format!(
            "images must be [B ≥ 1, {channels}, H, W], got shape {size:?}"
        )));
    }
    let m = multiple as i64;
    if size[2] < m || size[3] < m || size[2] % m != 0 || size[3] % m != 0 {
        return Err(ModelError::input(format!(
            "image height and width must be positive multiples of the downsampling factor {multiple}, got {}×{}",
            size[2], size[3]
        )));
    }
    Ok(())
}

/// One `[B, h, w]` integer grid per level, `levels[i] = (codebook size, pixels per token)`,
/// every index in `[0, K)`, all grids covering the same batch and image size.
pub fn check_indices(indices: &[Tensor], levels: &[(i64, usize)]) -> Result<(), ModelError> {
    if indices.len() != levels.len() {
        return Err(ModelError::input(format!(
            "expected {} index grid(s), got {}",
            levels.len(),
            indices.len()
        )));
    }
    let mut covered: Option<(i64, i64, i64)> = None;
    for (i, (grid, &(size, factor))) in indices.iter().zip(levels).enumerate() {
        let shape = grid.size();
        if shape.len() != 3 || shape.iter().any(|&s| s < 1) {
            return Err(ModelError::input(format!(
                "index grid {i} must be a non-empty [B, h, w], got shape {shape:?}"
            )));
        }
        if !matches!(grid.kind(), Kind::Int64 | Kind::Int) {
            return Err(ModelError::input(format!(
                "index grid {i} must be int64 or int32, got {:?}",
                grid.kind()
            )));
        }
        let (lo, hi) = (grid.min().int64_value(&[]), grid.max().int64_value(&[]));
        if lo < 0 || hi >= size {
            return Err(ModelError::input(format!(
                "index grid {i} has codes in [{lo}, {hi}], outside the codebook [0, {size})"
            )));
        }
        let f = factor as i64;
        let here = (shape[0], shape[1] * f, shape[2] * f);
        match covered {
            Some(c) if c != here => {
                return Err(ModelError::input(format!(
                    "index grid {i} ({shape:?}, {factor} pixels per token) does not cover the same batch and image as grid 0"
                )));
            }
            _ => covered = Some(here),
        }
    }
    Ok(())
}
