//! `cargo xtask export` and `cargo xtask verify`: a trained model (a run's checkpoint, or
//! bare weights such as an imported taming model, with their param.json) becomes a model
//! folder (vqtok-export, no libtorch), checked against the tch model through a reference
//! file written by `vqtok-train reference` (held-out clips + random frames).

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use vqtok_core::exit::child;

use crate::{bins, setup};

const TRAIN: (&str, &str) = ("vqtok-train", "vqtok-train");
const EXPORT: (&str, &str) = ("vqtok-export", "vqtok-export");

/// Which trained model: a run (its latest checkpoint, or `--ckpt`), or bare weights.
#[derive(Args)]
pub struct ModelArgs {
    /// A run folder.
    #[arg(long, required_unless_present = "weights", conflicts_with = "weights")]
    run: Option<PathBuf>,
    /// A checkpoint folder of the run (default: its latest).
    #[arg(long, requires = "run")]
    ckpt: Option<PathBuf>,
    /// A state dict with taming's names (e.g. from `cargo xtask import-taming`), with --config.
    #[arg(long, requires = "config")]
    weights: Option<PathBuf>,
    /// The param.json the weights belong to.
    #[arg(long, requires = "weights")]
    config: Option<PathBuf>,
}

impl ModelArgs {
    /// A run's latest checkpoint.
    pub fn latest_of(run: &Path) -> ModelArgs {
        ModelArgs {
            run: Some(run.to_path_buf()),
            ckpt: None,
            weights: None,
            config: None,
        }
    }

    /// The arguments that name this model to `vqtok-train reference` and
    /// `vqtok-export export` (`--ckpt DIR` / `--checkpoint DIR`, or `--weights W --config C`).
    fn args(&self, checkpoint_flag: &str) -> Result<Vec<std::ffi::OsString>> {
        Ok(match (&self.run, &self.weights, &self.config) {
            (Some(run), _, _) => {
                let ck = vqtok_run::Checkpoint::resolve(self.ckpt.as_deref().unwrap_or(run))?;
                vec![checkpoint_flag.into(), ck.dir().into()]
            }
            (None, Some(w), Some(c)) => {
                vec!["--weights".into(), w.into(), "--config".into(), c.into()]
            }
            _ => unreachable!("clap requires --run, or --weights with --config"),
        })
    }
}

/// Exports `model` to `out` and verifies it (unless `no_verify`).
pub fn export(model: &ModelArgs, out: &Path, no_verify: bool, release: bool) -> Result<()> {
    setup::run()?;
    let [train, export] = &bins::build(&[TRAIN, EXPORT], release)?[..] else {
        unreachable!()
    };
    let mut cmd = bins::command(export);
    cmd.arg("export")
        .args(model.args("--checkpoint")?)
        .arg("--out")
        .arg(out);
    let reference = out.with_extension("reference.safetensors");
    if !no_verify {
        write_reference(train, model, &reference)?;
        cmd.arg("--reference").arg(&reference);
    }
    let result = child(cmd.status()?, "export");
    let _ = std::fs::remove_file(&reference);
    result
}

/// Verifies the model folder `folder` against the tch `model`.
pub fn verify(model: &ModelArgs, folder: &Path, release: bool) -> Result<()> {
    setup::run()?;
    let [train, export] = &bins::build(&[TRAIN, EXPORT], release)?[..] else {
        unreachable!()
    };
    let reference = folder.with_extension("reference.safetensors");
    write_reference(train, model, &reference)?;
    let status = bins::command(export)
        .arg("verify")
        .arg("--model")
        .arg(folder)
        .arg("--reference")
        .arg(&reference)
        .status()?;
    let result = child(status, "verify");
    let _ = std::fs::remove_file(&reference);
    result
}

fn write_reference(train: &PathBuf, model: &ModelArgs, out: &Path) -> Result<()> {
    let status = bins::command(train)
        .arg("reference")
        .args(model.args("--ckpt")?)
        .arg("--out")
        .arg(out)
        .status()?;
    child(status, "reference")
}
