//! `cargo xtask test`: what CI runs (`.ci/run`), and what a developer runs before pushing.

use anyhow::Result;

use crate::{setup, util};

pub fn run(cargo_args: &[String], deploy: bool) -> Result<()> {
    let started = std::time::Instant::now();
    setup::run()?;
    if deploy {
        return deploy_tier(started);
    }
    eprintln!("==> cargo fmt --check");
    util::run(util::cargo().args(["fmt", "--all", "--check"]))?;
    eprintln!("==> cargo clippy");
    util::run(util::cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // vqtokenize's torch engine is a feature off by default (the default build links no
    // libtorch), so neither command above compiles it.
    eprintln!("==> cargo clippy -p vqtok-infer --features torch");
    util::run(util::cargo().args([
        "clippy",
        "-p",
        "vqtok-infer",
        "--all-targets",
        "--features",
        "torch",
        "--",
        "-D",
        "warnings",
    ]))?;
    eprintln!("==> cargo test");
    util::run(util::cargo().args(["test", "--workspace"]).args(cargo_args))?;
    eprintln!("==> cargo test -p vqtok-infer --features torch --test torch_engine");
    util::run(
        util::cargo()
            .args(["test", "-p", "vqtok-infer", "--features", "torch"])
            .args(["--test", "torch_engine"])
            .args(cargo_args),
    )?;
    eprintln!("==> all checks passed in {:.0?}", started.elapsed());
    Ok(())
}

/// `cargo xtask test --deploy`: the deploy/ files on a real single-node Slurm and a real
/// podman image build (tests/deploy.rs), after installing what they need. Root only.
fn deploy_tier(started: std::time::Instant) -> Result<()> {
    setup::debian_packages(setup::DEPLOY_PACKAGES, true)?;
    eprintln!("==> cargo build --release vqtokenize (what the cluster runs)");
    util::run(util::cargo().args([
        "build",
        "--release",
        "-p",
        "vqtok-infer",
        "--bin",
        "vqtokenize",
    ]))?;
    eprintln!("==> cargo build --release vqtok-train + vqtok-pydist (what srun starts)");
    util::run(util::cargo().args([
        "build",
        "--release",
        "-p",
        "vqtok-train",
        "--bin",
        "vqtok-train",
    ]))?;
    util::run(util::cargo().args(["build", "--release", "-p", "vqtok-pydist", "--lib"]))?;
    eprintln!("==> deploy tests (Slurm, podman, srun training)");
    util::run(
        util::cargo()
            .args(["test", "-p", "vqtok", "--test", "deploy", "--", "--ignored"])
            .args(["--test-threads", "1", "--nocapture"])
            .env(
                "VQTOK_DEPLOY_VQTOKENIZE",
                util::root().join("target/release/vqtokenize"),
            ),
    )?;
    eprintln!("==> deploy tier passed in {:.0?}", started.elapsed());
    Ok(())
}
