//! `cargo xtask train …` and `cargo xtask eval …`: build `vqtok-train` and run it with
//! the given arguments (see `vqtok-train train --help`).

use anyhow::Result;

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
