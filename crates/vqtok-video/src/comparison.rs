//! A picture of original and reconstructed frames side by side (`compare.png`): what a
//! person looks at to judge a tokenizer, since a PSNR alone does not show what was lost.

use std::path::Path;

use crate::error::{Result, VideoError};
use crate::frame::Frame;

/// Frames whose short side is below this are enlarged by a whole factor (nearest
/// neighbour, so no detail is invented) until it is reached: a 64² model's frames are
/// otherwise too small to see in an image viewer.
const MIN_SHORT_SIDE: usize = 192;
/// White space between frames, in output pixels.
const GAP: usize = 4;

/// One image: the originals on the top row, their reconstructions below, left to right in
/// the order given. All frames must have the same size.
pub fn comparison_image(pairs: &[(Frame, Frame)]) -> Result<Frame> {
    let Some((first, _)) = pairs.first() else {
        return Err(VideoError::invalid("comparison", "no frames to compare"));
    };
    let (w, h) = (first.width, first.height);
    if let Some((a, b)) = pairs
        .iter()
        .flat_map(|(a, b)| [a, b])
        .map(|f| (f.width, f.height))
        .find(|&s| s != (w, h))
    {
        return Err(VideoError::invalid(
            "comparison",
            format!("frames of {a}×{b} and {w}×{h} cannot share one picture"),
        ));
    }
    let scale = MIN_SHORT_SIDE.div_ceil(w.min(h)).max(1);
    let (cw, ch) = (w * scale, h * scale);
    let n = pairs.len();
    let width = n * cw + (n + 1) * GAP;
    let height = 2 * ch + 3 * GAP;
    let mut out = Frame::filled(width, height, [255, 255, 255]);
    for (i, (original, recon)) in pairs.iter().enumerate() {
        let x0 = GAP + i * (cw + GAP);
        for (row, frame) in [original, recon].into_iter().enumerate() {
            let y0 = GAP + row * (ch + GAP);
            for y in 0..ch {
                for x in 0..cw {
                    let src = ((y / scale) * w + x / scale) * 3;
                    let dst = ((y0 + y) * width + x0 + x) * 3;
                    out.data[dst..dst + 3].copy_from_slice(&frame.data[src..src + 3]);
                }
            }
        }
    }
    Ok(out)
}

/// Writes [`comparison_image`] as a PNG at `path` (atomically: a crash never leaves half a
/// picture).
pub fn write_comparison(path: &Path, pairs: &[(Frame, Frame)]) -> Result<()> {
    let image = comparison_image(pairs)?;
    let fail = |detail: String| VideoError::WriteImage {
        path: path.to_path_buf(),
        detail,
    };
    let mut png = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut png),
        &image.data,
        image.width as u32,
        image.height as u32,
        image::ExtendedColorType::Rgb8,
    )
    .map_err(|e| fail(e.to_string()))?;
    vqtok_core::fs::write_atomic(path, &png).map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn originals_above_reconstructions_enlarged_by_a_whole_factor() {
        let red = Frame::filled(64, 48, [255, 0, 0]);
        let blue = Frame::filled(64, 48, [0, 0, 255]);
        let img = comparison_image(&[(red.clone(), blue.clone()), (red, blue)]).unwrap();
        // 48 → ×4 = 192 (the smallest whole factor reaching 192): 256×192 per frame.
        assert_eq!(
            (img.width, img.height),
            (2 * 256 + 3 * GAP, 2 * 192 + 3 * GAP)
        );
        assert_eq!(img.pixel(GAP, GAP), [255, 0, 0]);
        assert_eq!(img.pixel(GAP + 255, GAP + 191), [255, 0, 0]);
        assert_eq!(img.pixel(GAP, 2 * GAP + 192), [0, 0, 255]);
        assert_eq!(img.pixel(0, 0), [255, 255, 255], "gap");
        assert_eq!(img.pixel(2 * GAP + 256, GAP), [255, 0, 0], "second column");
    }

    #[test]
    fn mismatched_or_missing_frames_are_refused() {
        let a = Frame::filled(8, 8, [0; 3]);
        let b = Frame::filled(8, 4, [0; 3]);
        assert!(comparison_image(&[(a, b)]).is_err());
        assert!(comparison_image(&[]).is_err());
    }

    #[test]
    fn written_png_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("compare.png");
        let f = Frame::filled(200, 200, [10, 20, 30]);
        write_comparison(&path, &[(f.clone(), f)]).unwrap();
        let back = crate::load_image(&path, 4096).unwrap();
        assert_eq!((back.width, back.height), (200 + 2 * GAP, 400 + 3 * GAP));
        assert_eq!(back.pixel(GAP, GAP), [10, 20, 30]);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no partial file"
        );
    }
}
