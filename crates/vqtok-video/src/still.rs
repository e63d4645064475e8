//! Still images (PNG, JPEG) through the `image` crate: one-frame videos for the loader, with
//! EXIF orientation applied (FFmpeg 5.1 ignores it) and a size check before any pixel is
//! decoded, so a forged header cannot make us allocate gigabytes.

use std::io::Read;
use std::path::Path;

use image::{ImageDecoder, ImageReader, Limits};

use crate::error::{Result, SkipReason, VideoError};
use crate::frame::Frame;

/// Image formats routed to the `image` crate, recognised by content, not extension.
pub(crate) fn is_still(path: &Path) -> bool {
    // Only regular files are sniffed: opening a FIFO here would block outside FFmpeg's
    // interrupt callback.
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return false;
    }
    let mut head = [0u8; 8];
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let Ok(n) = f.read(&mut head) else {
        return false;
    };
    let head = &head[..n];
    head.starts_with(b"\x89PNG\r\n\x1a\n") || head.starts_with(&[0xff, 0xd8, 0xff])
}

/// Loads a PNG or JPEG as upright RGB24. Sizes above `max_side` per side are rejected.
pub fn load_image(path: impl AsRef<Path>, max_side: u32) -> Result<Frame> {
    let path = path.as_ref();
    let bad = |reason: SkipReason, e: &dyn std::fmt::Display| {
        VideoError::file(path, reason, e.to_string())
    };
    let mut reader = ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| bad(SkipReason::Io, &e))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(max_side);
    limits.max_image_height = Some(max_side);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| classify(path, e))?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(bad(SkipReason::AbsurdResolution, &format!("{w}×{h}")));
    }
    let orientation = decoder.orientation().map_err(|e| classify(path, e))?;
    let mut img = image::DynamicImage::from_decoder(decoder).map_err(|e| classify(path, e))?;
    img.apply_orientation(orientation);
    let rgb = img.into_rgb8();
    let (w, h) = rgb.dimensions();
    Frame::new(w as usize, h as usize, rgb.into_raw())
}

fn classify(path: &Path, e: image::ImageError) -> VideoError {
    use image::ImageError as E;
    let reason = match &e {
        E::Limits(_) => SkipReason::AbsurdResolution,
        E::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => SkipReason::Corrupt,
        E::IoError(_) => SkipReason::Io,
        E::Decoding(_) => SkipReason::Corrupt,
        _ => SkipReason::Unreadable,
    };
    VideoError::file(path, reason, e.to_string())
}
