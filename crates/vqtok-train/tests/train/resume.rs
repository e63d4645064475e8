//! Exact resume on the CPU: 2N steps straight give bit-identical weights and optimizer
//! state to N steps + kill -9 + resume + N steps, also when the kill lands in the
//! middle of a checkpoint write. Ctrl-C/SIGTERM checkpoints and exits 0; a diverging
//! run stops with its last good checkpoint intact; a changed config is refused. The
//! torn write comes from vqtok-train's failpoints (FAILPOINTS).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{bin, bytes, config, run, write_config, write_video};
use serde_json::json;

pub(crate) const N: u64 = 4;

pub(crate) struct Setup {
    _tmp: tempfile::TempDir,
    pub(crate) dir: PathBuf,
    pub(crate) config: PathBuf,
}

pub(crate) fn setup(name: &str, extra: serde_json::Value) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    write_video(&dir.join("train.mp4"), 32, 30, 1);
    write_video(&dir.join("val.mp4"), 32, 30, 2);
    let mut patch = json!({
        "train_args": {"num_steps": 2 * N, "batch_size": 2, "checkpoint_every": N / 2, "log_every": 1,
                       "val_every": 1000, "val_batches": 1, "device": "cpu", "deterministic": true,
                       "disc_update_every": 2},
        "data_args": {"train": [dir.join("train.mp4").display().to_string()],
                      "val": [dir.join("val.mp4").display().to_string()],
                      "resolution": 32, "sequence_length": 2, "num_workers": 2}
    });
    if let (Some(p), serde_json::Value::Object(e)) = (patch.as_object_mut(), extra) {
        for (k, v) in e {
            let slot = p.entry(k).or_insert(json!({}));
            for (kk, vv) in v.as_object().cloned().unwrap_or_default() {
                slot[kk] = vv;
            }
        }
    }
    let cfg = config(name, patch);
    let config = write_config(&dir, &cfg);
    Setup {
        _tmp: tmp,
        dir,
        config,
    }
}

pub(crate) fn train(s: &Setup, run_dir: &str, extra: &[&str]) -> Command {
    let mut c = bin();
    c.args(["--threads", "1", "train", "--quiet", "--config"])
        .arg(&s.config)
        .arg("--out")
        .arg(s.dir.join(run_dir));
    c.args(extra);
    c
}

pub(crate) fn ckpt(s: &Setup, run_dir: &str, step: u64) -> PathBuf {
    s.dir
        .join(run_dir)
        .join(format!("checkpoints/step_{step:07}"))
}

pub(crate) fn assert_same_checkpoint(a: &Path, b: &Path) {
    for file in [
        "model.safetensors",
        "optimizer_ae.safetensors",
        "optimizer_disc.safetensors",
    ] {
        let (pa, pb) = (a.join(file), b.join(file));
        assert_eq!(pa.exists(), pb.exists(), "{file}");
        if pa.exists() {
            assert!(
                bytes(&pa) == bytes(&pb),
                "{file} differs between {} and {}",
                a.display(),
                b.display()
            );
        }
    }
    let state = |p: &Path| {
        let mut v: serde_json::Value =
            serde_json::from_slice(&bytes(&p.join("train_state.json"))).unwrap();
        v.as_object_mut().unwrap().remove("best_val_rec_loss");
        v
    };
    assert_eq!(state(a), state(b));
}

/// Waits until checkpoint folder `path` is complete; the trainer `child` must stay
/// alive meanwhile.
pub(crate) fn wait_for_checkpoint(child: &mut std::process::Child, path: &Path) {
    let start = Instant::now();
    while !path.join("train_state.json").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "{} never appeared",
            path.display()
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("trainer exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A trainer on run folder `run` of a fresh setup that would go on for 100000 steps,
/// returned once its first checkpoint is complete; its stderr goes to `stderr`.
pub(crate) fn running_trainer(stderr: Stdio) -> (Setup, std::process::Child) {
    let s = setup(
        "vqvae_tiny.json",
        json!({"train_args": {"num_steps": 100000}}),
    );
    let mut child = train(&s, "run", &[])
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    wait_for_checkpoint(&mut child, &ckpt(&s, "run", N / 2));
    (s, child)
}

/// Waits until `path` exists, then SIGKILLs the child (as `kill -9`).
fn kill_after(child: &mut std::process::Child, path: &Path) {
    wait_for_checkpoint(child, path);
    child.kill().unwrap();
    child.wait().unwrap();
}

fn exact_resume((name, extra): (&str, serde_json::Value)) {
    let s = setup(name, extra);
    assert!(run(&mut train(&s, "straight", &[])).status.success());
    let reference = ckpt(&s, "straight", 2 * N);

    // N steps, kill -9, resume to 2N.
    let mut child = train(&s, "killed", &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    kill_after(&mut child, &ckpt(&s, "killed", N));
    assert!(
        !ckpt(&s, "killed", 2 * N).exists(),
        "killed too late to test anything"
    );
    assert!(
        run(&mut train(&s, "killed", &["--resume"]))
            .status
            .success()
    );
    assert_same_checkpoint(&reference, &ckpt(&s, "killed", 2 * N));

    // SIGKILL in the middle of writing checkpoint N: the previous one stays `latest`.
    let out = run(
        train(&s, "torn", &[]).env("FAILPOINTS", format!("checkpoint-after-model=return({N})"))
    );
    assert!(!out.status.success(), "the fault hook did not fire");
    let ckpts = s.dir.join("torn/checkpoints");
    assert_eq!(
        std::fs::read_link(ckpts.join("latest")).unwrap(),
        PathBuf::from(format!("step_{:07}", N / 2))
    );
    assert!(
        !ckpt(&s, "torn", N).exists(),
        "a torn checkpoint was published"
    );
    assert!(run(&mut train(&s, "torn", &["--resume"])).status.success());
    assert_same_checkpoint(&reference, &ckpt(&s, "torn", 2 * N));
    let leftovers = std::fs::read_dir(&ckpts)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
        .count();
    assert_eq!(
        leftovers, 0,
        "the torn temporary folder was cleaned up on resume"
    );
}

/// A taming model (`model`: a taming config) with its discriminator on from step 0, so
/// both Adams and the BatchNorm statistics are in play; the patch for [`setup`].
pub(crate) fn taming_path(model: &str) -> (&str, serde_json::Value) {
    let patch = json!({"model_args": {"ddconfig": {"resolution": 32, "attn_resolutions": [8]},
                       "lossconfig": {"params": {"disc_start": 0}}}});
    (model, patch)
}

/// VQ-VAE with the EMA codebook and the traditional loss's own discriminator from step 0.
pub(crate) fn traditional_path() -> (&'static str, serde_json::Value) {
    let patch = json!({"train_args": {"traditional_loss": {"gan_weight": 0.1, "disc_start": 0}}});
    ("vqvae_tiny.json", patch)
}

vqtok_testkit::test_cases! { exact_resume;
    taming_resume_is_bit_exact_after_kill: (taming_path("taming_tiny.json"));
    traditional_resume_is_bit_exact_after_kill: (traditional_path());
}

#[test]
fn sigterm_checkpoints_and_exits_zero() {
    let (s, child) = running_trainer(Stdio::piped());
    // SAFETY: signals our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("interrupted at step"), "{stderr}");
    let latest = s.dir.join("run/checkpoints/latest");
    let state: serde_json::Value =
        serde_json::from_slice(&bytes(&latest.join("train_state.json"))).unwrap();
    let step = state["step"].as_u64().unwrap();
    assert!((N / 2..100000).contains(&step));
    assert!(
        stderr.contains(&format!("interrupted at step {step} ")),
        "{stderr}"
    );
}

#[test]
fn diverging_run_stops_with_the_last_good_checkpoint() {
    let s = setup(
        "vqvae_tiny.json",
        json!({"train_args": {"lr": 1e30, "max_bad_steps": 2, "checkpoint_every": 1, "num_steps": 50}}),
    );
    let out = run(&mut train(&s, "run", &[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("consecutive steps with a non-finite loss"),
        "{stderr}"
    );
    let latest = s.dir.join("run/checkpoints/latest");
    let state: serde_json::Value =
        serde_json::from_slice(&bytes(&latest.join("train_state.json"))).unwrap();
    assert!(state["step"].as_u64().unwrap() < 50);
    assert!(tch::Tensor::read_safetensors(latest.join("model.safetensors")).is_ok());
}

#[test]
fn resume_with_a_changed_config_is_refused() {
    let s = setup("vqvae_tiny.json", json!({"train_args": {"num_steps": 2}}));
    assert!(run(&mut train(&s, "run", &[])).status.success());
    let mut cfg: serde_json::Value = serde_json::from_slice(&bytes(&s.config)).unwrap();
    cfg["train_args"]["lr"] = json!(0.5);
    cfg["model_args"]["num_embeddings"] = json!(32);
    let changed = s.dir.join("changed.json");
    std::fs::write(&changed, cfg.to_string()).unwrap();
    let mut c = bin();
    c.args(["train", "--quiet", "--resume", "--steps", "4", "--config"])
        .arg(&changed)
        .arg("--out")
        .arg(s.dir.join("run"));
    let out = run(&mut c);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("train_args.lr: 0.001 → 0.5"), "{stderr}");
    assert!(
        stderr.contains("model_args.num_embeddings: 64 → 32"),
        "{stderr}"
    );
    // Without --resume, an existing run is not overwritten either.
    let out = run(&mut train(&s, "run", &[]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --resume"));
}
