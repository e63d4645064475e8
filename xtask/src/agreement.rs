//! The token-agreement part of `cargo xtask verify`: a held-out sample clip tokenized by
//! the ORT engine and by the torch engine in fp32 and bf16 (vqtokenize built with
//! `--features torch`), compared with `vqtokenize compare`. The export's own gates
//! (`vqtok-export verify`) check the ONNX graphs against the tch model on reference
//! frames; this says what the engine and precision choices of vqtokenize cost in tokens.

use std::path::Path;

use anyhow::Result;

use crate::bins;
use crate::util::{self, cache_dir};

/// A real camera clip whose size (176×144) every factor up to 16 divides.
const CLIP: &str = "carphone_pristine.mp4";
const FRAMES: &str = "32";

/// Tokenizes the clip with `folder` three ways and prints both agreements; the torch
/// runs use `device` (`cpu`, `cuda`, `cuda:N`).
pub fn report(folder: &Path, device: &str, release: bool) -> Result<()> {
    let [vqtokenize] = &bins::build_with_features(
        &[("vqtok-infer", "vqtokenize")],
        &["vqtok-infer/torch"],
        release,
    )?[..] else {
        unreachable!()
    };
    let clip = cache_dir().join("samples").join(CLIP);
    let scratch = folder.with_extension("agreement");
    std::fs::create_dir_all(&scratch)?;
    let runs = [
        ("ort", &["--engine", "ort"][..]),
        ("fp32", &["--engine", "torch", "--device", device][..]),
        (
            "bf16",
            &[
                "--engine",
                "torch",
                "--device",
                device,
                "--precision",
                "bf16",
            ][..],
        ),
    ];
    for (name, flags) in runs {
        util::run(
            bins::command(vqtokenize)
                .arg(&clip)
                .arg("-m")
                .arg(folder)
                .arg("-o")
                .arg(scratch.join(format!("{name}.vqt.safetensors")))
                .args(["--size", "source", "--max-frames", FRAMES, "--force", "-q"])
                .args(flags),
        )?;
    }
    println!("token agreement on {CLIP} ({FRAMES} frames at 176×144, torch on {device}):");
    for (label, a, b) in [
        ("torch fp32 vs ORT fp32", "ort", "fp32"),
        ("torch bf16 vs torch fp32", "fp32", "bf16"),
    ] {
        let line = util::output(
            bins::command(vqtokenize)
                .arg("compare")
                .arg(scratch.join(format!("{a}.vqt.safetensors")))
                .arg(scratch.join(format!("{b}.vqt.safetensors"))),
        )?;
        println!("  {label}: {}", line.trim());
    }
    std::fs::remove_dir_all(&scratch)?;
    Ok(())
}
