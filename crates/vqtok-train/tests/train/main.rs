//! The trainer end to end on generated videos: quality on both paths over several
//! seeds and thread counts, exact resume, and what a run leaves behind.

#[path = "../support/mod.rs"]
mod support;

mod outputs;
mod quality;
mod reliability;
mod resume;
mod tensorboard_readback;
