//! A tiny model trains 300 steps on a generated video on the CPU and its validation
//! PSNR rises by at least 3 dB — on the taming path (two optimizers, LPIPS, GAN from
//! step 100) and on the traditional path (VQ-VAE, single optimizer + discriminator).

mod train_common;

use std::sync::atomic::AtomicBool;

use serde_json::json;
use tch::Device;
use train_common::{config, write_video};
use vqtok_train::train::{TrainOptions, Trainer};

fn psnr_gain(name: &str, patch: serde_json::Value) -> (f64, f64) {
    tch::set_num_threads(1);
    let tmp = tempfile::tempdir().unwrap();
    let train = tmp.path().join("train.mp4");
    let val = tmp.path().join("val.mp4");
    write_video(&train, 32, 40, 1);
    write_video(&val, 32, 40, 2);
    let mut patch = patch;
    let common = json!({
        "train_args": {"num_steps": 300, "batch_size": 2, "log_every": 50, "val_every": 300,
                       "checkpoint_every": 300, "val_batches": 4, "device": "cpu"},
        "data_args": {"train": [train.display().to_string()], "val": [val.display().to_string()],
                      "resolution": 32, "sequence_length": 2, "frame_stride": 1, "num_workers": 1}
    });
    merge(&mut patch, common);
    let cfg = config(name, patch);
    let opts = TrainOptions {
        run_dir: tmp.path().join("run"),
        resume: None,
        device: Device::Cpu,
        quiet: true,
    };
    let mut trainer = Trainer::new(cfg, opts).unwrap();
    let before = trainer.validate().unwrap().get("val/psnr").unwrap();
    let summary = trainer.run(&AtomicBool::new(false)).unwrap();
    assert_eq!(summary.step, 300);
    let after = summary
        .last_validation
        .unwrap()
        .iter()
        .find(|(k, _)| k == "val/psnr")
        .unwrap()
        .1;
    (before, after)
}

fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    if let (Some(a), serde_json::Value::Object(b)) = (a.as_object_mut(), b) {
        for (k, v) in b {
            match a.get_mut(&k) {
                Some(existing) if existing.is_object() => merge(existing, v),
                _ => {
                    a.insert(k, v);
                }
            }
        }
    }
}

#[test]
fn taming_path_improves_validation_psnr_by_3db() {
    let patch = json!({"model_args": {"ddconfig": {"resolution": 32, "attn_resolutions": [8]}}});
    let (before, after) = psnr_gain("taming_tiny.json", patch);
    eprintln!("taming: val PSNR {before:.2} → {after:.2} dB");
    assert!(
        after - before >= 3.0,
        "val PSNR {before:.2} → {after:.2} dB"
    );
}

#[test]
fn traditional_path_improves_validation_psnr_by_3db() {
    let (before, after) = psnr_gain("vqvae_tiny.json", json!({}));
    eprintln!("vqvae: val PSNR {before:.2} → {after:.2} dB");
    assert!(
        after - before >= 3.0,
        "val PSNR {before:.2} → {after:.2} dB"
    );
}
