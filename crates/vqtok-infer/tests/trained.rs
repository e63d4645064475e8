//! The whole pipeline on a model that learned something: generated videos → `vqtok-train`
//! (taming dual-optimizer path, 100 CPU steps) → export + verification against the tch
//! model → `vqtokenize` encode → decode, with a PSNR floor; plus refusal of the trained
//! model's tokens by an untrained model.
//!
//! vqtok-train is a binary of another package (and links libtorch, which this crate
//! must not): the test builds it with cargo, a no-op under `cargo test --workspace`,
//! which has already built it for vqtok-train's own tests.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use vqtok_export::{Checkpoint, ExportOptions, RandomWeights, VerifyOptions, export, verify};
use vqtok_video::{VideoReader, VideoWriter, WriterOptions};

/// Builds vqtok-train in this test binary's profile and returns its path.
fn vqtok_train() -> PathBuf {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_vqtokenize"))
        .parent()
        .unwrap()
        .to_path_buf();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "vqtok-train",
        "--bin",
        "vqtok-train",
    ])
    .current_dir(workspace_root());
    if bin_dir.ends_with("release") {
        cmd.arg("--release");
    }
    let out = cmd.output().expect("cannot run cargo");
    assert_status(&out, 0);
    bin_dir.join("vqtok-train")
}

/// `n` pattern frames of `w × h` at 10 fps starting at pattern frame `offset`.
fn write_clip(path: &Path, n: usize, w: usize, h: usize, offset: usize) {
    let opts = WriterOptions {
        fps: 10.0,
        crf: 10,
        ..WriterOptions::default()
    };
    let mut writer = VideoWriter::create(path, w, h, &opts).unwrap();
    for i in 0..n {
        writer.write(&pattern(i + offset, w, h)).unwrap();
    }
    writer.finish().unwrap();
}

/// configs/taming_tiny.json at 32² (attention at 8²), 100 steps, no LPIPS and no GAN
/// yet (both are exercised by vqtok-train's own tests; here they would only cost time).
fn param_json(dir: &Path, train: &Path, val: &Path) -> PathBuf {
    let base =
        vqtok_config::Config::from_path(workspace_root().join("configs/taming_tiny.json")).unwrap();
    let mut json = base.to_json();
    let dd = &mut json["model_args"]["ddconfig"];
    dd["resolution"] = 32.into();
    dd["attn_resolutions"] = serde_json::json!([8]);
    let loss = &mut json["model_args"]["lossconfig"]["params"];
    loss["perceptual_weight"] = 0.0.into();
    loss["disc_start"] = 100_000.into();
    let t = &mut json["train_args"];
    for (k, v) in [
        ("num_steps", 100),
        ("val_every", 100),
        ("checkpoint_every", 100),
        ("log_every", 50),
    ] {
        t[k] = v.into();
    }
    let d = &mut json["data_args"];
    d["train"] = serde_json::json!([train]);
    d["val"] = serde_json::json!([val]);
    d["resolution"] = 32.into();
    d["sequence_length"] = 2.into();
    d["num_workers"] = 1.into();
    let path = dir.join("param.json");
    vqtok_config::Config::parse(&json.to_string()).expect("patched config is valid");
    std::fs::write(&path, json.to_string()).unwrap();
    path
}

fn psnr_of(model: &Path, video: &Path, dir: &Path, name: &str) -> (f64, PathBuf) {
    let tokens = dir.join(format!("{name}.vqt.safetensors"));
    let out = vqtokenize(&[&video, &"-m", &model, &"-o", &tokens, &"-q"]);
    assert_status(&out, 0);
    let recon = dir.join(format!("{name}.mp4"));
    let out = vqtokenize(&[
        &"decode", &tokens, &"-m", &model, &"-o", &recon, &"--psnr", &"--json", &"-q",
    ]);
    assert_status(&out, 0);
    let summary = stdout_json(&out);
    let reader = VideoReader::open(&recon).unwrap();
    assert_eq!((reader.meta().width, reader.meta().height), (32, 32));
    assert_eq!(reader.meta().frame_count, 20);
    (summary["psnr_db"].as_f64().unwrap(), tokens)
}

#[test]
fn trained_tiny_model_tokenizes_and_reconstructs_above_a_psnr_floor() {
    let dir = scratch("trained");
    let data = dir.join("train");
    std::fs::create_dir_all(&data).unwrap();
    write_clip(&data.join("a.mp4"), 30, 64, 48, 0);
    write_clip(&data.join("b.mp4"), 30, 48, 64, 7);
    let val = dir.join("val.mp4");
    write_clip(&val, 20, 64, 48, 40);
    let param = param_json(&dir, &data, &val);

    // One libtorch thread: on a shared 2-core machine two OpenMP threads are ~10× slower.
    let train = vqtok_train();
    let run = dir.join("run");
    let out = Command::new(&train)
        .args(["--threads", "1", "train", "--quiet", "--config"])
        .arg(&param)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert_status(&out, 0);
    let ckpt = run.join("checkpoints/latest");
    let reference = dir.join("reference.safetensors");
    let out = Command::new(&train)
        .args(["--threads", "1", "reference", "--ckpt"])
        .arg(&ckpt)
        .arg("--out")
        .arg(&reference)
        .output()
        .unwrap();
    assert_status(&out, 0);

    // Export and verify against the tch model (token agreement, decoder error, ΔPSNR).
    let model = dir.join("model");
    let mut checkpoint = Checkpoint::open_dir(&ckpt).unwrap();
    export(
        &checkpoint.config,
        &mut checkpoint.weights,
        &model,
        &ExportOptions::default(),
    )
    .unwrap();
    let report = verify(&model, &reference, &VerifyOptions::default()).unwrap();
    assert!(report.passed, "{}", report.summary());

    let (psnr, tokens) = psnr_of(&model, &val, &dir, "trained");
    // The same architecture untrained, for scale.
    let untrained = dir.join("untrained");
    let mut random = RandomWeights::new(1);
    export(
        &checkpoint.config,
        &mut random,
        &untrained,
        &ExportOptions::default(),
    )
    .unwrap();
    let (psnr_random, _) = psnr_of(&untrained, &val, &dir, "untrained");
    eprintln!("held-out clip: PSNR {psnr:.2} dB trained, {psnr_random:.2} dB untrained");
    // 100 steps reach ~20 dB on this clip (the trainer's val PSNR agrees); the floor
    // leaves room for other CPUs' float rounding in training.
    assert!(psnr >= 17.0, "trained model: PSNR {psnr:.2} dB < 17 dB");
    assert!(
        psnr >= psnr_random + 5.0,
        "{psnr:.2} vs untrained {psnr_random:.2} dB"
    );

    // The untrained model refuses the trained model's tokens.
    let out = vqtokenize(&[
        &"decode",
        &tokens,
        &"-m",
        &untrained,
        &"-o",
        &dir.join("x.mp4"),
    ]);
    assert_status(&out, 2);
    assert!(stderr(&out).contains("made by model"), "{}", stderr(&out));
}
