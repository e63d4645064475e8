//! LPIPS-VGG v0.1 with the real weights against the published values on the LPIPS
//! authors' example images, plus its basic properties and its missing-file error.

use std::path::Path;

use crate::support::{assert_contains_all, fixtures, lpips_weights, scalar};
use tch::{Device, Kind, Tensor};
use vqtok_train::loss::{LossError, Lpips};

/// A PNG as `[1, 3, H, W]` in [-1, 1] (LPIPS's `im2tensor`: x / 127.5 − 1).
fn image(name: &str) -> Tensor {
    let path = fixtures().join("lpips").join(name);
    let img = image::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    let (w, h) = img.dimensions();
    Tensor::from_slice(img.as_raw())
        .view([h as i64, w as i64, 3])
        .permute([2, 0, 1])
        .unsqueeze(0)
        .to_kind(Kind::Float)
        / 127.5
        - 1.0
}

fn lpips() -> Lpips {
    Lpips::load(&lpips_weights(), Device::Cpu, Kind::Float).expect("LPIPS weights load")
}

#[test]
fn matches_the_published_values_on_the_reference_images() {
    let net = lpips();
    let (r, p0, p1) = (image("ex_ref.png"), image("ex_p0.png"), image("ex_p1.png"));
    // Batched: sample 0 = (ref, p0), sample 1 = (ref, p1).
    let d = net.forward(&Tensor::cat(&[&r, &r], 0), &Tensor::cat(&[&p0, &p1], 0));
    assert_eq!(d.size(), [2, 1, 1, 1]);
    // Tolerance 1e-3: the README gives the values to 4 decimals; a random VGG gives
    // 0.03–0.06, a wrong tap or normalisation misses by far more than 1e-3.
    let d0 = d.double_value(&[0, 0, 0, 0]);
    let d1 = d.double_value(&[1, 0, 0, 0]);
    eprintln!("LPIPS-VGG: d(ref, p0) = {d0:.6}, d(ref, p1) = {d1:.6}");
    assert!((d0 - 0.5686).abs() < 1e-3, "d(ref, p0) = {d0}");
    assert!((d1 - 0.4217).abs() < 1e-3, "d(ref, p1) = {d1}");
}

#[test]
fn is_zero_on_identical_images_and_symmetric() {
    let net = lpips();
    let (r, p0) = (image("ex_ref.png"), image("ex_p0.png"));
    // Identical inputs give identical normalised features: exactly 0.
    assert_eq!(scalar(&net.forward(&r, &r)), 0.0);
    // Squared differences are symmetric; the two orders only differ in f32 rounding
    // of the same operations (1e-6 absolute on a value of ~0.57).
    let ab = scalar(&net.forward(&r, &p0));
    let ba = scalar(&net.forward(&p0, &r));
    assert!((ab - ba).abs() < 1e-6, "{ab} vs {ba}");
}

#[test]
fn gradients_reach_the_target_but_not_the_frozen_weights() {
    let net = lpips();
    let r = image("ex_ref.png");
    let p = image("ex_p0.png").set_requires_grad(true);
    let d = net.forward(&r, &p).sum(Kind::Float);
    let g = Tensor::run_backward(&[&d], &[&p], false, false);
    assert!(scalar(&g[0].abs().sum(Kind::Float)) > 0.0);
    // Nothing in the network can take a gradient.
    let d = net.forward(&r, &image("ex_p1.png")).sum(Kind::Float);
    assert!(!d.requires_grad());
}

/// With a detached real image (the generator step) the real image's VGG pass runs without
/// autograd; the distance and the gradient into the reconstruction are those of the one
/// pass over both (taken when both need gradients), to f32 rounding (1e-6 relative).
#[test]
fn a_detached_input_gives_the_same_distance_and_target_gradient() {
    let net = lpips();
    let grads = |input_grad: bool| {
        let r = image("ex_ref.png").set_requires_grad(input_grad);
        let p = image("ex_p0.png").set_requires_grad(true);
        let d = net.forward(&r, &p).sum(Kind::Float);
        let g = Tensor::run_backward(&[&d], &[&p], false, false);
        (scalar(&d), g[0].copy())
    };
    let ((split, g_split), (joint, g_joint)) = (grads(false), grads(true));
    assert!(
        (split - joint).abs() <= 1e-6 * joint.abs(),
        "{split} vs {joint}"
    );
    let err = scalar(&(&g_split - &g_joint).abs().max());
    let scale = scalar(&g_joint.abs().max());
    assert!(
        err <= 1e-6 * scale,
        "gradient differs by {err:e} (scale {scale:e})"
    );
}

#[test]
fn a_missing_weights_file_names_the_file_and_the_two_ways_out() {
    let missing = Path::new("/nonexistent/lpips_vgg16_v0.1.safetensors");
    let err = Lpips::load(missing, Device::Cpu, Kind::Float).unwrap_err();
    assert!(matches!(err, LossError::LpipsWeightsMissing(_)), "{err:?}");
    assert_contains_all(
        &err.to_string(),
        &[
            "/nonexistent/lpips_vgg16_v0.1.safetensors",
            "cargo xtask setup",
            "perceptual_weight: 0",
        ],
    );
}

#[test]
fn a_file_that_is_not_lpips_weights_is_rejected_by_key() {
    let dir = std::env::temp_dir().join(format!("vqtok-lpips-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("wrong.safetensors");
    // The real keys but one head with the wrong shape.
    let mut named: Vec<(String, Tensor)> = Tensor::read_safetensors(lpips_weights()).unwrap();
    for (k, v) in &mut named {
        if k == "lin2.model.1.weight" {
            *v = Tensor::zeros([1, 255, 1, 1], (Kind::Float, Device::Cpu));
        }
    }
    Tensor::write_safetensors(&named, &path).unwrap();
    let err = Lpips::load(&path, Device::Cpu, Kind::Float).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("lin2.model.1.weight") && msg.contains("255"),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
