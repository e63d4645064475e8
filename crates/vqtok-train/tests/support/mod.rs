//! What vqtok-train's test suites share: tensors from fixture files, tolerance checks,
//! libtorch's generator held while a test draws from it, and running the trainer on
//! generated videos. The helpers of every crate's tests are in vqtok-testkit.
#![allow(dead_code, unused_imports)] // each suite uses a different part

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};

use tch::nn::VarStore;
use tch::{Kind, Tensor};
use vqtok_config::Config;
pub use vqtok_testkit::{
    assert_contains_all, fixtures, lpips_weights, python, taming_tiny, workspace_root,
};
use vqtok_train::loss::Reconstruction;
use vqtok_train::model::ModelOutput;

/// Every tensor of a safetensors file, by name.
pub fn read_tensors(path: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .into_iter()
        .collect()
}

/// max |got − want| ≤ rtol · max |want|: relative to the tensor's scale (a norm-wise
/// error), so entries near zero do not demand an impossible relative precision.
pub fn assert_close(what: &str, got: &Tensor, want: &Tensor, rtol: f64) {
    assert_eq!(got.size(), want.size(), "{what}: shape");
    let got = got.to_kind(Kind::Double).to_device(tch::Device::Cpu);
    let want = want.to_kind(Kind::Double).to_device(tch::Device::Cpu);
    let err = (&got - &want).abs().max().double_value(&[]);
    let scale = want.abs().max().double_value(&[]).max(1e-12);
    assert!(
        err <= rtol * scale,
        "{what}: max abs error {err:e} > {rtol:e} × {scale:e}"
    );
}

/// Integer tensors with equal shapes and entries.
pub fn assert_same_ints(name: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.size(), want.size(), "{name}: shapes differ");
    let differ = got
        .to_kind(Kind::Int64)
        .ne_tensor(&want.to_kind(Kind::Int64))
        .sum(Kind::Int64)
        .int64_value(&[]);
    assert_eq!(differ, 0, "{name}: {differ} entries differ");
}

/// Copies of every variable of `vs`, sorted by name (a snapshot to compare against later).
pub fn var_copies(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(k, v)| (k, v.copy()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// What the loss sees of a forward pass: `inputs`, the model's output and its last layer.
pub fn reconstruction<'a>(
    inputs: &'a Tensor,
    out: &'a ModelOutput,
    last_layer: &'a Tensor,
) -> Reconstruction<'a> {
    Reconstruction {
        inputs,
        recon: &out.recon,
        vq_loss: &out.vq_loss,
        last_layer,
    }
}

pub fn scalar(t: &Tensor) -> f64 {
    t.to_kind(Kind::Double).double_value(&[])
}

/// Seeds libtorch's generator and holds it for the caller's scope. The generator is
/// process-wide and a test binary runs its tests on parallel threads, so a test that needs
/// reproducible draws (or builds a model whose init should not drift) holds this for its
/// whole body.
pub fn seeded(seed: i64) -> MutexGuard<'static, ()> {
    static RNG: Mutex<()> = Mutex::new(());
    let guard = RNG.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(seed);
    guard
}

/// A video of moving, textured boxes (vqtok-testkit's `moving_boxes`): `frames` frames of
/// `size`², 10 fps.
pub fn write_video(path: &Path, size: usize, frames: u32, seed: u32) {
    let opts = vqtok_testkit::video::WriterOptions {
        fps: 10.0,
        ..Default::default()
    };
    vqtok_testkit::video::write(path, frames as usize, (size, size), &opts, |t| {
        vqtok_testkit::video::moving_boxes(t, size, seed)
    });
}

/// `configs/<name>` with `patch` merged in (objects merge key by key).
pub fn config(name: &str, patch: serde_json::Value) -> Config {
    let base = Config::from_path(workspace_root().join("configs").join(name))
        .expect("shipped config loads");
    let mut json = base.to_json();
    vqtok_testkit::merge_json(&mut json, patch);
    Config::parse(&json.to_string()).expect("patched config is valid")
}

/// Writes `cfg` as `dir/param.json` and returns the path.
pub fn write_config(dir: &Path, cfg: &Config) -> PathBuf {
    let p = dir.join("param.json");
    std::fs::write(&p, cfg.to_json_pretty()).unwrap();
    p
}

/// The `vqtok-train` binary of this package with its failpoints (FAILPOINTS) compiled
/// in: built once per test process with the `failpoints` feature and copied aside, as
/// any other build of the binary (the pipeline test's, through xtask) replaces the file
/// at CARGO_BIN_EXE_vqtok-train.
pub fn bin() -> Command {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    let path = BIN.get_or_init(|| {
        let dir =
            vqtok_testkit::process::build_bins(&[("vqtok-train", "vqtok-train")], &["failpoints"]);
        let copy = dir.join("vqtok-train-failpoints");
        let tmp = dir.join(format!("vqtok-train-failpoints.{}", std::process::id()));
        std::fs::copy(dir.join("vqtok-train"), &tmp).expect("copy the test binary");
        std::fs::rename(&tmp, &copy).expect("publish the test binary");
        copy
    });
    Command::new(path)
}

/// Runs `cmd`, printing its stderr when it fails.
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
