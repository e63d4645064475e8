//! Seed encoder (configs/taming_vqgan_f16_1024.json, random weights) at 256², batch 1,
//! through ONNX Runtime, against PyTorch eager on the same weights (venv's torch),
//! alternating the two so machine load affects both alike.
//!
//! `cargo bench -p vqtok-export --bench seed_encoder`; environment: VQTOK_BENCH_RUNS
//! (timed runs per round, default 3), VQTOK_BENCH_THREADS (default 2: the target
//! machine's cores), VQTOK_BENCH_EAGER=0 to skip PyTorch, VQTOK_BENCH_DECODER=1 to
//! also time the decoder.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use vqtok_export::{ExportOptions, RandomWeights, export};
use vqtok_runtime::{Input, Session, SessionOptions};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Min seconds of `runs` calls after one warm-up call.
fn time_min(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    // SAFETY: before any thread exists.
    unsafe { std::env::set_var("ORT_DISABLE_TELEMETRY", "1") };
    let runs = env_usize("VQTOK_BENCH_RUNS", 3);
    let threads = env_usize("VQTOK_BENCH_THREADS", 2);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config =
        vqtok_config::Config::from_path(root.join("../../configs/taming_vqgan_f16_1024.json"))
            .expect("seed config");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("seed_bench");
    let mut weights = RandomWeights::new(5);
    let options = ExportOptions {
        float_variants: false,
        ..ExportOptions::default()
    };
    let t = Instant::now();
    export(&config, &mut weights, &dir, &options).expect("export");
    println!("export: {:.1} s", t.elapsed().as_secs_f64());
    weights
        .save(&dir.join("weights.safetensors"))
        .expect("save weights");

    let session = SessionOptions {
        threads: Some(threads),
        ..SessionOptions::default()
    };
    let mut encoder = Session::open(&dir.join("encoder.onnx"), session).expect("encoder");
    let frames: Vec<u8> = (0..256 * 256 * 3).map(|i| (i * 7 % 251) as u8).collect();
    let mut run_encoder = || {
        encoder
            .run(&[("frames", Input::U8(vec![1, 256, 256, 3], &frames))])
            .expect("encoder run");
    };
    let eager = std::env::var("VQTOK_BENCH_EAGER").map_or(true, |v| v != "0");
    let python = std::env::var("VQTOK_PYTHON").unwrap_or_else(|_| "python3".into());
    let (mut best_ort, mut best_eager) = (f64::INFINITY, f64::INFINITY);
    for round in 0..2 {
        let ort = time_min(runs, &mut run_encoder);
        best_ort = best_ort.min(ort);
        println!("round {round}: ORT encoder {ort:.3} s/frame ({threads} threads)");
        if eager {
            let out = Command::new(&python)
                .arg(root.join("benches/seed_eager.py"))
                .arg(dir.join("weights.safetensors"))
                .arg(dir.join("manifest.json"))
                .arg(runs.to_string())
                .arg(threads.to_string())
                .output()
                .expect("python");
            let text = String::from_utf8_lossy(&out.stdout);
            let secs = text
                .lines()
                .find_map(|l| l.strip_prefix("eager_s_per_frame "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or_else(|| {
                    panic!("eager run failed: {}", String::from_utf8_lossy(&out.stderr))
                });
            best_eager = best_eager.min(secs);
            println!("round {round}: PyTorch eager encoder {secs:.3} s/frame");
        }
    }
    println!("best: ORT {best_ort:.3} s/frame");
    if eager {
        println!(
            "best: eager {best_eager:.3} s/frame, ratio {:.2}×",
            best_eager / best_ort
        );
    }
    if std::env::var("VQTOK_BENCH_DECODER").is_ok_and(|v| v == "1") {
        let mut decoder = Session::open(&dir.join("decoder.onnx"), session).expect("decoder");
        let idx: Vec<i64> = (0..256).map(|i| i * 37 % 1024).collect();
        let dec = time_min(runs, || {
            decoder
                .run(&[("indices", Input::I64(vec![1, 16, 16], &idx))])
                .expect("decoder run");
        });
        println!("ORT decoder {dec:.3} s/frame");
    }
}
