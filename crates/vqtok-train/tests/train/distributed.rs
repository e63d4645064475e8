//! Data-parallel training on the CPU with 2 Gloo ranks, launched as users launch it
//! (torchrun --no-python; by hand with RANK/WORLD_SIZE for the failure cases): the ranks
//! stay identical, 2 ranks × B/2 train what 1 process × B does (taming VQ and the EMA
//! codebook), a job resumes exactly, and a dead or hung rank ends the job.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use tch::Kind;

use crate::resume::{Setup, assert_same_checkpoint, ckpt, setup, wait_for_checkpoint};
use crate::support::{bin, read_tensors};

/// The venv's torchrun (setup installs torch there).
fn torchrun() -> PathBuf {
    vqtok_testkit::python().with_file_name("torchrun")
}

/// `vqtok-train` as a command line (program, args) with the libraries a rank loads.
fn trainer_argv(s: &Setup, run: &str, extra: &[&str]) -> (PathBuf, Vec<String>) {
    // The rank dlopen()s libvqtok_pydist.so from beside the binary.
    vqtok_testkit::process::build_libs(&["vqtok-pydist"]);
    let program = PathBuf::from(bin().get_program());
    let mut args: Vec<String> = ["--threads", "1", "train", "--config"]
        .map(String::from)
        .to_vec();
    args.push(s.config.display().to_string());
    args.push("--out".into());
    args.push(s.dir.join(run).display().to_string());
    args.extend(["--data", "synthetic:8", "--dist-timeout", "30"].map(String::from));
    args.extend(extra.iter().map(|a| a.to_string()));
    (program, args)
}

/// `torchrun --standalone --nproc-per-node N --no-python vqtok-train train …`.
fn torchrun_train(s: &Setup, nproc: usize, run: &str, extra: &[&str]) -> Output {
    let (program, args) = trainer_argv(s, run, extra);
    let out = Command::new(torchrun())
        .args([
            "--standalone",
            "--nproc-per-node",
            &nproc.to_string(),
            "--no-python",
        ])
        .arg(program)
        .args(args)
        .output()
        .expect("run torchrun");
    assert!(
        out.status.success(),
        "torchrun failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One process, no launcher (no Python).
fn plain_train(s: &Setup, run: &str, extra: &[&str]) {
    let (program, args) = trainer_argv(s, run, extra);
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `rank r/W: weights sha256 H at step S` lines, by rank.
fn digests(stderr: &str) -> Vec<(usize, String)> {
    let mut found: Vec<(usize, String)> = stderr
        .lines()
        .filter_map(|l| {
            let l = l.split("]:").last()?.trim();
            let (rank, rest) = l.strip_prefix("rank ")?.split_once('/')?;
            let digest = rest
                .split("weights sha256 ")
                .nth(1)?
                .split_whitespace()
                .next()?;
            Some((rank.parse().ok()?, digest.to_string()))
        })
        .collect();
    found.sort();
    found
}

fn tiny(name: &str, extra: serde_json::Value) -> Setup {
    let mut patch = json!({"train_args": {"num_steps": 4, "batch_size": 2, "checkpoint_every": 2,
                                          "val_every": 1000}});
    vqtok_testkit::merge_json(&mut patch, extra);
    setup(name, patch)
}

/// With the discriminator on from step 0 (BatchNorm statistics, its own Adam) and the EMA
/// codebook's data init and dead-code restarts (drawn from each rank's own batch), every
/// rank ends with the same bytes in every weight, statistic and buffer. Rank 0 alone
/// validates, at a step that is no log or checkpoint step (the ranks still meet there).
#[test]
fn two_ranks_keep_identical_weights() {
    let s = tiny(
        "emavq_tiny.json",
        json!({"model_args": {"lossconfig": {"params": {"disc_start": 0}}},
               "train_args": {"disc_update_every": 1, "log_every": 2, "val_every": 3}}),
    );
    let out = torchrun_train(&s, 2, "run", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let d = digests(&stderr);
    assert_eq!(d.len(), 2, "one digest per rank:\n{stderr}");
    assert_eq!(d[0].1, d[1].1, "the ranks' weights differ:\n{stderr}");
    assert!(
        stderr.contains("2 ranks over gloo (torchrun), global batch 2×2 = 4 clips"),
        "{stderr}"
    );
    // Rank 0 alone wrote the run folder; its checkpoint holds both ranks' data positions.
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(ckpt(&s, "run", 4).join("train_state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["data"]["world_size"], 2);
    assert_eq!(
        state["data"]["ranks"][1],
        json!({"kind": "synthetic", "position": 4})
    );
    let metrics = std::fs::read_to_string(s.dir.join("run/metrics.jsonl")).unwrap();
    let lines = |key: &str| metrics.lines().filter(|l| l.contains(key)).count();
    assert_eq!(lines("train/total_loss"), 2, "{metrics}");
    assert_eq!(
        lines("val/psnr"),
        2,
        "validations at steps 3 and 4: {metrics}"
    );
}

/// ‖a − b‖ / ‖b‖ over all floating-point tensors of two model files together (integer
/// ones must be equal). Global, not per tensor: a conv bias feeding a one-channel-per-group
/// GroupNorm has a zero gradient up to rounding noise, which Adam normalises into ±lr
/// steps of either sign, so such tensors differ by ~lr between any two summation orders
/// while carrying no signal.
fn relative_difference(a: &Path, b: &Path) -> f64 {
    let (a, b) = (read_tensors(a), read_tensors(b));
    assert_eq!(a.len(), b.len());
    let (mut diff, mut norm) = (0.0, 0.0);
    for (name, want) in &b {
        let got = &a[name];
        if !want.is_floating_point() {
            assert!(got.equal(want), "{name}");
            continue;
        }
        let (got, want) = (got.to_kind(Kind::Double), want.to_kind(Kind::Double));
        diff += (&got - &want).square().sum(Kind::Double).double_value(&[]);
        norm += want.square().sum(Kind::Double).double_value(&[]);
    }
    (diff / norm).sqrt()
}

/// 2 ranks × batch 1 against 1 process × batch 2 on the same clips (rank r reads clip r of
/// each of the process's batches): the same training up to float reassociation in the
/// averaged gradients and the summed EMA statistics. Before disc_start, as PatchGAN's
/// BatchNorm normalises each rank's half-batch on its own (no SyncBatchNorm, as in DDP).
fn half_batches_match_one_batch(name: &str, extra: serde_json::Value) -> f64 {
    let s = tiny(name, extra);
    torchrun_train(&s, 2, "two", &["--batch-size", "1"]);
    plain_train(&s, "one", &["--batch-size", "2"]);
    let model = |run: &str| ckpt(&s, run, 4).join("model.safetensors");
    let diff = relative_difference(&model("two"), &model("one"));
    eprintln!("{name}: relative difference after 4 steps {diff:e}");
    diff
}

// Measured on the tiny configs at 32² (4 Adam steps at lr 1e-3, Intel AVX-512): 1.1e-4 for
// taming VQ (2.6e-6 after one step) and 3.1e-9 for the EMA model. Training 1 process on batch 1 instead, i.e.
// what a rank that did not average would follow, differs by 3.3e-2. The bound sits
// between, ~10× from each.
const REASSOCIATION: f64 = 1e-3;

#[test]
fn two_half_batches_train_like_one_batch() {
    let diff = half_batches_match_one_batch("taming_tiny.json", json!({}));
    assert!(diff < REASSOCIATION, "taming VQ: {diff:e}");
}

/// The EMA update sums the ranks' per-code counts and sums first. Data init and dead-code
/// restarts draw from the local batch (rank 0's, broadcast), so they are off here.
#[test]
fn ema_statistics_of_two_half_batches_are_one_batchs() {
    let diff = half_batches_match_one_batch(
        "emavq_tiny.json",
        json!({"model_args": {"ema": {"data_init": false, "dead_code_threshold": 0.0}}}),
    );
    assert!(diff < REASSOCIATION, "EMA: {diff:e}");
}

/// 2 ranks for 2 steps, then resumed for 2 more, leave the checkpoint 4 straight steps do,
/// byte for byte (weights, both optimizers, both ranks' data positions).
#[test]
fn a_job_resumes_exactly() {
    let s = tiny(
        "taming_tiny.json",
        json!({"model_args": {"lossconfig": {"params": {"disc_start": 1}}},
               "train_args": {"disc_update_every": 1}}),
    );
    torchrun_train(&s, 2, "straight", &[]);
    torchrun_train(&s, 2, "resumed", &["--steps", "2"]);
    torchrun_train(&s, 2, "resumed", &["--resume", "--steps", "4"]);
    assert_same_checkpoint(&ckpt(&s, "straight", 4), &ckpt(&s, "resumed", 4));
    // A different world size cannot continue those data slices.
    let (program, args) = trainer_argv(&s, "resumed", &["--resume", "--steps", "6"]);
    let out = Command::new(program).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("written by a job of 2 rank(s)"), "{stderr}");
}

/// Two ranks started by hand (what any launcher does), rank 0 serving the rendezvous on a
/// free port.
fn start_ranks(s: &Setup, timeout_s: &str) -> Vec<Child> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (program, mut args) = trainer_argv(s, "run", &["--steps", "100000"]);
    let t = args.iter().position(|a| a == "--dist-timeout").unwrap();
    args[t + 1] = timeout_s.into();
    (0..2)
        .map(|rank| {
            Command::new(&program)
                .args(&args)
                .env("RANK", rank.to_string())
                .env("WORLD_SIZE", "2")
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", port.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect()
}

/// Waits at most `limit` for `child` to exit; its status code and stderr.
fn exit_within(child: Child, limit: Duration) -> (Option<i32>, String) {
    let start = Instant::now();
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        while start.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(100));
        }
        // Still running past the limit: end it so the assertion below reports it.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
    let out = child.wait_with_output().unwrap();
    let took = start.elapsed();
    drop(watchdog);
    assert!(took < limit, "the rank did not exit within {limit:?}");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A rank killed with SIGKILL mid-training: the other fails at its next collective (the
/// peer's socket closes) and exits 1 by itself, well within 60 s. A hung rank (SIGSTOP):
/// the other exits 1 once `--dist-timeout` passes. Neither leaves a partial checkpoint.
#[test]
fn a_dead_or_hung_rank_ends_the_job() {
    let s = tiny(
        "taming_tiny.json",
        json!({"train_args": {"checkpoint_every": 1}}),
    );
    for (signal, timeout, limit) in [(libc::SIGKILL, "120", 60), (libc::SIGSTOP, "10", 40)] {
        let mut ranks = start_ranks(&s, timeout);
        wait_for_checkpoint(&mut ranks[0], &ckpt(&s, "run", 1));
        let victim = ranks.pop().unwrap();
        unsafe { libc::kill(victim.id() as i32, signal) };
        let survivor = ranks.pop().unwrap();
        let (code, stderr) = exit_within(survivor, Duration::from_secs(limit));
        // The launcher's part (torchrun, srun --kill-on-bad-exit) for the hung one.
        let mut victim = victim;
        let _ = victim.kill();
        let _ = victim.wait();
        assert_eq!(code, Some(1), "signal {signal}: {stderr}");
        assert!(stderr.contains("torch.distributed"), "{stderr}");
        let partial = std::fs::read_dir(s.dir.join("run/checkpoints"))
            .unwrap()
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with(".tmp-"));
        assert!(!partial, "a partial checkpoint was left");
        std::fs::remove_dir_all(s.dir.join("run")).unwrap();
    }
}
