//! Every model family from random weights: shapes, dynamic sizes, u8 vs float
//! graphs, checkpoint checks, and the reference onnx checker / onnxruntime.

use std::path::{Path, PathBuf};

use crate::common::*;
use vqtok_config::Config;
use vqtok_core::exit::Blame;
use vqtok_export::{
    CheckpointWeights, ExportError, ExportOptions, RandomWeights, WeightSource, export,
};
use vqtok_runtime::{GraphKind, Input, Manifest};

fn export_random(config: &Config, dir: &Path, seed: u64, float_variants: bool) -> Manifest {
    let mut w = RandomWeights::new(seed).with_jittered_norms();
    export(
        config,
        &mut w,
        dir,
        &ExportOptions {
            float_variants,
            ..ExportOptions::default()
        },
    )
    .unwrap()
}

/// Encodes `frames` with both encoders, decodes with both decoders, and checks that
/// the u8 and float graphs agree and the outputs have the manifest's shapes.
fn round_trip(dir: &Path, m: &Manifest, n: usize, h: usize, w: usize) {
    let frames = smooth_frames(n, h, w, 3);
    let outs = run(
        dir,
        GraphKind::Encoder,
        &[("frames", Input::U8(vec![n, h, w, 3], &frames))],
    );
    let images = normalize_like_graph(m, [n, h, w, 3], &frames);
    let outs_f = run(
        dir,
        GraphKind::EncoderFloat,
        &[("images", Input::F32(vec![n, 3, h, w], &images))],
    );
    let mut grids = Vec::new();
    for l in &m.levels {
        let (shape, idx) = i64_out(&outs, &l.indices);
        assert_eq!(shape, vec![n, h / l.factor, w / l.factor], "{}", l.indices);
        assert!(
            idx.iter()
                .all(|&i| (0..l.codebook_size as i64).contains(&i))
        );
        assert_eq!(
            i64_out(&outs_f, &l.indices).1,
            idx,
            "u8 vs float encoder, {}",
            l.indices
        );
        grids.push((shape, idx));
    }
    let inputs: Vec<(&str, Input<'_>)> = m
        .levels
        .iter()
        .zip(&grids)
        .map(|(l, (s, d))| (l.indices.as_str(), Input::I64(s.clone(), d)))
        .collect();
    let (shape, pixels) = u8_out(&run(dir, GraphKind::Decoder, &inputs), "frames");
    assert_eq!(shape, vec![n, h, w, 3]);
    let (shape_f, recon) = f32_out(&run(dir, GraphKind::DecoderFloat, &inputs), "images");
    assert_eq!(shape_f, vec![n, 3, h, w]);
    assert!(recon.iter().all(|v| v.is_finite()));
    let spread = recon.iter().fold(f32::MIN, |a, &b| a.max(b))
        - recon.iter().fold(f32::MAX, |a, &b| a.min(b));
    assert!(
        spread > 1e-3,
        "a constant reconstruction means a dead decoder"
    );
    let p = &m.normalization.pixels;
    for (i, &got) in pixels.iter().enumerate() {
        let (c, rest) = (i % 3, i / 3);
        let (x, rest) = (rest % w, rest / w);
        let (y, b) = (rest % h, rest / h);
        let v = p.to_pixel_scale(c, recon[((b * 3 + c) * h + y) * w + x] as f64);
        // Same graph math in f32; only an f32 rounding difference at .5 may differ by 1.
        let want = to_u8(v);
        assert!(
            got == want || ((v - v.floor() - 0.5).abs() < 1e-3 && got.abs_diff(want) == 1),
            "pixel {i}: u8 graph {got}, float graph {v}"
        );
    }
}

/// `config` exported from random weights `seed`, float graphs included, into the scratch
/// folder `name`: the folder and its manifest.
fn export_to_scratch(config: &Config, name: &str, seed: u64) -> (PathBuf, Manifest) {
    let dir = scratch(name);
    let m = export_random(config, &dir, seed, true);
    (dir, m)
}

#[test]
fn vqvae_graphs_agree_and_keep_their_shapes() {
    let (dir, m) = export_to_scratch(&repo_config("vqvae_tiny.json"), "vqvae_tiny", 11);
    assert_eq!((m.family.as_str(), m.size_multiple), ("vqvae", 4));
    round_trip(&dir, &m, 2, 64, 64);
    round_trip(&dir, &m, 1, 20, 36);
}

#[test]
fn vqvae2_has_two_grids_in_one_encoder_and_one_decoder() {
    let (dir, m) = export_to_scratch(&repo_config("vqvae2_tiny.json"), "vqvae2_tiny", 12);
    let names: Vec<_> = m
        .levels
        .iter()
        .map(|l| (l.indices.as_str(), l.factor))
        .collect();
    assert_eq!(names, [("indices_t", 8), ("indices_b", 4)]);
    assert_eq!(m.graphs["encoder"].outputs.len(), 2);
    assert_eq!(m.graphs["decoder"].inputs.len(), 2);
    round_trip(&dir, &m, 2, 64, 64);
    round_trip(&dir, &m, 3, 24, 40);
}

#[test]
fn emavq_exports_like_vqmodel_and_mean_std_normalisation_round_trips() {
    let (dir, m) = export_to_scratch(&emavq_mean_std_config(), "emavq_tiny", 13);
    assert_eq!(m.model_type, "emavq");
    assert_eq!(m.normalization.pixels.kind, "mean_std");
    round_trip(&dir, &m, 2, 32, 48);
}

#[test]
fn seed_config_exports_with_sensible_sizes_and_dynamic_shapes() {
    let config = repo_config("taming_vqgan_f16_1024.json");
    let dir = scratch("seed_random");
    let m = export_random(&config, &dir, 5, false);
    // Parameter counts from spec §2.5: encoder 29,298,176 + quant_conv 65,792 + the
    // distance tables (1024×256 + 1024); decoder 42,449,795 + post_quant_conv 65,792
    // + the 1024×256 codebook. 4 bytes each, plus < 1 MB of graph structure.
    for (file, params) in [
        ("encoder.onnx", 29_627_136u64),
        ("decoder.onnx", 42_777_731),
    ] {
        let bytes = m.files[file].bytes;
        assert!(
            bytes >= 4 * params && bytes < 4 * params + 1_000_000,
            "{file}: {bytes} bytes for {params} parameters"
        );
    }
    assert_eq!(m.size_multiple, 16);
    assert!(!m.graphs.contains_key("encoder_float"));

    let (n, h, w) = (3, 192, 320);
    let frames = smooth_frames(n, h, w, 9);
    let (shape, idx) = i64_out(
        &run(
            &dir,
            GraphKind::Encoder,
            &[("frames", Input::U8(vec![n, h, w, 3], &frames))],
        ),
        "indices",
    );
    assert_eq!(shape, vec![3, 12, 20]);
    assert!(idx.iter().all(|&i| (0..1024).contains(&i)));
    let (shape, _) = u8_out(
        &run(
            &dir,
            GraphKind::Decoder,
            &[("indices", Input::I64(shape, &idx))],
        ),
        "frames",
    );
    assert_eq!(shape, vec![3, 192, 320, 3]);
    assert!(m.check_frame_size(192, 320).is_ok());
    let err = m.check_frame_size(200, 320).unwrap_err();
    assert!(err.contains("multiples of 16"), "{err}");
}

#[test]
fn checkpoint_weights_are_checked_by_name_and_shape() {
    let config = repo_config("vqvae_tiny.json");
    let dir = scratch("vqvae_ckpt");
    let export_to = |weights: &mut dyn WeightSource, sub: &str| {
        export(&config, weights, &dir.join(sub), &ExportOptions::default())
    };
    let mut random = RandomWeights::new(21);
    let m_random = export_to(&mut random, "a").unwrap();
    random.save(&dir.join("model.safetensors")).unwrap();
    let mut ckpt = CheckpointWeights::open(dir.join("model.safetensors")).unwrap();
    let m_ckpt = export_to(&mut ckpt, "b").unwrap();
    // Export is deterministic and the checkpoint path reads back exactly what was saved.
    assert_eq!(m_random.files, m_ckpt.files);
    assert!(ckpt.unused().is_empty());

    // Remove one tensor / reshape another and export again.
    let file = vqtok_export::TensorFile::open(dir.join("model.safetensors")).unwrap();
    let mut tensors = Vec::new();
    for name in file.names() {
        let (shape, data) = file.f32(name).unwrap();
        tensors.push((name.to_string(), shape, data));
    }
    let write = |path: &Path, skip: &str, reshape: &str| {
        let t: Vec<_> = tensors
            .iter()
            .filter(|(n, _, _)| n != skip)
            .map(|(n, s, d)| {
                let s = if n == reshape {
                    vec![d.len()]
                } else {
                    s.clone()
                };
                (n.clone(), vqtok_export::RawTensor::from_f32(&s, d))
            })
            .collect();
        vqtok_export::write_tensors(path, &t).unwrap();
    };
    let missing = dir.join("missing.safetensors");
    write(&missing, "decoder.up.1.weight", "");
    let mut w = CheckpointWeights::open(&missing).unwrap();
    let err = export_to(&mut w, "c").unwrap_err();
    assert!(
        matches!(err, ExportError::MissingWeight { ref name, .. } if name == "decoder.up.1.weight")
    );
    assert!(err.is_user_error());
    assert!(err.to_string().contains("missing.safetensors"), "{err}");

    let reshaped = dir.join("reshaped.safetensors");
    write(&reshaped, "", "quant_conv.weight");
    let mut w = CheckpointWeights::open(&reshaped).unwrap();
    let err = export_to(&mut w, "d").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("quant_conv.weight") && msg.contains("[256]") && msg.contains("[8, 32, 1, 1]"),
        "{msg}"
    );
}

#[test]
fn onnx_checker_and_python_onnxruntime_accept_every_graph() {
    let root = scratch("python_checks");
    let fixture = root.join("taming_tiny");
    let mut ckpt = vqtok_export::ModelSource::files(
        &taming_tiny("model.safetensors"),
        &taming_tiny("param.json"),
    )
    .unwrap();
    export(
        &ckpt.config,
        &mut ckpt.weights,
        &fixture,
        &ExportOptions::default(),
    )
    .unwrap();
    for (seed, name) in [(1, "vqvae"), (2, "vqvae2"), (3, "emavq")] {
        let config = repo_config(&format!("{name}_tiny.json"));
        export_random(&config, &root.join(name), seed, true);
    }

    // For every graph: full check, then run it at 2×(2f)×(3f) with inputs built from
    // the manifest, and print the output shapes.
    let out = run_python(
        r#"
import json, sys, onnx, onnxruntime as ort, numpy as np
rng = np.random.default_rng(0)
for d in sys.argv[1:]:
    m = json.load(open(f"{d}/manifest.json"))
    f = m["size_multiple"]
    H, W = 2 * f, 3 * f
    for key, g in sorted(m["graphs"].items()):
        path = f"{d}/{g['file']}"
        onnx.checker.check_model(path, full_check=True)
        model = onnx.load(path)
        assert model.opset_import[0].version == 17, model.opset_import
        assert not [n for n in model.graph.node if n.op_type == "GroupNormalization"]
        s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        feeds = {}
        for i in g["inputs"]:
            if i["dtype"] == "uint8":
                feeds[i["name"]] = rng.integers(0, 256, (2, H, W, 3), dtype=np.uint8)
            elif i["dtype"] == "float32":
                feeds[i["name"]] = rng.uniform(-1, 1, (2, 3, H, W)).astype(np.float32)
            else:
                lvl = next(l for l in m["levels"] if l["indices"] == i["name"])
                k, fl = lvl["codebook_size"], lvl["factor"]
                feeds[i["name"]] = rng.integers(0, k, (2, H // fl, W // fl), dtype=np.int64)
        outs = s.run(None, feeds)
        for o in outs:
            assert np.all(np.isfinite(o.astype(np.float64)))
        print(d.rsplit("/", 1)[1], key, " ".join("x".join(map(str, o.shape)) for o in outs))
"#,
        &[
            &fixture,
            &root.join("vqvae"),
            &root.join("vqvae2"),
            &root.join("emavq"),
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    let expected = [
        "taming_tiny decoder 2x8x12x3",
        "taming_tiny decoder_float 2x3x8x12",
        "taming_tiny encoder 2x2x3",
        "taming_tiny encoder_float 2x2x3",
        "vqvae decoder 2x8x12x3",
        "vqvae decoder_float 2x3x8x12",
        "vqvae encoder 2x2x3",
        "vqvae encoder_float 2x2x3",
        "vqvae2 decoder 2x16x24x3",
        "vqvae2 decoder_float 2x3x16x24",
        "vqvae2 encoder 2x2x3 2x4x6",
        "vqvae2 encoder_float 2x2x3 2x4x6",
        "emavq decoder 2x8x12x3",
        "emavq decoder_float 2x3x8x12",
        "emavq encoder 2x2x3",
        "emavq encoder_float 2x2x3",
    ];
    assert_eq!(lines, expected);
}
