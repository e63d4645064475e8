//! One loader input, whatever it is: a video through FFmpeg or a still image as a one-frame
//! video. Which one is decided by the file's first bytes, so a wrong extension does not matter.

use std::path::Path;
use std::time::Instant;

use crate::error::{Result, SkipReason, VideoError};
use crate::frame::Frame;
use crate::reader::{OpenOptions, VideoReader};
use crate::spatial::resize;
use crate::still;

pub(crate) enum Media {
    Video(Box<VideoReader>),
    Still(Frame),
}

impl Media {
    /// Opens `path`; everything until the clip is decoded must finish before `deadline`.
    pub(crate) fn open(path: &Path, opts: &OpenOptions, deadline: Instant) -> Result<Media> {
        if still::is_still(path) {
            return Ok(Media::Still(still::load_image(path, opts.max_side)?));
        }
        let mut open = opts.clone();
        open.timeout = Some(deadline.saturating_duration_since(Instant::now()));
        let mut reader = VideoReader::open_with(path, &open)?;
        reader.set_fixed_deadline(deadline);
        Ok(Media::Video(Box::new(reader)))
    }

    /// Displayed size.
    pub(crate) fn size(&self) -> (usize, usize) {
        match self {
            Media::Video(r) => (r.meta().width as usize, r.meta().height as usize),
            Media::Still(f) => (f.width, f.height),
        }
    }

    /// Slot rate (a still has one frame; its rate only labels the clip).
    pub(crate) fn fps(&self) -> f64 {
        match self {
            Media::Video(r) => r.meta().fps,
            Media::Still(_) => 1.0,
        }
    }

    /// Frames by the container's word, or counted by decoding when it says nothing.
    pub(crate) fn frame_count(&mut self) -> Result<u64> {
        match self {
            Media::Video(r) if r.meta().frame_count > 0 => Ok(r.meta().frame_count),
            Media::Video(r) => {
                let fps = r.meta().fps;
                r.count_slots(fps)
            }
            Media::Still(_) => Ok(1),
        }
    }

    /// Exact frame count after a read ran out early.
    pub(crate) fn recount(&mut self) -> Result<u64> {
        match self {
            Media::Video(r) => {
                let fps = r.meta().fps;
                r.count_slots(fps)
            }
            Media::Still(_) => Ok(1),
        }
    }

    /// Frames for ascending unique `slots`, scaled to `size`; `true` if the media ended early.
    pub(crate) fn read(
        &mut self,
        slots: &[u64],
        size: (usize, usize),
    ) -> Result<(Vec<Frame>, bool)> {
        match self {
            Media::Video(r) => {
                let fps = r.meta().fps;
                r.read_slots(slots, fps, size)
            }
            Media::Still(f) => {
                if slots.iter().any(|&s| s > 0) {
                    return Ok((Vec::new(), true));
                }
                Ok((
                    slots
                        .iter()
                        .map(|_| resize(f, size.0, size.1))
                        .collect::<Result<_>>()?,
                    false,
                ))
            }
        }
    }

    /// Describes a short read for the skip message.
    pub(crate) fn short_read(&self, path: &Path, got: usize, wanted: usize) -> VideoError {
        let why = match self {
            Media::Video(r) => r
                .last_error()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default(),
            Media::Still(_) => String::new(),
        };
        VideoError::file(
            path,
            SkipReason::Corrupt,
            format!("decoded {got} of {wanted} clip frames{why}"),
        )
    }
}
