//! What a checkpoint folder holds, and reading it back.
//!
//! | file | content |
//! |---|---|
//! | `model.safetensors` | autoencoder + `loss.discriminator.*`, taming's names (loadable by taming tools) |
//! | `optimizer_ae.safetensors` | the autoencoder Adam: `{i}.step`, `{i}.exp_avg`, `{i}.exp_avg_sq` |
//! | `optimizer_disc.safetensors` | the discriminator Adam, same keys (absent without a discriminator) |
//! | `scheduler.json` | the lr schedule and the lr of the next step |
//! | `train_state.json` | step, data position, seed, counters, model hash ([`TrainState`]) |
//! | `param.json` | the run's effective config, so export can use the folder directly |

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::VarStore;
use vqtok_config::Config;

use crate::loss::DiscriminatorState;
use crate::state_dict::save_state_dict;
use crate::train::checkpoint_store::{CheckpointError, io_err};
use crate::train::data::DataState;

pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_AE_FILE: &str = "optimizer_ae.safetensors";
pub const OPTIMIZER_DISC_FILE: &str = "optimizer_disc.safetensors";
pub const SCHEDULER_FILE: &str = "scheduler.json";
pub const STATE_FILE: &str = "train_state.json";
pub const CONFIG_FILE: &str = "param.json";

/// `train_state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer steps completed; training continues with step `step`.
    pub step: u64,
    /// `Config::model_hash` of the weights' architecture.
    pub model_hash: String,
    /// sha256 of the whole effective config (param.json as saved beside this file).
    pub config_hash: String,
    pub use_taming_loss: bool,
    /// The training source's position (next batch to serve).
    pub data: DataState,
    /// Every step's RNG is seeded from (seed, step), so the seed is the whole RNG state.
    pub seed: u64,
    /// Steps whose update was skipped for a non-finite loss, over the whole run.
    pub skipped_steps: u64,
    /// Best validation `rec_loss` so far.
    pub best_val_rec_loss: Option<f64>,
    pub vqtok_version: String,
}

/// Everything [`write`] saves.
pub struct CheckpointContent<'a> {
    pub config: &'a Config,
    pub model: &'a VarStore,
    /// The discriminator's network and Adam, when the run has one.
    pub discriminator: Option<DiscriminatorState<'a>>,
    pub optimizer_ae: Vec<(String, Tensor)>,
    pub scheduler: serde_json::Value,
    pub state: &'a TrainState,
}

/// Writes the checkpoint files into `dir` (the store's temporary folder).
/// `VQTOK_CRASH_DURING_CHECKPOINT=STEP` kills the process with SIGKILL after the model
/// file of that step is written — a fault-injection hook for the crash-safety test.
pub fn write(dir: &Path, c: &CheckpointContent) -> Result<(), CheckpointError> {
    let write_tensors = |name: &str, tensors: &[(String, Tensor)]| -> Result<(), CheckpointError> {
        let path = dir.join(name);
        let host: Vec<(String, Tensor)> = tensors
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.detach().to_device(tch::Device::Cpu).contiguous(),
                )
            })
            .collect();
        Tensor::write_safetensors(&host, &path)
            .map_err(|e| CheckpointError::Invalid(format!("{}: {e}", path.display())))
    };
    // taming's layout: the autoencoder and `loss.discriminator.*` in one state dict.
    let mut stores = vec![("", c.model)];
    stores.extend(c.discriminator.as_ref().map(|d| ("", d.weights)));
    save_state_dict(dir.join(MODEL_FILE), &stores)
        .map_err(|e| CheckpointError::Invalid(e.to_string()))?;
    if std::env::var("VQTOK_CRASH_DURING_CHECKPOINT")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        == Some(c.state.step)
    {
        // SAFETY: sends SIGKILL to this process; nothing runs afterwards.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
    write_tensors(OPTIMIZER_AE_FILE, &c.optimizer_ae)?;
    if let Some(d) = &c.discriminator {
        write_tensors(OPTIMIZER_DISC_FILE, &d.optimizer)?;
    }
    let json = |name: &str, value: String| {
        let path = dir.join(name);
        std::fs::write(&path, value).map_err(io_err(&path))
    };
    json(
        SCHEDULER_FILE,
        serde_json::to_string_pretty(&c.scheduler).expect("json value serialises"),
    )?;
    json(
        STATE_FILE,
        serde_json::to_string_pretty(c.state).expect("state serialises"),
    )?;
    json(CONFIG_FILE, c.config.to_json_pretty())
}

/// The parts of a checkpoint folder the trainer restores.
pub struct LoadedCheckpoint {
    pub config: Config,
    pub state: TrainState,
    /// `model.safetensors`, all tensors (on the CPU).
    pub model: HashMap<String, Tensor>,
    pub optimizer_ae: HashMap<String, Tensor>,
    pub optimizer_disc: Option<HashMap<String, Tensor>>,
}

pub fn read(dir: &Path) -> Result<LoadedCheckpoint, CheckpointError> {
    let invalid = |what: String| CheckpointError::Invalid(format!("{}: {what}", dir.display()));
    let config = Config::from_path(dir.join(CONFIG_FILE)).map_err(|e| invalid(e.to_string()))?;
    let state_path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&state_path).map_err(io_err(&state_path))?;
    let state: TrainState =
        serde_json::from_str(&text).map_err(|e| invalid(format!("{STATE_FILE}: {e}")))?;
    let tensors = |name: &str| -> Result<HashMap<String, Tensor>, CheckpointError> {
        let path = dir.join(name);
        Ok(Tensor::read_safetensors(&path)
            .map_err(|e| invalid(format!("{name}: {e}")))?
            .into_iter()
            .collect())
    };
    let disc_path = dir.join(OPTIMIZER_DISC_FILE);
    Ok(LoadedCheckpoint {
        config,
        state,
        model: tensors(MODEL_FILE)?,
        optimizer_ae: tensors(OPTIMIZER_AE_FILE)?,
        optimizer_disc: if disc_path.exists() {
            Some(tensors(OPTIMIZER_DISC_FILE)?)
        } else {
            None
        },
    })
}
