//! The seed's TrainVqVae: the training loop and everything it writes to a run folder
//! (`param.json`, `checkpoints/`, `tensorboard/`, `metrics.jsonl`).

pub mod checkpoint;
pub mod code_window;
pub mod data;
pub mod device;
pub mod error;
pub mod evaluate;
pub mod failpoints;
pub mod metrics_log;
pub mod parallel;
pub mod pending;
pub mod pixels;
pub mod progress;
pub mod quality;
pub mod schedule;
pub mod signals;
pub mod step;
pub mod tensorboard;
pub mod trainer;

pub use error::TrainError;
pub use trainer::{RunSummary, TrainOptions, Trainer};
