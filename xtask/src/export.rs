//! `cargo xtask export` and `cargo xtask verify`: a trained model (a run's checkpoint, or
//! bare weights such as an imported taming model, with their param.json) becomes a model
//! folder (vqtok-export, no libtorch), checked against the tch model through a reference
//! file written by `vqtok-train reference` (held-out clips + random frames).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Result;
use vqtok_core::exit::child;
use vqtok_run::ModelArgs;

use crate::{agreement, bins, setup};

const TRAIN: (&str, &str) = ("vqtok-train", "vqtok-train");
const EXPORT: (&str, &str) = ("vqtok-export", "vqtok-export");

/// The flags that name `model` to `vqtok-train reference` and `vqtok-export export`:
/// resolved here once, so both children see the same two files.
fn model_flags(model: &ModelArgs) -> Result<[OsString; 4]> {
    let files = model.resolve()?;
    Ok([
        "--weights".into(),
        files.weights.into(),
        "--config".into(),
        files.config.into(),
    ])
}

/// Exports `model` to `out` and verifies it (unless `no_verify`).
pub fn export(model: &ModelArgs, out: &Path, no_verify: bool, release: bool) -> Result<()> {
    setup::run()?;
    let [train, export] = &bins::build(&[TRAIN, EXPORT], release)?[..] else {
        unreachable!()
    };
    let mut cmd = bins::command(export);
    cmd.arg("export")
        .args(model_flags(model)?)
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

/// Verifies the model folder `folder` against the tch `model`, then reports the token
/// agreement of vqtokenize's engines and precisions on it (torch runs on `device`).
pub fn verify(model: &ModelArgs, folder: &Path, device: &str, release: bool) -> Result<()> {
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
    result?;
    agreement::report(folder, device, release)
}

fn write_reference(train: &PathBuf, model: &ModelArgs, out: &Path) -> Result<()> {
    let status = bins::command(train)
        .arg("reference")
        .args(model_flags(model)?)
        .arg("--out")
        .arg(out)
        .status()?;
    child(status, "reference")
}
