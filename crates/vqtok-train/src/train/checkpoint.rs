//! The tensors of a checkpoint: what the trainer writes into a checkpoint folder and
//! reads back to resume. The folder's layout, names and atomic publication are
//! `vqtok_run::Checkpoint` and `vqtok_run::CheckpointStore`.

use std::collections::HashMap;
use std::path::Path;

use tch::Tensor;
use tch::nn::VarStore;
use vqtok_config::Config;
use vqtok_run::{Checkpoint, RunError, TrainState};

use crate::loss::DiscriminatorState;
use crate::state_dict::save_state_dict;

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

impl CheckpointContent<'_> {
    /// The name of the first tensor holding NaN or ±inf (weights, statistics, optimizer
    /// moments), if any.
    pub fn first_non_finite(&self) -> Option<String> {
        let stores =
            std::iter::once(self.model).chain(self.discriminator.as_ref().map(|d| d.weights));
        let mut weights: Vec<(String, Tensor)> = stores.flat_map(VarStore::variables).collect();
        weights.sort_by(|a, b| a.0.cmp(&b.0));
        let named = weights
            .into_iter()
            .chain(
                self.optimizer_ae
                    .iter()
                    .map(|(k, v)| (format!("optimizer_ae {k}"), v.shallow_clone())),
            )
            .chain(self.discriminator.iter().flat_map(|d| {
                d.optimizer
                    .iter()
                    .map(|(k, v)| (format!("optimizer_disc {k}"), v.shallow_clone()))
            }));
        named
            .filter(|(_, t)| t.is_floating_point())
            .find(|(_, t)| t.isfinite().all().int64_value(&[]) == 0)
            .map(|(k, _)| k)
    }
}

fn invalid(path: &Path, message: impl std::fmt::Display) -> RunError {
    RunError::invalid(path, message.to_string())
}

/// Writes the checkpoint files into `dir` (the store's temporary folder). The
/// `checkpoint-after-model` failpoint (tests only) kills the process half-way.
pub fn write(dir: &Path, c: &CheckpointContent) -> Result<(), RunError> {
    let write_tensors = |name: &str, tensors: &[(String, Tensor)]| -> Result<(), RunError> {
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
        Tensor::write_safetensors(&host, &path).map_err(|e| invalid(&path, e))
    };
    // taming's layout: the autoencoder and `loss.discriminator.*` in one state dict.
    let model_path = dir.join(Checkpoint::MODEL);
    let mut stores = vec![("", c.model)];
    stores.extend(c.discriminator.as_ref().map(|d| ("", d.weights)));
    save_state_dict(&model_path, &stores).map_err(|e| invalid(&model_path, e))?;
    if crate::train::failpoints::fires_at("checkpoint-after-model", c.state.step) {
        // SAFETY: sends SIGKILL to this process; nothing runs afterwards.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
    write_tensors(Checkpoint::OPTIMIZER_AE, &c.optimizer_ae)?;
    if let Some(d) = &c.discriminator {
        write_tensors(Checkpoint::OPTIMIZER_DISC, &d.optimizer)?;
    }
    let json = |name: &str, value: String| {
        let path = dir.join(name);
        std::fs::write(&path, value).map_err(|e| RunError::Io { path, source: e })
    };
    json(
        Checkpoint::SCHEDULER,
        serde_json::to_string_pretty(&c.scheduler).expect("json value serialises"),
    )?;
    json(
        Checkpoint::STATE,
        serde_json::to_string_pretty(c.state).expect("state serialises"),
    )?;
    json(Checkpoint::CONFIG, c.config.to_json_pretty())
}

/// The parts of a checkpoint folder the trainer restores.
pub struct LoadedCheckpoint {
    pub checkpoint: Checkpoint,
    pub config: Config,
    pub state: TrainState,
    /// `model.safetensors`, all tensors (on the CPU).
    pub model: HashMap<String, Tensor>,
    pub optimizer_ae: HashMap<String, Tensor>,
    pub optimizer_disc: Option<HashMap<String, Tensor>>,
}

pub fn read(checkpoint: &Checkpoint) -> Result<LoadedCheckpoint, RunError> {
    let tensors = |name: &str| -> Result<HashMap<String, Tensor>, RunError> {
        let path = checkpoint.file(name);
        Ok(Tensor::read_safetensors(&path)
            .map_err(|e| invalid(&path, e))?
            .into_iter()
            .collect())
    };
    let disc = checkpoint.file(Checkpoint::OPTIMIZER_DISC);
    Ok(LoadedCheckpoint {
        checkpoint: checkpoint.clone(),
        config: checkpoint.config()?,
        state: checkpoint.state()?,
        model: tensors(Checkpoint::MODEL)?,
        optimizer_ae: tensors(Checkpoint::OPTIMIZER_AE)?,
        optimizer_disc: if disc.exists() {
            Some(tensors(Checkpoint::OPTIMIZER_DISC)?)
        } else {
            None
        },
    })
}
