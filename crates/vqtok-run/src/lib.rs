//! vqtok-run: a training run's folder on disk, and the one place that knows its layout.
//! The trainer writes it, `vqtok-train eval/reference`, export and xtask read it; none of
//! that needs libtorch, so neither does this crate (the tensors inside the files are the
//! trainer's business).
//!
//! ```text
//! RUN/
//!   .lock                      held (flock) by the one trainer writing the run
//!   param.json                 the run's effective config
//!   metrics.jsonl              one JSON object per logged step
//!   tensorboard/               event files
//!   checkpoints/
//!     step_0000300/            a Checkpoint (see its FILES)
//!     latest -> step_0000300   the newest complete checkpoint
//!     best -> step_0000200     the best by validation rec_loss (best.json says its value)
//! ```

mod checkpoint;
mod error;
mod lock;
mod model_args;
mod store;

use std::path::{Path, PathBuf};

pub use checkpoint::{Checkpoint, TrainState};
pub use error::RunError;
pub use model_args::{ModelArgs, ModelFiles};
pub use store::{CheckpointStore, step_name};

/// A run folder (it need not exist yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    pub const CONFIG: &str = "param.json";
    pub const METRICS: &str = "metrics.jsonl";
    pub const TENSORBOARD: &str = "tensorboard";
    pub const CHECKPOINTS: &str = "checkpoints";

    pub fn new(root: impl Into<PathBuf>) -> RunDir {
        RunDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join(Self::CONFIG)
    }

    pub fn metrics_path(&self) -> PathBuf {
        self.root.join(Self::METRICS)
    }

    pub fn tensorboard_dir(&self) -> PathBuf {
        self.root.join(Self::TENSORBOARD)
    }

    pub fn checkpoints_dir(&self) -> PathBuf {
        self.root.join(Self::CHECKPOINTS)
    }

    /// Locks the run folder (creating it) and opens its checkpoint store, keeping the
    /// last `keep` checkpoints. The store holds the lock until it is dropped; while it
    /// does, another call (in any process) fails with [`RunError::Busy`].
    pub fn store(&self, keep: usize) -> Result<CheckpointStore, RunError> {
        let lock = lock::RunLock::acquire(&self.root)?;
        CheckpointStore::open(&self.checkpoints_dir(), keep, lock)
    }

    /// The newest complete checkpoint, if any.
    pub fn latest(&self) -> Option<Checkpoint> {
        store::latest_in(&self.checkpoints_dir())
    }
}
