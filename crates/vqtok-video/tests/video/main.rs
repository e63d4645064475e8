//! vqtok-video's tests, one binary: the reader against the ffmpeg CLI, and the
//! training loader (clips, crops, augmentations, splits).

mod common;
mod loader;
mod reader;
