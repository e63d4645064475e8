//! Shared by the trainer tests: generated videos, config variants, the binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vqtok_config::Config;
use vqtok_video::{VideoWriter, WriterOptions};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A video of moving, textured shapes (what a tokenizer can learn in a few hundred
/// CPU steps): `frames` frames of `size`×`size`, 10 fps, H.264 (or MPEG-4).
pub fn write_video(path: &Path, size: usize, frames: u32, seed: u32) {
    let opts = WriterOptions {
        fps: 10.0,
        ..WriterOptions::default()
    };
    let mut w = VideoWriter::create(path, size, size, &opts).expect("create test video");
    let s = size as i64;
    let px = size * size * 3;
    for t in 0..frames as i64 {
        let mut rgb = vec![0u8; px];
        for y in 0..s {
            for x in 0..s {
                let i = ((y * s + x) * 3) as usize;
                let cx = (x - (t * 2 + seed as i64 * 7) % s).rem_euclid(s);
                let cy = (y - t % s).rem_euclid(s);
                let in_box = cx < s / 3 && cy < s / 3;
                rgb[i] = if in_box { 230 } else { (x * 255 / s) as u8 };
                rgb[i + 1] = if in_box { 40 } else { (y * 255 / s) as u8 };
                rgb[i + 2] = ((((x / 4) + (y / 4) + t) % 2) * 120 + seed as i64 * 30 % 100) as u8;
            }
        }
        w.write(&rgb).expect("write frame");
    }
    w.finish().expect("finish test video");
}

/// `configs/<name>` with `patch` merged in (objects merge key by key).
pub fn config(name: &str, patch: serde_json::Value) -> Config {
    let base = Config::from_path(repo().join("configs").join(name)).expect("shipped config loads");
    let mut json = base.to_json();
    merge(&mut json, patch);
    Config::parse(&json.to_string()).expect("patched config is valid")
}

/// Merges `b` into `a`: objects key by key, anything else replaced.
pub fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// Writes `cfg` as `dir/param.json` and returns the path.
pub fn write_config(dir: &Path, cfg: &Config) -> PathBuf {
    let p = dir.join("param.json");
    std::fs::write(&p, cfg.to_json_pretty()).unwrap();
    p
}

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vqtok-train"));
    c.env("VQTOK_LPIPS_WEIGHTS", env!("VQTOK_LPIPS_WEIGHTS"));
    c
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run vqtok-train");
    if !out.status.success() {
        eprintln!("stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    out
}

pub fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
