//! The taming_tiny fixture (weights + float64 intermediates from the original Python
//! code) exported and run through ONNX Runtime.

use std::path::Path;

use crate::common::*;
use vqtok_export::{
    ExportOptions, ModelSource, RawTensor, TensorFile, VerifyOptions, export, verify, write_tensors,
};
use vqtok_runtime::{GraphKind, Input, Manifest, Verification};

fn export_fixture(dir: &Path, options: &ExportOptions) -> Manifest {
    let mut ckpt = ModelSource::files(
        &taming_tiny("model.safetensors"),
        &taming_tiny("param.json"),
    )
    .unwrap();
    let m = export(&ckpt.config, &mut ckpt.weights, dir, options).unwrap();
    // The fixture also holds the discriminator (`loss.*`), which is expected to be unused.
    assert_eq!(ckpt.weights.unused(), Vec::<String>::new());
    m
}

struct Expected {
    x: (Vec<usize>, Vec<f32>),
    x64: Vec<f64>,
    indices: (Vec<usize>, Vec<i64>),
    decoded64: Vec<f64>,
}

fn expected() -> Expected {
    let f = TensorFile::open(taming_tiny("expected.safetensors")).unwrap();
    let x = f.f32("x").unwrap();
    let x64 = raw_f64(&f, "x");
    let decoded64 = raw_f64(&f, "decode_from_indices");
    Expected {
        x,
        x64,
        indices: f.i64("indices").unwrap(),
        decoded64,
    }
}

impl Expected {
    /// The fixture's indices as the decoders' input.
    fn indices_input(&self) -> [(&'static str, Input<'_>); 1] {
        [(
            "indices",
            Input::I64(self.indices.0.clone(), &self.indices.1),
        )]
    }

    /// The fixture's x as the float encoder's input.
    fn x_input(&self) -> [(&'static str, Input<'_>); 1] {
        [("images", Input::F32(self.x.0.clone(), &self.x.1))]
    }
}

/// The f64 values of a tensor (TensorFile only hands out f32; parity wants the originals).
fn raw_f64(_f: &TensorFile, name: &str) -> Vec<f64> {
    let bytes = std::fs::read(taming_tiny("expected.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    assert_eq!(t.dtype(), safetensors::Dtype::F64);
    t.data()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn float_graphs_reproduce_the_original_indices_and_decoding() {
    let dir = scratch("fixture_float");
    export_fixture(&dir, &ExportOptions::default());
    let e = expected();

    let outs = run(&dir, GraphKind::EncoderFloat, &e.x_input());
    let (shape, idx) = i64_out(&outs, "indices");
    assert_eq!(shape, e.indices.0);
    // The README promises exact indices from an f32 re-implementation.
    assert_eq!(idx, e.indices.1);

    let outs = run(&dir, GraphKind::DecoderFloat, &e.indices_input());
    let (shape, rec) = f32_out(&outs, "images");
    assert_eq!(shape, vec![2, 3, 32, 32]);
    let scale = e.decoded64.iter().fold(0f64, |m, v| m.max(v.abs()));
    let max_err = rec
        .iter()
        .zip(&e.decoded64)
        .map(|(a, b)| (*a as f64 - b).abs())
        .fold(0f64, f64::max);
    // f32 through ~25 layers vs the f64 original: the README's ~1e-4 relative bound.
    assert!(
        max_err <= 1e-4 * scale,
        "max |Δ| {max_err} vs scale {scale}"
    );
}

#[test]
fn u8_graphs_match_the_float_graphs_and_the_fixture() {
    let dir = scratch("fixture_u8");
    let manifest = export_fixture(&dir, &ExportOptions::default());
    let e = expected();

    // Decoder: the u8 output is the f64 reference unnormalised, clamped and rounded,
    // except where f32 noise (≤ 1e-4·127.5 ≈ 0.013) straddles a rounding boundary.
    let outs = run(&dir, GraphKind::Decoder, &e.indices_input());
    let (shape, frames) = u8_out(&outs, "frames");
    assert_eq!(shape, vec![2, 32, 32, 3]);
    let (mut exact, mut near_tie) = (0, 0);
    for b in 0..2 {
        for c in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    let v = (e.decoded64[((b * 3 + c) * 32 + y) * 32 + x] + 1.0) * 127.5;
                    let got = frames[((b * 32 + y) * 32 + x) * 3 + c];
                    if got == to_u8(v) {
                        exact += 1;
                    } else {
                        let frac = v - v.floor();
                        assert!((frac - 0.5).abs() < 0.02, "pixel {v} decoded as {got}");
                        near_tie += 1;
                    }
                }
            }
        }
    }
    assert!(near_tie <= 5, "{near_tie} near-tie pixels (exact {exact})");

    // Encoder: frames made from x (lossy), tokenised by the u8 graph, equal the float
    // graph's tokens on the same frames normalised as the manifest says.
    let frames: Vec<u8> = {
        let mut f = vec![0u8; 2 * 32 * 32 * 3];
        for b in 0..2 {
            for c in 0..3 {
                for y in 0..32 {
                    for x in 0..32 {
                        let v = (e.x64[((b * 3 + c) * 32 + y) * 32 + x] + 1.0) * 127.5;
                        f[((b * 32 + y) * 32 + x) * 3 + c] = to_u8(v);
                    }
                }
            }
        }
        f
    };
    let outs = run(
        &dir,
        GraphKind::Encoder,
        &[("frames", Input::U8(vec![2, 32, 32, 3], &frames))],
    );
    let (shape, idx_u8) = i64_out(&outs, "indices");
    assert_eq!(shape, vec![2, 8, 8]);
    let images = normalize_like_graph(&manifest, [2, 32, 32, 3], &frames);
    let outs = run(
        &dir,
        GraphKind::EncoderFloat,
        &[("images", Input::F32(vec![2, 3, 32, 32], &images))],
    );
    assert_eq!(i64_out(&outs, "indices").1, idx_u8);
    // Quantising x to u8 moves it by ≤ 1/255: most tokens survive.
    let same = idx_u8
        .iter()
        .zip(&e.indices.1)
        .filter(|(a, b)| a == b)
        .count();
    assert!(
        same * 10 >= idx_u8.len() * 9,
        "{same}/{} tokens survive u8 rounding",
        idx_u8.len()
    );
}

/// A reference file from the fixture's expected tensors: the float input set.
fn fixture_reference(path: &Path, perturb: bool) {
    let f = TensorFile::open(taming_tiny("expected.safetensors")).unwrap();
    let (xs, x) = f.f32("x").unwrap();
    let (is, mut idx) = f.i64("indices").unwrap();
    let (rs, mut rec) = f.f32("decode_from_indices").unwrap();
    if perturb {
        // 2 of 128 tokens wrong (98.4 %) and one pixel off by 0.1 (12.75 on 0–255).
        idx[0] = (idx[0] + 1) % 32;
        idx[77] = (idx[77] + 1) % 32;
        rec[5] += 0.1;
    }
    write_tensors(
        path,
        &[
            ("images".into(), RawTensor::from_f32(&xs, &x)),
            (
                "images_indices.quantize".into(),
                RawTensor::from_i64(&is, &idx),
            ),
            ("images_recon_float".into(), RawTensor::from_f32(&rs, &rec)),
        ],
    )
    .unwrap();
}

#[test]
fn verify_passes_on_the_fixture_and_fails_with_numbers_when_perturbed() {
    let dir = scratch("fixture_verify");
    export_fixture(&dir, &ExportOptions::default());
    let good = dir.join("reference_good.safetensors");
    let bad = dir.join("reference_bad.safetensors");
    fixture_reference(&good, false);
    fixture_reference(&bad, true);

    let r = verify(&dir, &good, &VerifyOptions::default()).unwrap();
    assert!(r.passed, "{}", r.summary());
    assert_eq!((r.tokens, r.matching_tokens), (128, 128));
    assert_eq!(r.cases.len(), 1);
    assert_eq!(r.cases[0].input, "images");
    // f32 ORT vs the f64 original (rounded to f32 in the file): well inside the gate.
    assert!(r.decoder_max_abs_diff < 1e-3, "{}", r.decoder_max_abs_diff);
    assert!(r.psnr_delta_db < 1e-3, "{}", r.psnr_delta_db);

    let r = verify(&dir, &bad, &VerifyOptions::default()).unwrap();
    assert!(!r.passed);
    assert_eq!(r.matching_tokens, 126);
    // ≥ the planted 12.75; the two changed tokens also decode differently from `rec`.
    assert!(r.decoder_max_abs_diff >= 12.7, "{}", r.decoder_max_abs_diff);
    assert_eq!(r.failures.len(), 2, "{:?}", r.failures);
    assert!(r.failures[0].contains("98.4375"), "{:?}", r.failures);

    // The binary: 0 on pass (report recorded), 1 on a failed gate, 2 on bad input.
    let bin = env!("CARGO_BIN_EXE_vqtok-export");
    let status = |args: &[&str]| std::process::Command::new(bin).args(args).output().unwrap();
    let d = dir.to_str().unwrap();
    let out = status(&[
        "verify",
        "--model",
        d,
        "--reference",
        good.to_str().unwrap(),
    ]);
    assert_status(&out, 0);
    let m = Manifest::load(&dir).unwrap();
    assert!(matches!(m.verification, Verification::Passed(ref r) if r.tokens == 128));
    let out = status(&["verify", "--model", d, "--reference", bad.to_str().unwrap()]);
    assert_status(&out, 1);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("98.4375") && stdout.contains("FAILED"),
        "{stdout}"
    );
    assert!(matches!(
        Manifest::load(&dir).unwrap().verification,
        Verification::Failed(_)
    ));
    let out = status(&[
        "verify",
        "--model",
        d,
        "--reference",
        "/nonexistent.safetensors",
    ]);
    assert_status(&out, 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.safetensors"));
}

#[test]
fn export_cli_writes_a_verified_manifest_and_rejects_bad_checkpoints() {
    let dir = scratch("fixture_cli");
    let reference = dir.join("ref.safetensors");
    fixture_reference(&reference, false);
    let out_dir = dir.join("model");
    let bin = env!("CARGO_BIN_EXE_vqtok-export");
    let out = std::process::Command::new(bin)
        .args(["export", "--weights"])
        .arg(taming_tiny("model.safetensors"))
        .arg("--config")
        .arg(taming_tiny("param.json"))
        .arg("--out")
        .arg(&out_dir)
        .arg("--reference")
        .arg(&reference)
        .output()
        .unwrap();
    assert_status(&out, 0);
    let m = Manifest::load(&out_dir).unwrap();
    m.check_files(&out_dir).unwrap();
    assert!(matches!(m.verification, Verification::Passed(_)));
    assert_eq!(m.family, "taming");
    assert_eq!(m.size_multiple, 4);
    assert_eq!(m.opset, 17);
    assert_eq!(m.levels[0].indices, "indices");
    assert_eq!(m.normalization.pixels.kind, "minus_one_one");
    for f in [
        "encoder.onnx",
        "decoder.onnx",
        "encoder_float.onnx",
        "decoder_float.onnx",
        "codebook.safetensors",
        "weights.safetensors",
        "param.json",
    ] {
        assert!(m.files.contains_key(f), "{f} missing from the manifest");
    }
    // The torch engine's weights: every model tensor of the checkpoint, bit for bit,
    // and nothing of the loss (discriminator, LPIPS); the config is the manifest's.
    let w = TensorFile::open(out_dir.join("weights.safetensors")).unwrap();
    let ck = TensorFile::open(taming_tiny("model.safetensors")).unwrap();
    let model_keys: Vec<&str> = ck
        .names()
        .into_iter()
        .filter(|n| !n.starts_with("loss."))
        .collect();
    assert_eq!(w.names(), model_keys);
    for k in model_keys {
        assert_eq!(w.f32(k).unwrap(), ck.f32(k).unwrap(), "{k}");
    }
    let param: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("param.json")).unwrap())
            .unwrap();
    assert_eq!(param, m.config);
    // The codebook file holds exactly the checkpoint's table.
    let cb = TensorFile::open(out_dir.join("codebook.safetensors")).unwrap();
    let ck = TensorFile::open(taming_tiny("model.safetensors")).unwrap();
    assert_eq!(
        cb.f32("quantize.embedding.weight").unwrap(),
        ck.f32("quantize.embedding.weight").unwrap()
    );
    // A tampered file is caught by the hashes.
    std::fs::write(out_dir.join("codebook.safetensors"), b"x").unwrap();
    let err = m.check_files(&out_dir).unwrap_err().to_string();
    assert!(err.contains("codebook.safetensors"), "{err}");

    // A folder that is not a training checkpoint: exit 2 naming it.
    let out = std::process::Command::new(bin)
        .args(["export", "--ckpt"])
        .arg(fixtures().join("taming_tiny"))
        .arg("--out")
        .arg(dir.join("y"))
        .output()
        .unwrap();
    assert_status(&out, 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a checkpoint"));

    // Missing config: exit 2 naming the file.
    let out = std::process::Command::new(bin)
        .args(["export", "--weights"])
        .arg(taming_tiny("model.safetensors"))
        .args(["--config", "/nonexistent/param.json", "--out"])
        .arg(dir.join("x"))
        .output()
        .unwrap();
    assert_status(&out, 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/param.json"));
}

#[test]
fn external_data_keeps_outputs_identical() {
    let inline = scratch("fixture_inline");
    let external = scratch("fixture_external");
    export_fixture(&inline, &ExportOptions::default());
    let m = export_fixture(
        &external,
        &ExportOptions {
            external_data_threshold: 10_000,
            ..ExportOptions::default()
        },
    );
    assert_eq!(
        m.graphs["encoder"].external_data.as_deref(),
        Some("encoder.onnx.data")
    );
    assert!(m.files.contains_key("decoder_float.onnx.data"));
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    assert!(size(&external.join("encoder.onnx")) < 100_000);
    assert!(size(&external.join("encoder.onnx.data")) > 1_000_000);

    let e = expected();
    for dir in [&inline, &external] {
        let outs = run(dir, GraphKind::DecoderFloat, &e.indices_input());
        let rec = f32_out(&outs, "images").1;
        let outs = run(dir, GraphKind::EncoderFloat, &e.x_input());
        assert_eq!(i64_out(&outs, "indices").1, e.indices.1);
        if dir == &external {
            let outs = run(&inline, GraphKind::DecoderFloat, &e.indices_input());
            assert_eq!(
                f32_out(&outs, "images").1,
                rec,
                "same weights must give the same bits"
            );
        }
    }

    // The reference checker and runtime accept the external-data layout too.
    let out = run_python(
        r#"
import sys, onnx, onnxruntime as ort, numpy as np
d = sys.argv[1]
for g in ["encoder", "decoder", "encoder_float", "decoder_float"]:
    onnx.checker.check_model(f"{d}/{g}.onnx", full_check=True)
s = ort.InferenceSession(f"{d}/decoder.onnx", providers=["CPUExecutionProvider"])
print(s.run(None, {"indices": np.zeros((1, 2, 3), np.int64)})[0].shape)
"#,
        &[&external],
    );
    assert_eq!(out.trim(), "(1, 8, 12, 3)");
}
