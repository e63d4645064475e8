//! Parity with an independent PyTorch implementation of every family
//! (tests/torch_reference.py, float64), through `verify`: the same path the tch
//! reference will take. Random weights with randomised GroupNorm affines, so that
//! every parameter matters.

use std::path::Path;

use crate::common::*;
use vqtok_config::Config;
use vqtok_export::{
    CheckpointWeights, ExportOptions, RandomWeights, RawTensor, VerifyOptions, export, verify,
    write_tensors,
};

fn check_family(config: &Config, name: &str, h: usize, w: usize) {
    let dir = scratch(&format!("torch_{name}"));
    let model = dir.join("model");
    // Random weights → (PyTorch re-initialises the codebooks from data) → checkpoint.
    let mut weights = RandomWeights::new(31).with_jittered_norms();
    export(config, &mut weights, &model, &ExportOptions::default()).unwrap();
    weights.save(&dir.join("weights.safetensors")).unwrap();

    let frames = smooth_frames(2, h, w, 4);
    let images: Vec<f32> = random_bytes(3 * h * w, 5)
        .iter()
        .map(|&b| b as f32 / 127.5 - 1.0)
        .collect();
    write_tensors(
        &dir.join("inputs.safetensors"),
        &[
            ("frames".into(), RawTensor::from_u8(&[2, h, w, 3], &frames)),
            ("images".into(), RawTensor::from_f32(&[1, 3, h, w], &images)),
        ],
    )
    .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/torch_reference.py");
    let reference = dir.join("reference.safetensors");
    let script_text = std::fs::read_to_string(&script).unwrap();
    run_python(
        &script_text,
        &[
            &dir.join("weights.safetensors"),
            &model.join("manifest.json"),
            &dir.join("inputs.safetensors"),
            &reference,
            Path::new("--data-init"),
            &dir.join("data_init.safetensors"),
        ],
    );
    let mut ckpt = CheckpointWeights::open(dir.join("data_init.safetensors")).unwrap();
    export(config, &mut ckpt, &model, &ExportOptions::default()).unwrap();
    // The test only means something if the reference uses many codes.
    let file = vqtok_export::TensorFile::open(&reference).unwrap();
    for key in file.names().into_iter().filter(|k| k.contains("indices")) {
        let mut codes = file.i64(key).unwrap().1;
        codes.sort_unstable();
        codes.dedup();
        assert!(
            codes.len() >= 8,
            "{name}: `{key}` uses only {} codes",
            codes.len()
        );
    }
    let report = verify(&model, &reference, &VerifyOptions::default()).unwrap();
    eprintln!("{name}: {}", report.summary());
    assert_eq!(report.cases.len(), 2);
    // Random weights put many codes at similar distances, so a rare f32-vs-f64 argmin
    // flip is legitimate; more than one in a thousand is a bug. The decoder and PSNR
    // gates are the (1e-3 on 0–255, 0.01 dB).
    assert!(report.passed, "{name}: {}", report.summary());
}

#[test]
fn taming_matches_pytorch() {
    check_family(&repo_config("taming_tiny.json"), "taming", 64, 96);
}

#[test]
fn taming_without_resampling_convs_matches_pytorch() {
    let mut config = repo_config("taming_tiny.json");
    let vqtok_config::ModelConfig::Taming(a) = &mut config.model else {
        unreachable!("taming_tiny.json is a taming config")
    };
    a.ddconfig.resamp_with_conv = false;
    check_family(&config, "taming_pool", 32, 32);
}

#[test]
fn vqvae_matches_pytorch() {
    check_family(&repo_config("vqvae_tiny.json"), "vqvae", 64, 96);
}

#[test]
fn vqvae2_matches_pytorch() {
    check_family(&repo_config("vqvae2_tiny.json"), "vqvae2", 64, 96);
}

#[test]
fn emavq_with_mean_std_matches_pytorch() {
    check_family(&emavq_mean_std_config(), "emavq", 32, 48);
}
