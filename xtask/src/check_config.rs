//! `cargo xtask check-config FILE…`

use std::path::PathBuf;

use anyhow::Result;

use crate::util::user_error;

pub fn run(files: &[PathBuf]) -> Result<()> {
    for file in files {
        let cfg = vqtok_config::Config::from_path(file).map_err(|e| user_error(e.to_string()))?;
        println!("{}: {}", file.display(), cfg.summary());
    }
    Ok(())
}
