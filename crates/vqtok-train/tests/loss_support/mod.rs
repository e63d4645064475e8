//! Shared by the loss tests: where the ground truth is and tolerance checks.
#![allow(dead_code)] // each test crate uses a different part of this module

use std::collections::HashMap;
use std::path::PathBuf;

use tch::{Device, Kind, Tensor};

/// The repository's own test fixtures (`tests/fixtures/`, see its README).
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

pub fn taming_tiny(file: &str) -> PathBuf {
    fixtures().join("taming_tiny").join(file)
}

pub fn read_named(path: &std::path::Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .into_iter()
        .collect()
}

/// The LPIPS weights setup made (`.cargo/config.toml` exports the variable).
pub fn lpips_weights() -> PathBuf {
    PathBuf::from(
        std::env::var("VQTOK_LPIPS_WEIGHTS")
            .expect("VQTOK_LPIPS_WEIGHTS is set by .cargo/config.toml"),
    )
}

/// max |got − want| ≤ rtol · max(max |want|, 1e-3): relative to the tensor's scale,
/// so entries near zero do not demand an impossible relative precision.
pub fn assert_close(what: &str, got: &Tensor, want: &Tensor, rtol: f64) {
    assert_eq!(got.size(), want.size(), "{what}: shape");
    let got = got.to_kind(Kind::Double).to_device(Device::Cpu);
    let want = want.to_kind(Kind::Double).to_device(Device::Cpu);
    let err = (&got - &want).abs().max().double_value(&[]);
    let scale = want.abs().max().double_value(&[]).max(1e-3);
    assert!(
        err <= rtol * scale,
        "{what}: max abs error {err:e} > {rtol:e} × {scale:e}\n got {got}\nwant {want}"
    );
}

pub fn scalar(t: &Tensor) -> f64 {
    t.to_kind(Kind::Double).double_value(&[])
}
