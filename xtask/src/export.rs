//! `cargo xtask export` and `cargo xtask verify`: a checkpoint becomes a model folder
//! (vqtok-export, no libtorch), checked against the tch model through a reference
//! file written by `vqtok-train reference` (held-out clips + random frames).

use std::path::{Path, PathBuf};

use anyhow::Result;

use vqtok_core::exit::child;

use crate::{bins, setup};

const TRAIN: (&str, &str) = ("vqtok-train", "vqtok-train");
const EXPORT: (&str, &str) = ("vqtok-export", "vqtok-export");

/// Exports `run`'s checkpoint to `out` and verifies it (unless `no_verify`).
pub fn export(
    run: &Path,
    ckpt: Option<&Path>,
    out: &Path,
    no_verify: bool,
    release: bool,
) -> Result<()> {
    setup::run()?;
    let ckpt = bins::checkpoint(run, ckpt)?;
    let [train, export] = &bins::build(&[TRAIN, EXPORT], release)?[..] else {
        unreachable!()
    };
    let mut cmd = bins::command(export);
    cmd.arg("export")
        .arg("--checkpoint")
        .arg(&ckpt)
        .arg("--out")
        .arg(out);
    let reference = out.with_extension("reference.safetensors");
    if !no_verify {
        write_reference(train, &ckpt, &reference)?;
        cmd.arg("--reference").arg(&reference);
    }
    let result = child(cmd.status()?, "export");
    let _ = std::fs::remove_file(&reference);
    result
}

/// Verifies the model folder `model` against `run`'s checkpoint.
pub fn verify(run: &Path, ckpt: Option<&Path>, model: &Path, release: bool) -> Result<()> {
    setup::run()?;
    let ckpt = bins::checkpoint(run, ckpt)?;
    let [train, export] = &bins::build(&[TRAIN, EXPORT], release)?[..] else {
        unreachable!()
    };
    let reference = model.with_extension("reference.safetensors");
    write_reference(train, &ckpt, &reference)?;
    let status = bins::command(export)
        .arg("verify")
        .arg("--model")
        .arg(model)
        .arg("--reference")
        .arg(&reference)
        .status()?;
    let result = child(status, "verify");
    let _ = std::fs::remove_file(&reference);
    result
}

fn write_reference(train: &PathBuf, ckpt: &Path, out: &Path) -> Result<()> {
    let status = bins::command(train)
        .arg("reference")
        .arg("--ckpt")
        .arg(ckpt)
        .arg("--out")
        .arg(out)
        .status()?;
    child(status, "reference")
}
