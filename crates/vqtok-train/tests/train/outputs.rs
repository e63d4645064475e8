//! What a run leaves behind is usable: TensorBoard reads its event files (scalars with
//! taming's keys and ours, image grids), metrics.jsonl has the same keys, and
//! `vqtok-train eval` prints the validation table for a checkpoint.

use std::process::Command;

use crate::support::{bin, config, run, write_config, write_video};
use serde_json::json;

#[test]
fn a_run_is_readable_by_tensorboard_and_evaluable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_video(&dir.join("train.mp4"), 32, 30, 1);
    write_video(&dir.join("val.mp4"), 32, 30, 2);
    let cfg = config(
        "taming_tiny.json",
        json!({
            "model_args": {"ddconfig": {"resolution": 32, "attn_resolutions": [8]},
                           "lossconfig": {"params": {"disc_start": 2}}},
            "train_args": {"num_steps": 6, "batch_size": 2, "log_every": 2, "image_every": 3, "val_every": 3,
                           "checkpoint_every": 3, "val_batches": 1, "device": "cpu"},
            "data_args": {"train": [dir.join("train.mp4").display().to_string()],
                          "val": [dir.join("val.mp4").display().to_string()],
                          "resolution": 32, "sequence_length": 2, "num_workers": 1}
        }),
    );
    let config = write_config(dir, &cfg);
    let run_dir = dir.join("run");
    let out = run(bin()
        .args(["--threads", "1", "train", "--quiet", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&run_dir));
    assert!(out.status.success());

    let script = r#"
import sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0, "images": 0})
acc.Reload()
tags = acc.Tags()
for t in sorted(tags["scalars"]):
    print("scalar", t, [e.step for e in acc.Scalars(t)])
for t in sorted(tags["images"]):
    print("image", t, [(e.step, e.width, e.height) for e in acc.Images(t)])
"#;
    let tb = Command::new(env!("VQTOK_PYTHON"))
        .arg("-c")
        .arg(script)
        .arg(run_dir.join("tensorboard"))
        .output()
        .unwrap();
    assert!(
        tb.status.success(),
        "{}",
        String::from_utf8_lossy(&tb.stderr)
    );
    let text = String::from_utf8_lossy(&tb.stdout);
    for key in [
        "train/total_loss",
        "train/quant_loss",
        "train/nll_loss",
        "train/rec_loss",
        "train/p_loss",
        "train/d_weight",
        "train/disc_factor",
        "train/g_loss",
        "train/disc_loss",
        "train/logits_real",
        "train/logits_fake",
        "train/lr",
        "train/codebook_usage",
        "train/perplexity",
        "train/dead_codes",
        "train/img_per_s",
        "train/data_wait_frac",
        "val/rec_loss",
        "val/psnr",
        "val/ssim",
        "val/lpips",
        "val/codebook_usage",
    ] {
        assert!(
            text.contains(&format!("scalar {key} ")),
            "{key} missing from TensorBoard:\n{text}"
        );
    }
    assert!(text.contains("scalar train/total_loss [2, 4, 6]"), "{text}");
    // 4 frames side by side (2 clips × 2 frames), inputs above reconstructions.
    assert!(
        text.contains("image train/reconstructions [(3, 128, 64), (6, 128, 64)]"),
        "{text}"
    );
    assert!(
        text.contains("image val/reconstructions [(3, 128, 64), (6, 128, 64)]"),
        "{text}"
    );

    let metrics = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    let last_train = metrics
        .lines()
        .rfind(|l| l.contains("train/total_loss"))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(last_train).unwrap();
    assert_eq!(v["step"], 6);
    assert!(v["train/img_per_s"].as_f64().unwrap() > 0.0);

    let out = run(bin()
        .args(["eval", "--device", "cpu", "--run"])
        .arg(&run_dir));
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("validation at step 6"), "{table}");
    for key in [
        "val/rec_loss",
        "val/psnr",
        "val/ssim",
        "val/lpips",
        "val/codebook_usage",
    ] {
        assert!(table.contains(key), "{key} missing from eval:\n{table}");
    }
    // The same numbers as the run's own final validation (same weights, same clips).
    let last_val: serde_json::Value =
        serde_json::from_str(metrics.lines().rfind(|l| l.contains("val/psnr")).unwrap()).unwrap();
    let psnr = format!("{:.6}", last_val["val/psnr"].as_f64().unwrap());
    assert!(
        table.contains(&psnr),
        "eval PSNR differs from the run's {psnr}:\n{table}"
    );

    // The taming loss needs LPIPS itself: without its weights, a clear error (exit 2).
    let out = bin()
        .env("VQTOK_LPIPS_WEIGHTS", dir.join("missing.safetensors"))
        .args(["eval", "--device", "cpu", "--run"])
        .arg(&run_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing.safetensors") && err.contains("setup"),
        "{err}"
    );
}

#[test]
fn without_lpips_weights_validation_says_what_it_left_out() {
    // A VQ-VAE without a perceptual loss trains without LPIPS; only the val/lpips metric
    // needs it, and its absence is reported, not silently dropped.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_video(&dir.join("v.mp4"), 32, 12, 1);
    let cfg = config(
        "vqvae_tiny.json",
        json!({
            "train_args": {"num_steps": 2, "log_every": 1, "val_every": 2, "checkpoint_every": 2,
                           "val_batches": 1, "device": "cpu"},
            "data_args": {"train": [dir.join("v.mp4").display().to_string()],
                          "val": [dir.join("v.mp4").display().to_string()],
                          "resolution": 32, "sequence_length": 2, "num_workers": 1}
        }),
    );
    let config = write_config(dir, &cfg);
    let run_dir = dir.join("run");
    let missing = dir.join("missing.safetensors");
    let out = run(bin()
        .env("VQTOK_LPIPS_WEIGHTS", &missing)
        .args(["--threads", "1", "train", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&run_dir));
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning: val/lpips not computed"), "{err}");
    assert!(err.contains("note: val/lpips not computed"), "{err}");
    let out = run(bin()
        .env("VQTOK_LPIPS_WEIGHTS", &missing)
        .args(["eval", "--device", "cpu", "--run"])
        .arg(&run_dir));
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        !table
            .lines()
            .any(|l| l.trim_start().starts_with("val/lpips")),
        "{table}"
    );
    assert!(
        table.contains("note: val/lpips not computed") && table.contains("missing.safetensors"),
        "{table}"
    );
}
