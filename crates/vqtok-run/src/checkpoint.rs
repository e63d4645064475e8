//! One checkpoint folder, `RUN/checkpoints/step_NNNNNNN/`: what it holds and reading the
//! parts that are not tensors.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vqtok_config::Config;

use crate::RunDir;
use crate::error::RunError;

/// `train_state.json`: where the run stands, besides the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer steps completed; training continues with step `step`.
    pub step: u64,
    /// `Config::model_hash` of the weights' architecture.
    pub model_hash: String,
    /// sha256 of the whole effective config (param.json as saved beside this file).
    pub config_hash: String,
    pub use_taming_loss: bool,
    /// The training data source's position (next batch to serve), as the trainer's data
    /// source writes it.
    pub data: serde_json::Value,
    /// Every step's RNG is seeded from (seed, step), so the seed is the whole RNG state.
    pub seed: u64,
    /// Steps whose update was skipped for a non-finite loss, over the whole run.
    pub skipped_steps: u64,
    /// Steps whose discriminator update alone was skipped (its loss was not finite; the
    /// autoencoder was updated). Absent in checkpoints of earlier versions.
    #[serde(default)]
    pub skipped_disc_updates: u64,
    /// The codebook statistics of the unfinished log interval, as the trainer writes
    /// them (null in checkpoints of earlier versions: the interval starts afresh).
    #[serde(default)]
    pub log_window: serde_json::Value,
    /// Best validation `rec_loss` so far.
    pub best_val_rec_loss: Option<f64>,
    pub vqtok_version: String,
}

/// A complete checkpoint folder.
///
/// | file | content |
/// |---|---|
/// | `model.safetensors` | autoencoder + `loss.discriminator.*`, taming's names (loadable by taming tools) |
/// | `optimizer_ae.safetensors` | the autoencoder Adam: `{i}.step`, `{i}.exp_avg`, `{i}.exp_avg_sq` |
/// | `optimizer_disc.safetensors` | the discriminator Adam, same keys (absent without a discriminator) |
/// | `scheduler.json` | the lr schedule and the lr of the next step |
/// | `train_state.json` | [`TrainState`] |
/// | `param.json` | the run's effective config, so export can use the folder directly |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    dir: PathBuf,
}

impl Checkpoint {
    pub const MODEL: &str = "model.safetensors";
    pub const OPTIMIZER_AE: &str = "optimizer_ae.safetensors";
    pub const OPTIMIZER_DISC: &str = "optimizer_disc.safetensors";
    pub const SCHEDULER: &str = "scheduler.json";
    pub const STATE: &str = "train_state.json";
    pub const CONFIG: &str = "param.json";

    /// `dir`, which must hold a `train_state.json`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Checkpoint, RunError> {
        let dir = dir.into();
        if !dir.join(Self::STATE).is_file() {
            return Err(RunError::invalid(
                &dir,
                format!("not a checkpoint folder (no {})", Self::STATE),
            ));
        }
        Ok(Checkpoint { dir })
    }

    /// What a user points at: a checkpoint folder, a run folder or its `checkpoints/`
    /// folder (then its latest checkpoint).
    pub fn resolve(path: &Path) -> Result<Checkpoint, RunError> {
        if path.join(Self::STATE).is_file() {
            return Ok(Checkpoint {
                dir: path.to_path_buf(),
            });
        }
        for dir in [path.join(RunDir::CHECKPOINTS), path.to_path_buf()] {
            if let Some(latest) = crate::store::latest_in(&dir) {
                return Ok(latest);
            }
        }
        Err(RunError::invalid(
            path,
            format!(
                "not a checkpoint (no {}) and no {}/latest inside",
                Self::STATE,
                RunDir::CHECKPOINTS
            ),
        ))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of one of the files above.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `model.safetensors`: the weights a model is built from.
    pub fn model_path(&self) -> PathBuf {
        self.file(Self::MODEL)
    }

    /// `param.json`: the config the weights belong to.
    pub fn config_path(&self) -> PathBuf {
        self.file(Self::CONFIG)
    }

    pub fn config(&self) -> Result<Config, RunError> {
        let path = self.config_path();
        Config::from_path(&path).map_err(|e| RunError::invalid(&path, e.to_string()))
    }

    pub fn state(&self) -> Result<TrainState, RunError> {
        let path = self.file(Self::STATE);
        let text = std::fs::read_to_string(&path).map_err(RunError::io(&path))?;
        serde_json::from_str(&text).map_err(|e| RunError::invalid(&path, e.to_string()))
    }
}
