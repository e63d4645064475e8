//! Helpers of the end-to-end tests: model folders exported from repository configs with
//! seeded random weights, generated videos, and running the `vqtokenize` binary.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

use vqtok_export::{ExportOptions, RandomWeights, export};
use vqtok_video::{VideoWriter, WriterOptions};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fresh, empty scratch folder for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("vqtok-infer")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The model folder of `configs/<config>` with random weights `seed` (exported once per
/// test process; tests in one binary share it).
pub fn model(config: &str, seed: u64) -> PathBuf {
    static MADE: OnceLock<Mutex<HashMap<(String, u64), PathBuf>>> = OnceLock::new();
    let mut made = MADE.get_or_init(Default::default).lock().unwrap();
    made.entry((config.to_string(), seed))
        .or_insert_with(|| {
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join("vqtok-infer-models")
                .join(format!("{}-{seed}", config.trim_end_matches(".json")));
            let _ = std::fs::remove_dir_all(&dir);
            let cfg =
                vqtok_config::Config::from_path(workspace_root().join("configs").join(config))
                    .unwrap();
            let mut weights = RandomWeights::new(seed).with_jittered_norms();
            let options = ExportOptions {
                float_variants: false,
                ..ExportOptions::default()
            };
            export(&cfg, &mut weights, &dir, &options).unwrap();
            dir
        })
        .clone()
}

/// Frame `i` of a smooth moving test pattern, `w × h` RGB24: gradients, a bright square
/// moving right and a ripple, so codes vary over space and time.
pub fn pattern(i: usize, w: usize, h: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let sq = (x + 2 * w - 3 * i % w) % w < w / 4 && y > h / 4 && y < h / 2;
            let ripple = (((x * x + y * y) as f64).sqrt() * 0.4 - i as f64 * 0.5).sin();
            let r = (x * 255 / w) as f64;
            let g = (y * 255 / h) as f64;
            let b = 128.0 + 90.0 * ripple;
            let boost = if sq { 80.0 } else { 0.0 };
            for v in [r + boost, g + boost, b] {
                out.push(v.clamp(0.0, 255.0) as u8);
            }
        }
    }
    out
}

/// Writes `n` pattern frames at `fps` (near-lossless H.264, key frame every 10 frames).
pub fn write_video(path: &Path, n: usize, w: usize, h: usize, fps: f64) {
    let opts = WriterOptions {
        fps,
        crf: 0,
        gop: Some(10),
        ..WriterOptions::default()
    };
    let mut writer = VideoWriter::create(path, w, h, &opts).unwrap();
    for i in 0..n {
        writer.write(&pattern(i, w, h)).unwrap();
    }
    writer.finish().unwrap();
}

/// Runs `vqtokenize` with `args`; ORT comes from the environment cargo sets.
pub fn vqtokenize(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vqtokenize"))
        .args(args.iter().map(|a| a.as_ref()))
        .env_remove("VQTOK_MODEL")
        .output()
        .expect("cannot start vqtokenize")
}

/// Asserts the exit status, printing the output when it differs.
pub fn assert_status(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn stdout_json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The venv's Python (for reading our files with the reference packages).
pub fn python() -> PathBuf {
    std::env::var_os("VQTOK_PYTHON")
        .map(PathBuf::from)
        .expect("VQTOK_PYTHON is set by .cargo/config.toml; run `cargo xtask setup`")
}
