//! vqtok's video data pipeline (the seed's `video_pipe`), on FFmpeg through `ffmpeg-next`.
//!
//! - [`VideoReader`]: streaming decode of any container/codec FFmpeg reads, to RGB24 frames on
//!   a constant frame grid, with seeking, rotation metadata and variable frame rate handled.
//! - [`VideoLoader`]: `(images, paths)` batches `[b, d, h, w, 3]` of u8 from directories,
//!   globs or manifests; deterministic for a seed whatever the worker count, resumable from a
//!   [`LoaderState`], and never stopped by a bad file (skipped once with a warning line,
//!   counted in [`LoaderStats`]).
//! - [`Normalizer`]: `normalize`/`unnormalize` as one per-channel affine map shared with the
//!   trainer and the ONNX graphs.
//! - [`Geometry`] / [`Fit`]: the exact resize/crop/pad mapping, reused by inference.
//! - [`VideoWriter`]: RGB24 frames → mp4 (libx264, else MPEG-4); [`write_comparison`]:
//!   originals above reconstructions as a PNG.
//!
//! FFmpeg's own log is set to fatal-only on first use: per-file problems are reported once
//! through [`VideoError`] / the loader's warning line instead of hundreds of decoder lines.
//! No tch or ort here: everything is exchanged as plain slices.

mod clip;
mod comparison;
mod error;
mod frame;
mod loader;
mod media;
mod normalize;
mod reader;
mod rng;
mod scale;
mod source;
mod spatial;
mod still;
mod writer;

pub use comparison::{comparison_image, write_comparison};
pub use error::{Result, SkipReason, VideoError};
pub use frame::{Frame, Rotation};
pub use loader::{
    Batch, ClipInfo, LoaderOptions, LoaderState, LoaderStats, SkippedFile, Split, VideoLoader,
};
pub use normalize::{Layout, Normalizer};
pub use reader::{FrameSelect, Frames, OpenOptions, TimedFrame, VideoMeta, VideoReader};
pub use source::{MediaItem, collect_sources, split_position};
pub use spatial::{Crop, Fit, Geometry, resize, round_to_multiple};
pub use still::load_image;
pub use writer::{VideoCodec, VideoWriter, WriterOptions};

/// Registers FFmpeg once and silences its log (see the crate docs).
pub(crate) fn ensure_ffmpeg() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        // init() only registers devices/filters in this build; it cannot fail in a way that
        // matters for decoding files.
        let _ = ffmpeg_next::init();
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Fatal);
    });
}

#[cfg(test)]
mod tests {
    /// The trainer runs the loader and inference the reader on threads of their own.
    #[test]
    fn loader_and_reader_can_move_between_threads() {
        fn send<T: Send>() {}
        send::<crate::VideoLoader>();
        send::<crate::VideoReader>();
        send::<crate::Batch>();
    }
}
