//! The whole pipeline as a user runs it, binary by binary, on a model that learned
//! something: generated videos → `vqtok-train train` (taming's two optimizers) →
//! `vqtok-train reference` → `vqtok-export export --reference` (export + verification
//! against the tch model) → `vqtokenize` → `vqtokenize decode --psnr --compare`, with a
//! PSNR floor; plus refusal of the trained model's tokens by an untrained model.
//! And the path of a model trained elsewhere: a taming Lightning checkpoint →
//! `cargo xtask import-taming` → `cargo xtask export --weights --config` → `vqtokenize`.
//!
//! The binaries belong to other packages (vqtok-train links libtorch), so the test builds
//! them with cargo in its own profile: a no-op under `cargo test --workspace`, which has
//! built them already.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vqtok_export::{ExportOptions, RandomWeights, export};
use vqtok_testkit::process::{assert_status, build_bins};
use vqtok_testkit::video::{WriterOptions, ripple, write};
use vqtok_testkit::workspace_root;
use vqtok_video::{VideoReader, load_image};

/// A fresh, empty scratch folder.
fn scratch(name: &str) -> PathBuf {
    vqtok_testkit::fresh_dir(Path::new(env!("CARGO_TARGET_TMPDIR")).join(name))
}

/// Builds the pipeline's binaries in this test's profile; returns their folder.
fn binaries() -> PathBuf {
    build_bins(
        &[
            ("vqtok-train", "vqtok-train"),
            ("vqtok-export", "vqtok-export"),
            ("vqtok-infer", "vqtokenize"),
        ],
        &[],
    )
}

/// `n` pattern frames of `w × h` at 10 fps starting at pattern frame `offset`.
fn write_clip(path: &Path, n: usize, w: usize, h: usize, offset: usize) {
    let opts = WriterOptions {
        fps: 10.0,
        crf: 10,
        ..WriterOptions::default()
    };
    write(path, n, (w, h), &opts, |i| ripple(i + offset, w, h));
}

/// configs/taming_tiny.json at 32² (attention at 8²), 100 steps, no LPIPS and no GAN
/// yet (vqtok-train's own tests exercise both; here they would only cost time).
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
    vqtok_config::Config::parse(&json.to_string()).expect("patched config is valid");
    let path = dir.join("param.json");
    std::fs::write(&path, json.to_string()).unwrap();
    path
}

/// Runs `vqtok-train --threads 1 COMMAND… INPUT --out OUT` and asserts that it succeeds.
fn vqtok_train(bins: &Path, command: &[&str], input: &Path, out: &Path) {
    let output = Command::new(bins.join("vqtok-train"))
        .args(["--threads", "1"])
        .args(command)
        .arg(input)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert_status(&output, 0);
}

/// Asserts that the manifest of the model folder `model` records a passed verification.
/// The manifest records a passed verification whose notes say what it ran on.
fn assert_verified(model: &Path, frames_note: &str) {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("manifest.json")).unwrap()).unwrap();
    let verification = &manifest["verification"];
    assert_eq!(verification["status"], "passed");
    let notes = verification["notes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        notes
            .iter()
            .any(|n| n.as_str().is_some_and(|n| n.contains(frames_note))),
        "no note with `{frames_note}` in {verification}"
    );
}

struct Tokenized {
    psnr: f64,
    tokens: PathBuf,
    compare: PathBuf,
}

/// Tokenizes `video` with `model` and decodes it back with `--psnr --compare`.
fn round_trip(bins: &Path, model: &Path, video: &Path, dir: &Path, name: &str) -> Tokenized {
    let vqtokenize = bins.join("vqtokenize");
    let tokens = dir.join(format!("{name}.vqt.safetensors"));
    let out = Command::new(&vqtokenize)
        .arg(video)
        .arg("-m")
        .arg(model)
        .arg("-o")
        .arg(&tokens)
        .arg("-q")
        .output()
        .unwrap();
    assert_status(&out, 0);
    let recon = dir.join(format!("{name}.mp4"));
    let compare = dir.join(format!("{name}.png"));
    let out = Command::new(&vqtokenize)
        .arg("decode")
        .arg(&tokens)
        .arg("-m")
        .arg(model)
        .arg("-o")
        .arg(&recon)
        .args(["--psnr", "--json", "-q", "--compare"])
        .arg(&compare)
        .output()
        .unwrap();
    assert_status(&out, 0);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reader = VideoReader::open(&recon).unwrap();
    assert_eq!((reader.meta().width, reader.meta().height), (32, 32));
    assert_eq!(reader.meta().frame_count, 20);
    assert_eq!(summary["comparison"], serde_json::json!(compare));
    Tokenized {
        psnr: summary["psnr_db"].as_f64().unwrap(),
        tokens,
        compare,
    }
}

#[test]
fn trained_tiny_model_tokenizes_and_reconstructs_above_a_psnr_floor() {
    let bins = binaries();
    let dir = scratch("pipeline");
    let data = dir.join("train");
    std::fs::create_dir_all(&data).unwrap();
    write_clip(&data.join("a.mp4"), 30, 64, 48, 0);
    write_clip(&data.join("b.mp4"), 30, 48, 64, 7);
    let val = dir.join("val.mp4");
    write_clip(&val, 20, 64, 48, 40);
    let param = param_json(&dir, &data, &val);

    let run = dir.join("run");
    vqtok_train(&bins, &["train", "--quiet", "--config"], &param, &run);
    let ckpt = run.join("checkpoints/latest");
    let reference = dir.join("reference.safetensors");
    vqtok_train(&bins, &["reference", "--ckpt"], &ckpt, &reference);

    // Export, verified against the tch model (token agreement, decoder error, ΔPSNR).
    let model = dir.join("model");
    let out = Command::new(bins.join("vqtok-export"))
        .arg("export")
        .arg("--ckpt")
        .arg(&ckpt)
        .arg("--out")
        .arg(&model)
        .arg("--reference")
        .arg(&reference)
        .output()
        .unwrap();
    assert_status(&out, 0);
    assert_verified(&model, "held-out frames and");

    let trained = round_trip(&bins, &model, &val, &dir, "trained");
    // The comparison picture: 4 frames of 32² enlarged ×6 (to ≥ 192 px), two rows.
    let picture = load_image(&trained.compare, 4096).unwrap();
    assert_eq!(
        (picture.width, picture.height),
        (4 * 192 + 5 * 4, 2 * 192 + 3 * 4)
    );

    // The same architecture untrained, for scale.
    let untrained = dir.join("untrained");
    let cfg = vqtok_config::Config::from_path(ckpt.join("param.json")).unwrap();
    export(
        &cfg,
        &mut RandomWeights::new(1),
        &untrained,
        &ExportOptions::default(),
    )
    .unwrap();
    let random = round_trip(&bins, &untrained, &val, &dir, "untrained");
    eprintln!(
        "held-out clip: PSNR {:.2} dB trained, {:.2} dB untrained",
        trained.psnr, random.psnr
    );
    // 100 steps reach ~20 dB on this clip; the floor leaves room for other CPUs' float
    // rounding in training.
    assert!(
        trained.psnr >= 17.0,
        "trained model: PSNR {:.2} dB < 17 dB",
        trained.psnr
    );
    assert!(
        trained.psnr >= random.psnr + 5.0,
        "{:.2} vs untrained {:.2} dB",
        trained.psnr,
        random.psnr
    );

    // The untrained model refuses the trained model's tokens.
    let out = Command::new(bins.join("vqtokenize"))
        .arg("decode")
        .arg(&trained.tokens)
        .arg("-m")
        .arg(&untrained)
        .arg("-o")
        .arg(dir.join("x.mp4"))
        .output()
        .unwrap();
    assert_status(&out, 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("made by model"), "{err}");
}

/// Runs `cargo xtask ARGS` from the workspace root.
fn xtask(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO"))
        .args(["run", "--quiet", "-p", "xtask", "--"])
        .args(args.iter().map(|a| a.as_ref()))
        .current_dir(workspace_root())
        .output()
        .expect("cannot run cargo")
}

#[test]
fn an_imported_taming_checkpoint_exports_and_tokenizes() {
    let bins = binaries();
    let dir = scratch("imported");
    let fixture = workspace_root().join("tests/fixtures/taming_tiny");
    // A Lightning-shaped checkpoint of the original code: the fixture's weights under
    // `state_dict`, LPIPS included, as taming's training script saves them.
    let ckpt = dir.join("last.ckpt");
    let python = std::env::var_os("VQTOK_PYTHON").expect("set by .cargo/config.toml");
    let make = Command::new(python)
        .arg("-c")
        .arg(
            "import sys, torch\n\
             from safetensors.torch import load_file\n\
             sd = load_file(sys.argv[1])\n\
             sd['loss.perceptual_loss.lin0.model.1.weight'] = torch.zeros(1, 64, 1, 1)\n\
             torch.save({'global_step': 5, 'state_dict': sd}, sys.argv[2])",
        )
        .arg(fixture.join("model.safetensors"))
        .arg(&ckpt)
        .output()
        .unwrap();
    assert_status(&make, 0);

    let weights = dir.join("imported.safetensors");
    assert_status(
        &xtask(&[&"import-taming", &"--ckpt", &ckpt, &"--out", &weights]),
        0,
    );
    let model = dir.join("model");
    let config = fixture.join("param.json");
    let out = xtask(&[
        &"export",
        &"--weights",
        &weights,
        &"--config",
        &config,
        &"--out",
        &model,
    ]);
    assert_status(&out, 0);
    assert_verified(&model, "random noise only");

    let video = dir.join("clip.mp4");
    write_clip(&video, 20, 64, 48, 3);
    let tokens = round_trip(&bins, &model, &video, &dir, "imported");
    // The fixture's weights never saw this clip: the point is that every step runs on an
    // imported model and the tokens decode back at the model's size.
    assert!(tokens.psnr.is_finite());
    let meta = Command::new(bins.join("vqtokenize"))
        .arg("info")
        .arg(&tokens.tokens)
        .arg("--json")
        .output()
        .unwrap();
    assert_status(&meta, 0);
}
