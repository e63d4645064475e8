//! Building the workspace binaries the xtask commands drive, and finding them.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Result;

use crate::util::{self, root};

/// Builds `bins` (package, binary) in the dev profile (or release) and returns a
/// runner for each, in order.
pub fn build(bins: &[(&str, &str)], release: bool) -> Result<Vec<PathBuf>> {
    build_with_features(bins, &[], release)
}

/// [`build`] with cargo features (`package/feature`) turned on.
pub fn build_with_features(
    bins: &[(&str, &str)],
    features: &[&str],
    release: bool,
) -> Result<Vec<PathBuf>> {
    let mut cmd = util::cargo();
    cmd.arg("build").arg("--quiet");
    if !features.is_empty() {
        cmd.arg("--features").arg(features.join(","));
    }
    if release {
        cmd.arg("--release");
    }
    for (package, bin) in bins {
        cmd.args(["-p", package, "--bin", bin]);
    }
    util::run(&mut cmd)?;
    let dir = target_dir().join(if release { "release" } else { "debug" });
    Ok(bins.iter().map(|(_, bin)| dir.join(bin)).collect())
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// A command for a built binary, run from the repository root.
pub fn command(path: &PathBuf) -> Command {
    let mut cmd = Command::new(path);
    cmd.current_dir(root());
    cmd
}
