//! Helpers shared by the model tests: where the read-only fixtures are, and tolerant
//! tensor comparison.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use tch::{Kind, Tensor};

/// The repository's own test fixtures (`tests/fixtures/`, see its README).
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

pub fn taming_tiny(file: &str) -> PathBuf {
    fixtures().join("taming_tiny").join(file)
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn read_tensors(path: &std::path::Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .into_iter()
        .collect()
}

/// max|got − want| / max|want|: a norm-wise relative error, which stays meaningful where
/// individual elements are near zero.
pub fn rel_err(got: &Tensor, want: &Tensor) -> f64 {
    assert_eq!(got.size(), want.size(), "shapes differ");
    let got = got.to_kind(Kind::Double);
    let want = want.to_kind(Kind::Double);
    let diff = (&got - &want).abs().max().double_value(&[]);
    let scale = want.abs().max().double_value(&[]).max(1e-300);
    diff / scale
}

pub fn assert_close(name: &str, got: &Tensor, want: &Tensor, rtol: f64) {
    let e = rel_err(got, want);
    eprintln!("{name}: {e:.2e}");
    assert!(e <= rtol, "{name}: relative error {e:.3e} > {rtol:.0e}");
}

pub fn assert_same_ints(name: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.size(), want.size(), "{name}: shapes differ");
    let differ = got
        .to_kind(Kind::Int64)
        .ne_tensor(&want.to_kind(Kind::Int64))
        .sum(Kind::Int64)
        .int64_value(&[]);
    assert_eq!(differ, 0, "{name}: {differ} entries differ");
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "vqtok-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Seeds libtorch's generator and holds it for the caller's scope. The generator is
/// process-wide and a test binary runs its tests on parallel threads, so a test that needs
/// reproducible draws holds this for its whole body.
pub fn seeded(seed: i64) -> MutexGuard<'static, ()> {
    static RNG: Mutex<()> = Mutex::new(());
    let guard = RNG.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(seed);
    guard
}
