//! Helpers shared by the integration tests: paths, fixtures, ORT runs, Python.

use std::path::{Path, PathBuf};
use std::process::Command;

use vqtok_runtime::{GraphKind, Input, Manifest, Output, Session, SessionOptions};

pub use vqtok_testkit::process::assert_status;
pub use vqtok_testkit::{fixtures, python, random_bytes, taming_tiny, workspace_root};

/// A fresh, empty scratch folder for one test.
pub fn scratch(name: &str) -> PathBuf {
    vqtok_testkit::fresh_dir(Path::new(env!("CARGO_TARGET_TMPDIR")).join(name))
}

/// Runs the `kind` graph of the model folder `dir` on `inputs`; returns outputs by name.
pub fn run(dir: &Path, kind: GraphKind, inputs: &[(&str, Input<'_>)]) -> Vec<(String, Output)> {
    let mut session = Session::open(
        &dir.join(format!("{}.onnx", kind.key())),
        SessionOptions::default(),
    )
    .unwrap();
    session.run(inputs).unwrap()
}

pub fn i64_out(outs: &[(String, Output)], name: &str) -> (Vec<usize>, Vec<i64>) {
    match outs.iter().find(|(k, _)| k == name) {
        Some((_, Output::I64(t))) => (t.shape.clone(), t.data.clone()),
        other => panic!("no int64 output {name}: {other:?}"),
    }
}

pub fn f32_out(outs: &[(String, Output)], name: &str) -> (Vec<usize>, Vec<f32>) {
    match outs.iter().find(|(k, _)| k == name) {
        Some((_, Output::F32(t))) => (t.shape.clone(), t.data.clone()),
        other => panic!("no float output {name}: {other:?}"),
    }
}

pub fn u8_out(outs: &[(String, Output)], name: &str) -> (Vec<usize>, Vec<u8>) {
    match outs.iter().find(|(k, _)| k == name) {
        Some((_, Output::U8(t))) => (t.shape.clone(), t.data.clone()),
        other => panic!("no u8 output {name}: {other:?}"),
    }
}

/// Rounds like the u8 decoder: clamp to [0, 255], round half to even.
pub fn to_u8(v: f64) -> u8 {
    v.clamp(0.0, 255.0).round_ties_even() as u8
}

/// Smooth synthetic frames `[n, h, w, 3]` (gradients + a moving square): closer to
/// video than noise, so reconstructions and PSNR mean something.
pub fn smooth_frames(n: usize, h: usize, w: usize, seed: u64) -> Vec<u8> {
    let noise = random_bytes(n * h * w * 3, seed);
    let mut out = vec![0u8; n * h * w * 3];
    for b in 0..n {
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    let i = ((b * h + y) * w + x) * 3 + c;
                    let base = (x * 255 / w.max(1)) as f64 * (c as f64 + 1.0) / 3.0
                        + (y * 255 / h.max(1)) as f64 * 0.3;
                    let square = if (y / 8 + x / 8 + b) % 3 == 0 {
                        60.0
                    } else {
                        0.0
                    };
                    let v = base + square + (noise[i] as f64 - 128.0) * 0.1;
                    out[i] = v.clamp(0.0, 255.0) as u8;
                }
            }
        }
    }
    out
}

/// NHWC u8 → NCHW f32 normalised with the manifest's formula, computed as the graph does.
pub fn normalize_like_graph(manifest: &Manifest, shape: [usize; 4], frames: &[u8]) -> Vec<f32> {
    let p = &manifest.normalization.pixels;
    let [n, h, w, c] = shape;
    let mut out = vec![0f32; frames.len()];
    for (i, &v) in frames.iter().enumerate() {
        let (ch, rest) = (i % c, i / c);
        let (x, rest) = (rest % w, rest / w);
        let (y, b) = (rest % h, rest / h);
        let mut f = v as f32 / p.divisor[ch] as f32 - p.offset[ch] as f32;
        if p.std[ch] != 1.0 {
            f /= p.std[ch] as f32;
        }
        out[((b * c + ch) * h + y) * w + x] = f;
    }
    let _ = n;
    out
}

/// Runs a Python script with arguments; panics with its stderr on failure; returns stdout.
pub fn run_python(script: &str, args: &[&Path]) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .env("ORT_DISABLE_TELEMETRY", "1")
        .output()
        .expect("cannot start the venv's python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A param.json text for a config file of the repository, by file name.
pub fn repo_config(name: &str) -> vqtok_config::Config {
    vqtok_config::Config::from_path(workspace_root().join("configs").join(name)).unwrap()
}

/// configs/emavq_tiny.json normalised with ImageNet's mean and std instead of to [-1, 1].
pub fn emavq_mean_std_config() -> vqtok_config::Config {
    let mut config = repo_config("emavq_tiny.json");
    config.data.normalize = vqtok_config::Normalize::MeanStd {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };
    config
}
