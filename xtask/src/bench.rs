//! `cargo xtask bench`: our criterion benches (benches/tokenize.rs) and, case by case in
//! the same command, the same graphs through Python onnxruntime and the same model in
//! PyTorch eager (benches/reference.py), so that load on this shared machine hits both
//! sides alike; then a table of frames/s and ratios (ours / theirs).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::setup;
use crate::util::{self, root, venv_python};

pub struct BenchArgs {
    /// `tiny`, `seed`.
    pub models: Vec<String>,
    /// ORT / torch intra-op threads for every side.
    pub threads: usize,
    /// Timed calls per Python runtime and case.
    pub iters: usize,
    /// Batch 1 only, no batch 8 (the video case still runs).
    pub quick: bool,
}

/// Frame size each model is timed at (as in benches/tokenize.rs).
fn frame_size(model: &str) -> Result<usize> {
    Ok(match model {
        "tiny" => 64,
        "seed" => 256,
        other => bail!(util::user_error(format!(
            "unknown bench model `{other}` (tiny, seed)"
        ))),
    })
}

fn bench_dir() -> PathBuf {
    root().join("target/vqtok-bench")
}

/// Runs criterion for exactly benchmark `id`; returns its median seconds per frame (per
/// iteration over the frames its throughput declares).
fn ours(id: &str, threads: usize) -> Result<f64> {
    util::run(
        util::cargo()
            .args(["bench", "-p", "vqtok", "--bench", "tokenize"])
            .env("VQTOK_BENCH_ONLY", id)
            .env("VQTOK_BENCH_DIR", bench_dir())
            .env("VQTOK_BENCH_THREADS", threads.to_string()),
    )?;
    // criterion stores `group/function` under target/criterion/<group with _>/<function>.
    let (group, function) = id.rsplit_once('/').expect("ids have a group");
    let dir = root()
        .join("target/criterion")
        .join(group.replace('/', "_"))
        .join(function)
        .join("new");
    let read = |name: &str| -> Result<Value> {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("criterion wrote no {}", path.display()))?;
        Ok(serde_json::from_str(&text)?)
    };
    let median_ns = read("estimates.json")?["median"]["point_estimate"]
        .as_f64()
        .context("criterion estimates without a median")?;
    let frames = read("benchmark.json")?["throughput"]["Elements"]
        .as_f64()
        .context("criterion benchmark without an element throughput")?;
    Ok(median_ns / 1e9 / frames)
}

/// benches/reference.py for one case: seconds per frame (median) per runtime.
fn theirs(model: &str, part: &str, batch: usize, args: &BenchArgs) -> Result<Value> {
    let dir = bench_dir().join(model);
    let size = frame_size(model)?.to_string();
    let out = util::output(
        std::process::Command::new(venv_python())
            .arg(root().join("benches/reference.py"))
            .arg("--model")
            .arg(&dir)
            .arg("--weights")
            .arg(dir.join("weights.safetensors"))
            .args(["--part", part, "--batch", &batch.to_string()])
            .args(["--size", &size, &size])
            .args(["--iters", &args.iters.to_string()])
            .args(["--threads", &args.threads.to_string()])
            .env("ORT_DISABLE_TELEMETRY", "1"),
    )?;
    let line = out.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("reference.py printed {out}"))
}

fn median(v: &Value, runtime: &str) -> Option<f64> {
    v[runtime]["median_s_per_frame"].as_f64()
}

/// PyTorch eager at its better thread count (N or 1; see reference.py).
fn best_eager(v: &Value) -> Option<f64> {
    [median(v, "eager"), median(v, "eager_1_thread")]
        .into_iter()
        .flatten()
        .reduce(f64::min)
}

pub fn run(args: &BenchArgs) -> Result<()> {
    setup::run()?;
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let batches: &[usize] = if args.quick { &[1] } else { &[1, 8] };
    let mut rows = Vec::new();
    for model in &args.models {
        frame_size(model)?;
        let mut encode_b8 = None;
        for part in ["encode", "decode"] {
            for &batch in batches {
                let id = format!("{part}/{model}/b{batch}");
                eprintln!("==> {id}: ours (criterion), then Python onnxruntime and PyTorch eager");
                let per_frame = ours(&id, args.threads)?;
                if part == "encode" && batch == 8 {
                    encode_b8 = Some(per_frame);
                }
                let graph = if part == "encode" {
                    "encoder"
                } else {
                    "decoder"
                };
                let other = theirs(model, graph, batch, args)?;
                rows.push(json!({
                    "case": id,
                    "ours_s_per_frame": per_frame,
                    "ort_python_s_per_frame": median(&other, "ort_python"),
                    "eager_s_per_frame": best_eager(&other),
                    "eager_n_threads_s_per_frame": median(&other, "eager"),
                    "eager_1_thread_s_per_frame": median(&other, "eager_1_thread"),
                    "eager_min_s_per_frame": other["eager"]["min_s_per_frame"],
                    "ort_python_min_s_per_frame": other["ort_python"]["min_s_per_frame"],
                }));
            }
        }
        let id = format!("video/{model}");
        eprintln!("==> {id}: decode + resize + encoder, overlapped");
        let per_frame = ours(&id, args.threads)?;
        rows.push(json!({
            "case": id,
            "ours_s_per_frame": per_frame,
            "of_encoder_only": encode_b8.map(|e| e / per_frame),
        }));
    }

    println!(
        "\nCPU: {cpu}; {} threads per runtime (eager: the better of that and 1); medians",
        args.threads
    );
    println!(
        "| case | ours frames/s | Python ORT frames/s | PyTorch eager frames/s | ours / ORT | ours / eager |"
    );
    println!("|---|---|---|---|---|---|");
    let fps = |s: Option<f64>| s.map_or("–".to_string(), |s| format!("{:.3}", 1.0 / s));
    for r in &rows {
        let ours = r["ours_s_per_frame"].as_f64();
        let ratio = |key: &str| match (ours, r[key].as_f64()) {
            (Some(o), Some(t)) => format!("{:.2}×", t / o),
            _ => "–".into(),
        };
        let note = r["of_encoder_only"]
            .as_f64()
            .map(|f| format!(" ({:.1} % of encoder-only b8)", 100.0 * f))
            .unwrap_or_default();
        println!(
            "| {}{note} | {} | {} | {} | {} | {} |",
            r["case"].as_str().unwrap_or(""),
            fps(ours),
            fps(r["ort_python_s_per_frame"].as_f64()),
            fps(r["eager_s_per_frame"].as_f64()),
            ratio("ort_python_s_per_frame"),
            ratio("eager_s_per_frame"),
        );
    }
    let out = bench_dir().join("results.json");
    write_json(
        &out,
        &json!({"cpu": cpu, "threads": args.threads, "rows": rows}),
    )?;
    println!("\n(results also in {})", out.display());
    Ok(())
}

fn write_json(path: &Path, v: &Value) -> Result<()> {
    std::fs::create_dir_all(path.parent().expect("a file in a folder"))?;
    std::fs::write(path, serde_json::to_string_pretty(v)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))
}
