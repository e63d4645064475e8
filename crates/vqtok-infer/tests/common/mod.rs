//! Helpers of the end-to-end tests: model folders exported from repository configs with
//! seeded random weights, generated videos, and running the `vqtokenize` binary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

use vqtok_export::{ExportOptions, RandomWeights, export};
use vqtok_testkit::video::WriterOptions;

pub use vqtok_testkit::process::{assert_status, stderr, stdout_json};
pub use vqtok_testkit::video::ripple as pattern;
pub use vqtok_testkit::{files_below, python, random_bytes, token_files, workspace_root};

/// A fresh, empty scratch folder for one test.
pub fn scratch(name: &str) -> PathBuf {
    vqtok_testkit::fresh_dir(
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("vqtok-infer")
            .join(name),
    )
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

/// Writes `n` pattern frames at `fps` (near-lossless H.264, key frame every 10 frames).
pub fn write_video(path: &Path, n: usize, w: usize, h: usize, fps: f64) {
    let opts = WriterOptions {
        fps,
        crf: 0,
        gop: Some(10),
        ..WriterOptions::default()
    };
    vqtok_testkit::video::write(path, n, (w, h), &opts, |i| pattern(i, w, h));
}

/// The scratch folder `name` holding the video `file`: `frames` pattern frames of `w × h`
/// at `fps` (see `write_video`). Returns the folder and the video's path.
pub fn scratch_with_video(
    name: &str,
    file: &str,
    frames: usize,
    (w, h): (usize, usize),
    fps: f64,
) -> (PathBuf, PathBuf) {
    let dir = scratch(name);
    let video = dir.join(file);
    write_video(&video, frames, w, h, fps);
    (dir, video)
}

/// Runs `vqtokenize` with `args`; ORT comes from the environment cargo sets.
pub fn vqtokenize(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vqtokenize"))
        .args(args.iter().map(|a| a.as_ref()))
        .env_remove("VQTOK_MODEL")
        .output()
        .expect("cannot start vqtokenize")
}

/// Runs `vqtokenize decode TOKENS -m MODEL` with `extra` arguments.
pub fn decode(tokens: &Path, model: &Path, extra: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"decode", &tokens, &"-m", &model];
    args.extend_from_slice(extra);
    vqtokenize(&args)
}
