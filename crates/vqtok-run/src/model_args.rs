//! How every command names a trained model: a checkpoint (or a run folder, meaning its
//! latest checkpoint), or bare weights with the param.json they belong to (a model
//! imported with `cargo xtask import-taming` has no training checkpoint). One set of
//! flags, `--ckpt | --weights --config`, for vqtok-train, vqtok-export and xtask.

use std::path::PathBuf;

use crate::{Checkpoint, RunError};

/// The command-line flags (flatten into a clap command).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ModelArgs {
    /// A checkpoint folder, or a run folder (its latest checkpoint).
    #[arg(long, required_unless_present = "weights", conflicts_with = "weights")]
    pub ckpt: Option<PathBuf>,
    /// A state dict with taming's names (e.g. from `cargo xtask import-taming`), with --config.
    #[arg(long, requires = "config")]
    pub weights: Option<PathBuf>,
    /// The param.json the weights belong to, with --weights.
    #[arg(long, requires = "weights")]
    pub config: Option<PathBuf>,
}

/// The two files that make a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    pub weights: PathBuf,
    pub config: PathBuf,
}

impl ModelArgs {
    /// The latest checkpoint of `run`, or the checkpoint `run` is.
    pub fn checkpoint(run: impl Into<PathBuf>) -> ModelArgs {
        ModelArgs {
            ckpt: Some(run.into()),
            ..ModelArgs::default()
        }
    }

    /// The files these flags name (a checkpoint is resolved to its folder first).
    pub fn resolve(&self) -> Result<ModelFiles, RunError> {
        match (&self.ckpt, &self.weights, &self.config) {
            (Some(dir), _, _) => {
                let ck = Checkpoint::resolve(dir)?;
                Ok(ModelFiles {
                    weights: ck.model_path(),
                    config: ck.config_path(),
                })
            }
            (None, Some(weights), Some(config)) => Ok(ModelFiles {
                weights: weights.clone(),
                config: config.clone(),
            }),
            _ => Err(RunError::invalid(
                "command line",
                "give --ckpt, or --weights with --config",
            )),
        }
    }
}
