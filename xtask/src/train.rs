//! `cargo xtask train …` and `cargo xtask eval …`: build `vqtok-train` and run it with
//! the given arguments (see `vqtok-train train --help`); `--nproc-per-node N` runs N
//! ranks of one data-parallel job under torchrun.

use std::process::Command;

use anyhow::{Result, bail};

use crate::util::{self, venv_python};
use crate::{bins, setup};

/// Runs `vqtok-train <sub> <args>`; its exit status becomes ours.
pub fn run(sub: &str, args: &[String], release: bool) -> Result<()> {
    setup::run()?;
    let [bin] = &bins::build(&[("vqtok-train", "vqtok-train")], release)?[..] else {
        unreachable!()
    };
    let status = bins::command(bin).arg(sub).args(args).status()?;
    vqtok_core::exit::child(status, &format!("vqtok-train {sub}"))
}

/// `torchrun --standalone --nproc-per-node N --no-python vqtok-train train <args>`: the
/// venv's torchrun starts the ranks on this machine (rendezvous on a free local port) and
/// stops them all when one fails; each rank loads the venv's torch.distributed.
pub fn run_ranks(nproc: usize, args: &[String], release: bool) -> Result<()> {
    if nproc == 0 {
        bail!("--nproc-per-node must be at least 1");
    }
    setup::run()?;
    let [bin] = &bins::build(&[("vqtok-train", "vqtok-train")], release)?[..] else {
        unreachable!()
    };
    // The library each rank dlopen()s from beside the binary.
    let mut pydist = util::cargo();
    pydist.args(["build", "--quiet", "-p", "vqtok-pydist", "--lib"]);
    if release {
        pydist.arg("--release");
    }
    util::run(&mut pydist)?;
    let torchrun = venv_python().with_file_name("torchrun");
    let status = Command::new(&torchrun)
        .current_dir(util::root())
        .args([
            "--standalone",
            "--nproc-per-node",
            &nproc.to_string(),
            "--no-python",
        ])
        .arg(bin)
        .arg("train")
        .args(args)
        .env("VQTOK_PYTHON", venv_python())
        .status()?;
    vqtok_core::exit::child(
        status,
        &format!("torchrun ({nproc} ranks of vqtok-train train)"),
    )
}
