//! Nothing lost, nothing poisoned: a NaN batch changes nothing (the run equals one that
//! skipped the batch without a forward), a non-finite weight is never checkpointed, and
//! a run whose held-out split is empty (a folder of one video) trains to the end without
//! validation instead of dying at the first one. Faults come from vqtok-train's
//! failpoints (FAILPOINTS, see src/train/failpoints.rs).

use std::path::PathBuf;

use serde_json::json;

use crate::resume::{
    N, Setup, assert_same_checkpoint, ckpt, setup, taming_path, traditional_path, train,
};
use crate::support::{bin, config, run, write_config, write_video};

/// Trains `s` to the end with `FAILPOINTS=failpoints`; returns stderr.
fn train_with_failpoints(s: &Setup, run_dir: &str, failpoints: &str) -> String {
    let out = run(train(s, run_dir, &[]).env("FAILPOINTS", failpoints));
    assert!(out.status.success(), "{run_dir} failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A NaN batch at step 3 (after the discriminator started, with the EMA codebook and
/// BatchNorm statistics in play) leaves checkpoint 2N bit-identical to a run that
/// skipped batch 3 without a forward: nothing the NaN forward touched survives.
fn nan_batch_changes_nothing((name, extra): (&str, serde_json::Value)) {
    let s = setup(name, extra);
    let stderr = train_with_failpoints(&s, "nan", "train-nan-batch=return(3)");
    assert!(
        stderr.contains("step 3: non-finite loss, step skipped"),
        "{stderr}"
    );
    train_with_failpoints(&s, "skip", "train-skip-batch=return(3)");
    assert_same_checkpoint(&ckpt(&s, "skip", 2 * N), &ckpt(&s, "nan", 2 * N));
}

// EMAVQ on the taming path: the EMA codebook and the discriminator's statistics.
vqtok_testkit::test_cases! { nan_batch_changes_nothing;
    a_nan_batch_changes_nothing_on_the_taming_path: (taming_path("emavq_tiny.json"));
    a_nan_batch_changes_nothing_on_the_traditional_path: (traditional_path());
}

#[test]
fn a_non_finite_weight_is_never_checkpointed() {
    let s = setup(
        "vqvae_tiny.json",
        json!({"train_args": {"checkpoint_every": 1}}),
    );
    let out = run(train(&s, "run", &[]).env("FAILPOINTS", "train-poison-weights=return(2)"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("step 3: `") && stderr.contains("holds a non-finite value"),
        "{stderr}"
    );
    let ckpts = s.dir.join("run/checkpoints");
    assert_eq!(
        std::fs::read_link(ckpts.join("latest")).unwrap(),
        PathBuf::from("step_0000002"),
        "the last good checkpoint stays latest"
    );
    assert!(!ckpt(&s, "run", 3).exists());
    for (name, t) in tch::Tensor::read_safetensors(ckpts.join("latest/model.safetensors")).unwrap()
    {
        assert_eq!(
            t.isfinite().all().int64_value(&[]),
            1,
            "{name} is not finite"
        );
    }
}

#[test]
fn a_folder_of_one_video_trains_to_the_end_without_validation() {
    let tmp = tempfile::tempdir().unwrap();
    let videos = tmp.path().join("videos");
    std::fs::create_dir_all(&videos).unwrap();
    write_video(&videos.join("only.mp4"), 32, 30, 1);
    let cfg = config(
        "vqvae_tiny.json",
        json!({
            "train_args": {"num_steps": 4, "batch_size": 2, "val_every": 2, "checkpoint_every": 2,
                           "device": "cpu"},
            "data_args": {"train": [videos.display().to_string()], "val": [],
                          "resolution": 32, "sequence_length": 2, "num_workers": 1}
        }),
    );
    let config = write_config(tmp.path(), &cfg);
    let out = run(bin()
        .args(["--threads", "1", "train", "--quiet", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(tmp.path().join("run")));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("without validation") && stderr.contains("only.mp4"),
        "the warning names the cause: {stderr}"
    );
    assert!(tmp.path().join("run/checkpoints/step_0000004").is_dir());
}

/// The metrics logged after a resume equal an uninterrupted run's, also when the run
/// stopped in the middle of a log interval: the interval's codebook usage and
/// perplexity are part of the checkpoint.
#[test]
fn codebook_statistics_resume_in_the_middle_of_a_log_interval() {
    let s = setup(
        "vqvae_tiny.json",
        json!({"train_args": {"num_steps": 12, "log_every": 4, "checkpoint_every": 100}}),
    );
    assert!(run(&mut train(&s, "straight", &[])).status.success());
    let out = run(train(&s, "stopped", &[]).env("FAILPOINTS", "train-interrupt=return(4)"));
    assert!(out.status.success());
    assert!(ckpt(&s, "stopped", 5).is_dir(), "interrupted after step 5");
    assert!(
        run(&mut train(&s, "stopped", &["--resume"]))
            .status
            .success()
    );
    let logged = |run_dir: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(s.dir.join(run_dir).join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let (straight, resumed) = (logged("straight"), logged("stopped"));
    for step in [8, 12] {
        let at = |lines: &[serde_json::Value]| {
            let line = lines
                .iter()
                .find(|l| l["step"] == step)
                .unwrap_or_else(|| panic!("no metrics at step {step}"));
            (
                line["train/codebook_usage"].clone(),
                line["train/perplexity"].clone(),
            )
        };
        assert_eq!(at(&resumed), at(&straight), "step {step}");
    }
}

/// Kill storm: a trainer SIGKILLed 50 times at random moments and resumed each time
/// never leaves an unreadable `latest` checkpoint, and ends with weights and optimizer
/// state bit-identical to an uninterrupted run.
#[test]
fn a_trainer_killed_fifty_times_ends_bit_identical() {
    const STEPS: u64 = 600;
    let s = setup(
        "vqvae_tiny.json",
        json!({"train_args": {"num_steps": STEPS, "checkpoint_every": 1, "log_every": 10}}),
    );
    assert!(run(&mut train(&s, "straight", &[])).status.success());
    let latest = s.dir.join("storm/checkpoints/latest");
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut kills = 0;
    while kills < 50 && !ckpt(&s, "storm", STEPS).exists() {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let resume: &[&str] = if latest.exists() { &["--resume"] } else { &[] };
        let mut child = train(&s, "storm", resume)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(150 + rng % 900));
        if child.try_wait().unwrap().is_some() {
            break;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        if latest.exists() {
            let state = std::fs::read(latest.join("train_state.json")).unwrap();
            serde_json::from_slice::<serde_json::Value>(&state)
                .unwrap_or_else(|e| panic!("after kill {kills}: train_state.json: {e}"));
            tch::Tensor::read_safetensors(latest.join("model.safetensors"))
                .unwrap_or_else(|e| panic!("after kill {kills}: model.safetensors: {e}"));
        }
    }
    assert!(
        kills >= 25,
        "only {kills} kills landed before the run finished"
    );
    assert!(run(&mut train(&s, "storm", &["--resume"])).status.success());
    assert_same_checkpoint(&ckpt(&s, "straight", STEPS), &ckpt(&s, "storm", STEPS));
}

/// Only the discriminator's loss is NaN at step 3: the autoencoder's update stands, the
/// discriminator's is skipped with its statistics restored, and the log and
/// train_state.json say exactly that. The run equals one whose discriminator simply
/// did not update at step 3.
#[test]
fn a_nan_discriminator_loss_skips_only_the_discriminator_update() {
    let s = setup(
        "vqvae_tiny.json",
        json!({"train_args": {"traditional_loss": {"gan_weight": 0.1, "disc_start": 0},
                              "disc_update_every": 1}}),
    );
    let stderr = train_with_failpoints(&s, "nan", "disc-nan-loss=return(3)");
    assert!(
        stderr.contains("step 3: non-finite discriminator loss, discriminator update skipped"),
        "{stderr}"
    );
    train_with_failpoints(&s, "skip", "disc-skip-update=return(3)");
    let (nan, skip) = (ckpt(&s, "nan", 2 * N), ckpt(&s, "skip", 2 * N));
    for file in [
        "model.safetensors",
        "optimizer_ae.safetensors",
        "optimizer_disc.safetensors",
    ] {
        assert!(
            std::fs::read(nan.join(file)).unwrap() == std::fs::read(skip.join(file)).unwrap(),
            "{file} differs"
        );
    }
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(nan.join("train_state.json")).unwrap()).unwrap();
    assert_eq!(state["skipped_disc_updates"], 1);
    assert_eq!(state["skipped_steps"], 0);
}

/// `data_args.val` naming no video stops the run before step 1 (exit 2), not at its
/// first validation after hours of training.
#[test]
fn validation_data_that_names_nothing_stops_the_run_before_step_1() {
    let s = setup("vqvae_tiny.json", json!({"train_args": {"val_every": 2}}));
    let empty = s.dir.join("no-videos-here");
    std::fs::create_dir_all(&empty).unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&s.config).unwrap()).unwrap();
    cfg["data_args"]["val"] = json!([empty.display().to_string()]);
    std::fs::write(&s.config, cfg.to_string()).unwrap();
    let out = run(&mut train(&s, "run", &[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("`{}`: names no media files", empty.display())),
        "{stderr}"
    );
    assert!(
        !s.dir.join("run/checkpoints").exists(),
        "nothing was trained: {stderr}"
    );
}
