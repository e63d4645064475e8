//! Everything that can stop a training run, split into the user's mistakes (exit 2)
//! and failures of the run itself (exit 1).

use std::path::PathBuf;

use vqtok_core::exit::Blame;

use crate::loss::LossError;
use crate::model::ModelError;
use crate::state_dict::StateDictError;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A bad config, flag or path given by the user.
    #[error("{0}")]
    Usage(String),
    /// The data cannot be read (no usable video, bad source, …).
    #[error("data: {0}")]
    Data(String),
    #[error("resuming from {checkpoint}: the config differs from the checkpoint's:\n  {}\n(start a new run folder, or resume with the checkpoint's param.json)", differences.join("\n  "))]
    ResumeMismatch {
        checkpoint: PathBuf,
        differences: Vec<String>,
    },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Loss(#[from] LossError),
    #[error(transparent)]
    StateDict(#[from] StateDictError),
    #[error(transparent)]
    Run(#[from] vqtok_run::RunError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "step {step}: the ranks' weights differ (sha256 per rank: {}); a collective was skipped \
         or a rank computed differently — this is a bug, the checkpoints before it are kept",
        digests.join(", ")
    )]
    RanksDiverged { step: u64, digests: Vec<String> },
    #[error(transparent)]
    Dist(#[from] crate::dist::DistError),
    #[error("libtorch: {0}")]
    Tch(#[from] tch::TchError),
    #[error(
        "stopped after {steps} consecutive steps with a non-finite loss (last at step {at}); \
         the last good checkpoint is kept — lower the lr, or enable grad_clip"
    )]
    Diverged { steps: u32, at: u64 },
    #[error(
        "step {step}: `{tensor}` holds a non-finite value, so no checkpoint was written; \
         the last good checkpoint is kept{}",
        last.as_ref().map(|p| format!(" ({})", p.display())).unwrap_or_default()
    )]
    NonFiniteState {
        step: u64,
        tensor: String,
        last: Option<PathBuf>,
    },
}

impl Blame for TrainError {
    /// Errors the user can fix by changing what they passed.
    fn is_user_error(&self) -> bool {
        match self {
            TrainError::Usage(_) | TrainError::Data(_) | TrainError::ResumeMismatch { .. } => true,
            TrainError::Model(ModelError::Config { .. }) => true,
            TrainError::Loss(e) => e.is_user_error(),
            TrainError::Run(e) => e.is_user_error(),
            TrainError::Dist(e) => e.is_user_error(),
            _ => false,
        }
    }
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
        let path = path.into();
        move |source| TrainError::Io { path, source }
    }
}
