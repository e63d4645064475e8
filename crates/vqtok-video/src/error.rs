//! Errors of the video pipeline. A file-level error carries a [`SkipReason`] so the loader can
//! count why files were skipped without parsing messages.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Why one media file (or one clip of it) could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The path does not exist (any more).
    Missing,
    /// A zero-byte file.
    Empty,
    /// FFmpeg / the image decoder cannot open it: not a media file, wrong content, or a
    /// container truncated before its index (an mp4 without its `moov` atom).
    Unreadable,
    /// A media file without a video stream (audio only, subtitles …).
    NoVideoStream,
    /// Width or height is zero or larger than the configured limit.
    AbsurdResolution,
    /// It opened but too few frames could be decoded (corrupt or truncated stream).
    Corrupt,
    /// Opening or decoding took longer than the decode timeout.
    Timeout,
    /// Shorter than one clip while `short_videos` is `skip`.
    TooShort,
    /// An operating-system error reading it (permissions, I/O).
    Io,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipReason::Missing => "missing",
            SkipReason::Empty => "empty file",
            SkipReason::Unreadable => "not a readable video or image",
            SkipReason::NoVideoStream => "no video stream",
            SkipReason::AbsurdResolution => "absurd resolution",
            SkipReason::Corrupt => "corrupt or truncated",
            SkipReason::Timeout => "decode timed out",
            SkipReason::TooShort => "shorter than one clip",
            SkipReason::Io => "I/O error",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// One media file is unusable; the loader skips it, a reader reports it.
    #[error("{}: {reason}: {detail}", path.display())]
    File {
        path: PathBuf,
        reason: SkipReason,
        detail: String,
    },
    /// A data source (directory, glob, manifest) cannot be used at all.
    #[error("data source `{source_spec}`: {detail}")]
    Source { source_spec: String, detail: String },
    /// A manifest line is malformed.
    #[error("{}:{line}: {detail}", path.display())]
    Manifest {
        path: PathBuf,
        line: usize,
        detail: String,
    },
    /// An option or argument is out of range; `field` names it.
    #[error("invalid `{field}`: {detail}")]
    Invalid { field: &'static str, detail: String },
    /// Writing a video failed.
    #[error("{}: cannot write video: {detail}", path.display())]
    Encode { path: PathBuf, detail: String },
    /// Writing an image (a comparison picture) failed.
    #[error("{}: cannot write image: {detail}", path.display())]
    WriteImage { path: PathBuf, detail: String },
    /// A split has no files, or every file was skipped.
    #[error("no usable {split} data: {detail}")]
    NoUsableData { split: &'static str, detail: String },
    /// A saved [`crate::LoaderState`] belongs to another dataset or seed.
    #[error("cannot resume the data loader: {detail}")]
    State { detail: String },
    /// A bug or a dead worker thread.
    #[error("internal error in the data loader: {0}")]
    Internal(String),
}

impl vqtok_core::exit::Blame for VideoError {
    /// A file, source, manifest, option or dataset of the user's is at fault; writing
    /// output, a dead worker or a loader state mismatch are failures.
    fn is_user_error(&self) -> bool {
        !matches!(
            self,
            VideoError::Encode { .. }
                | VideoError::WriteImage { .. }
                | VideoError::Internal(_)
                | VideoError::State { .. }
        )
    }
}

impl VideoError {
    pub(crate) fn file(
        path: impl Into<PathBuf>,
        reason: SkipReason,
        detail: impl Into<String>,
    ) -> Self {
        VideoError::File {
            path: path.into(),
            reason,
            detail: detail.into(),
        }
    }

    pub(crate) fn invalid(field: &'static str, detail: impl Into<String>) -> Self {
        VideoError::Invalid {
            field,
            detail: detail.into(),
        }
    }

    /// The skip classification when this is a per-file error.
    pub fn skip_reason(&self) -> Option<SkipReason> {
        match self {
            VideoError::File { reason, .. } => Some(*reason),
            _ => None,
        }
    }
}

pub type Result<T, E = VideoError> = std::result::Result<T, E>;
