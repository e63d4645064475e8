//! The seed's TrainVqVae: the training loop and everything it writes to a run folder.

pub mod checkpoint_store;
pub mod metrics_log;
pub mod schedule;
pub mod tensorboard;
