//! Train or validation: one type for every crate that behaves differently by split.

use serde::{Deserialize, Serialize};

/// Train or validation. The video loader uses it for shuffled random crops, endless
/// (train) against fixed centred clips, one pass (val); the losses for the log prefix,
/// the discriminator's norm mode and whether gradients are computed (taming: `split` +
/// `self.training`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
}

impl Split {
    /// `train` / `val`, as in taming's log keys and the loader's state files.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
        }
    }

    pub fn is_train(self) -> bool {
        self == Split::Train
    }
}
