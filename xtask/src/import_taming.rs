//! `cargo xtask import-taming --ckpt last.ckpt --out model.safetensors`: a taming
//! Lightning checkpoint → a safetensors state dict (autoencoder + `loss.discriminator.*`)
//! that `vqtok_train::state_dict::load_state_dict` reads. The pickle is read by the venv's
//! torch in `xtask/scripts/import_taming.py`, which never executes code from the file.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::setup;
use crate::util::{root, user_error, venv_python};

pub fn run(ckpt: &Path, out: &Path) -> Result<()> {
    if !ckpt.is_file() {
        return Err(user_error(format!(
            "--ckpt {}: no such checkpoint file",
            ckpt.display()
        )));
    }
    if out.extension().and_then(|e| e.to_str()) != Some("safetensors") {
        return Err(user_error(format!(
            "--out {}: the output must be a .safetensors file",
            out.display()
        )));
    }
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = parent.filter(|d| !d.is_dir()) {
        return Err(user_error(format!(
            "--out {}: folder {} does not exist",
            out.display(),
            dir.display()
        )));
    }
    setup::run()?;
    let script = root().join("xtask/scripts/import_taming.py");
    let status = Command::new(venv_python())
        .arg(&script)
        .arg(ckpt)
        .arg(out)
        .status()
        .with_context(|| format!("cannot run {}", script.display()))?;
    vqtok_core::exit::child(status, &format!("importing {}", ckpt.display()))
}
