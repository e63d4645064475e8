//! The trainer end to end on generated videos: quality on both paths over several
//! seeds and thread counts, exact resume, what a run leaves behind, and one run folder
//! per trainer.

#[path = "../support/mod.rs"]
mod support;

mod concurrent;
mod distributed;
mod outputs;
mod quality;
mod reliability;
mod resume;
mod tensorboard_readback;
