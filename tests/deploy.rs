//! deploy/ tested for real (`cargo xtask test --deploy`; as root, with Debian's slurm-wlm,
//! munge, podman, runc and debootstrap installed, which that command does):
//! - a single-node Slurm started from `deploy/testing/slurm-up.sh` runs
//!   `deploy/slurm/tokenize.sbatch` as a 3-task array over a corpus of generated clips in
//!   three codecs and containers plus two broken files; the union of the shards is the
//!   corpus, the token files are byte-identical to a single-process run, each broken file is
//!   in the index once; one task is cancelled mid-run and resubmitted alone, and finishes
//!   without re-encoding what it had finished;
//! - the image of `deploy/container/` is built with podman on a Debian base made with
//!   debootstrap (no registry needed) and writes the same token file as the host binary;
//!   the Kubernetes Indexed Job's container arguments run in that image, pod by pod;
//! - `deploy/slurm/train.sbatch` trains with 2 ranks started by `srun` on that Slurm, the
//!   same bytes as torchrun's 2 ranks, and resumes when resubmitted.
//!
//! The tests are `#[ignore]`d in the normal tier: they need root and start daemons.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use vqtok_export::{ExportOptions, RandomWeights, export};
use vqtok_infer::TokenFile;
use vqtok_infer::shard::Shard;
use vqtok_testkit::process::{assert_status, stderr};
use vqtok_testkit::video::{WriterOptions, ripple, write};
use vqtok_testkit::{random_bytes, token_files, workspace_root};
use vqtok_video::VideoCodec;

const IGNORE: &str =
    "needs root, slurm-wlm, munge, podman, runc, debootstrap: cargo xtask test --deploy";

/// A fresh, empty scratch folder (Slurm's jobs and the containers see it at the same
/// absolute path).
fn scratch(name: &str) -> PathBuf {
    vqtok_testkit::fresh_dir(
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("deploy")
            .join(name),
    )
}

/// What both tests start from: a scratch folder, the release binary, the model and a
/// corpus of `frames`-frame clips (the test runs as root, or says what it needs).
fn setup(name: &str, frames: usize) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "{IGNORE}");
    let dir = scratch(name);
    let bin = vqtokenize_bin();
    let model = model(&dir);
    let corpus = corpus(&dir, frames);
    (dir, bin, model, corpus)
}

/// `cargo build --release --quiet ARGS` (a no-op when the caller built it already).
fn release_build(args: &[&str]) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--release", "--quiet"])
        .args(args)
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert_status(&out, 0);
}

/// The release vqtokenize (what a cluster runs), built here if the caller did not.
fn vqtokenize_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("VQTOK_DEPLOY_VQTOKENIZE") {
        return PathBuf::from(bin);
    }
    release_build(&["-p", "vqtok-infer", "--bin", "vqtokenize"]);
    workspace_root().join("target/release/vqtokenize")
}

/// The tiny taming model folder with seeded random weights.
fn model(dir: &Path) -> PathBuf {
    let cfg =
        vqtok_config::Config::from_path(workspace_root().join("configs/taming_tiny.json")).unwrap();
    let out = dir.join("model");
    let options = ExportOptions {
        float_variants: false,
        ..ExportOptions::default()
    };
    export(&cfg, &mut RandomWeights::new(5), &out, &options).unwrap();
    out
}

/// 12 clips — H.264 in mp4, MPEG-4 in avi and mkv, several sizes and lengths, in a tree —
/// and 2 broken files (noise named .mp4, an mp4 cut before its index).
fn corpus(dir: &Path, frames: usize) -> PathBuf {
    let root = dir.join("corpus");
    for i in 0..12 {
        let (ext, codec) = [
            ("mp4", VideoCodec::H264),
            ("avi", VideoCodec::Mpeg4),
            ("mkv", VideoCodec::Mpeg4),
        ][i % 3];
        let (w, h) = [(96, 64), (64, 96), (80, 80), (128, 72)][i % 4];
        let path = root.join(format!("cam{}/clip{i:02}.{ext}", i % 2));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let opts = WriterOptions {
            codec,
            gop: Some(12),
            ..WriterOptions::default()
        };
        write(&path, frames + i, (w, h), &opts, |t| ripple(t + i, w, h));
    }
    std::fs::write(root.join("cam0/noise.mp4"), random_bytes(6000, 11)).unwrap();
    let good = std::fs::read(root.join("cam0/clip00.mp4")).unwrap();
    std::fs::write(root.join("cut.mp4"), &good[..good.len() / 2]).unwrap();
    root
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// The single-process run every deployment must reproduce.
fn reference(bin: &Path, corpus: &Path, model: &Path, out: &Path) {
    let o = run(Command::new(bin)
        .arg(corpus)
        .args(["-o"])
        .arg(out)
        .arg("-m")
        .arg(model)
        .args(["-q", "--allow-bad-inputs"]));
    assert_status(&o, 0);
}

/// `vqtokenize index OUT --json`: (exit code, summary).
fn index(bin: &Path, out: &Path) -> (Option<i32>, serde_json::Value) {
    let o = run(Command::new(bin).arg("index").arg(out).arg("--json"));
    let summary = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("index --json: {e}\n{}", stderr(&o)));
    (o.status.code(), summary)
}

fn assert_index_complete(bin: &Path, out: &Path) {
    let (code, summary) = index(bin, out);
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(summary["files"], 14, "{summary}");
    assert_eq!(summary["failed"], 2, "each broken file once: {summary}");
    let text = std::fs::read_to_string(out.join("index.jsonl")).unwrap();
    for broken in ["noise.mp4", "cut.mp4"] {
        assert_eq!(
            text.lines().filter(|l| l.contains(broken)).count(),
            1,
            "{broken} once in {text}"
        );
    }
}

/// A single-node Slurm cluster for one test, stopped when dropped.
struct Slurm {
    dir: PathBuf,
    conf: String,
}

impl Slurm {
    fn up(dir: &Path) -> Slurm {
        let o = run(Command::new(workspace_root().join("deploy/testing/slurm-up.sh")).arg(dir));
        assert_status(&o, 0);
        let stdout = String::from_utf8_lossy(&o.stdout);
        let conf = stdout
            .lines()
            .last()
            .and_then(|l| l.strip_prefix("export SLURM_CONF="))
            .unwrap_or_else(|| panic!("slurm-up.sh said {stdout}"))
            .to_string();
        Slurm {
            dir: dir.to_path_buf(),
            conf,
        }
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    /// `sbatch --parsable ARGS` → job id.
    fn sbatch(&self, args: &[&dyn AsRef<std::ffi::OsStr>], env: &[(&str, &Path)]) -> String {
        let mut c = self.cmd("sbatch");
        c.arg("--parsable").args(args.iter().map(|a| a.as_ref()));
        for (k, v) in env {
            c.env(k, v);
        }
        let o = run(&mut c);
        assert_status(&o, 0);
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .split(';')
            .next()
            .unwrap()
            .to_string()
    }

    /// Polls squeue until `job` (all its tasks) has left it (`sbatch --wait` polls coarsely).
    fn wait(&self, job: &str) {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let o = run(self.cmd("squeue").args(["-h", "-j", job]));
            if String::from_utf8_lossy(&o.stdout).trim().is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "job {job} still queued after 600 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The final state of each task of array `job` (`sacct` needs accounting; the
    /// controller's memory of finished jobs lasts MinJobAge).
    fn states(&self, job: &str) -> String {
        let o = run(self.cmd("scontrol").args(["show", "job", job]));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        let _ = Command::new(workspace_root().join("deploy/testing/slurm-down.sh"))
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
#[ignore = "needs root, slurm-wlm, munge, podman, runc, debootstrap: cargo xtask test --deploy"]
fn slurm_array_tokenizes_the_corpus_like_one_process() {
    let (dir, bin, model, corpus) = setup("slurm", 120);
    let single = dir.join("single");
    let t = Instant::now();
    reference(&bin, &corpus, &model, &single);
    eprintln!("one process, no Slurm: {:.1} s", t.elapsed().as_secs_f64());
    let slurm = Slurm::up(&dir.join("cluster"));
    let sbatch = workspace_root().join("deploy/slurm/tokenize.sbatch");
    let log = dir.join("logs/%A_%a.log");
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let submit = |out: &Path, array: &str, shards: &str| {
        slurm.sbatch(
            &[
                &format!("--array={array}"),
                &"--cpus-per-task=1",
                &"-o",
                &log,
                &sbatch,
                &corpus,
                &"-o",
                &out,
                &"-m",
                &model,
                &"--shards",
                &shards,
            ],
            &[("VQTOKENIZE", &bin)],
        )
    };

    // 1 task, then 3 tasks: wall time from submission to the last task's end.
    let mut walls = Vec::new();
    for (name, array, shards) in [("one", "0", "1"), ("three", "0-2", "3")] {
        let out = dir.join(name);
        let t = Instant::now();
        let job = submit(&out, array, shards);
        slurm.wait(&job);
        walls.push((name, t.elapsed().as_secs_f64()));
        assert!(
            !slurm.states(&job).contains("FAILED"),
            "{}",
            slurm.states(&job)
        );
        let (want, got) = (token_files(&single), token_files(&out));
        assert_eq!(want.len(), 12);
        assert_eq!(
            want.keys().collect::<Vec<_>>(),
            got.keys().collect::<Vec<_>>(),
            "the union of the shards is the corpus"
        );
        for (file, bytes) in &want {
            assert!(
                got[file] == *bytes,
                "{} differs from one process's",
                file.display()
            );
        }
        assert_index_complete(&bin, &out);
    }
    eprintln!("Slurm array wall time (submit → done, 2-CPU node, 1 CPU per task): {walls:?}");

    // Cancel task 1 once it has finished one of its files, resubmit it alone.
    let out = dir.join("cancelled");
    let shard1: Vec<PathBuf> = token_files(&single)
        .into_keys()
        .filter(|k| Shard { index: 1, count: 3 }.owns(&k.to_string_lossy()))
        .collect();
    assert!(shard1.len() >= 3, "shard 1 has {shard1:?}");
    let job = submit(&out, "0-2", "3");
    let deadline = Instant::now() + Duration::from_secs(300);
    let finished = loop {
        let done: Vec<&PathBuf> = shard1.iter().filter(|f| out.join(f).exists()).collect();
        if !done.is_empty() {
            let o = run(slurm.cmd("scancel").arg(format!("{job}_1")));
            assert_status(&o, 0);
            break done.into_iter().cloned().collect::<Vec<_>>();
        }
        assert!(Instant::now() < deadline, "task 1 wrote nothing");
        std::thread::sleep(Duration::from_millis(20));
    };
    slurm.wait(&job);
    let missing = shard1.iter().filter(|f| !out.join(f).exists()).count();
    assert!(
        missing > 0,
        "task 1 was cancelled mid-run (it had finished all: make clips longer)"
    );
    let stamp = |f: &PathBuf| {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(out.join(f)).unwrap();
        (m.ino(), m.mtime_nsec(), m.mtime())
    };
    let before: Vec<_> = finished.iter().map(stamp).collect();
    let (code, summary) = index(&bin, &out);
    assert_eq!(code, Some(1), "shard 1 is missing: {summary}");
    let again = submit(&out, "1", "3");
    slurm.wait(&again);
    let after: Vec<_> = finished.iter().map(stamp).collect();
    assert_eq!(
        before, after,
        "files finished before the cancel are not re-encoded"
    );
    let (want, got) = (token_files(&single), token_files(&out));
    assert_eq!(
        want, got,
        "after the resubmission: every token file, byte for byte"
    );
    assert_index_complete(&bin, &out);
    let part = std::fs::read_to_string(out.join("_index/shard-1-of-3.jsonl")).unwrap();
    assert_eq!(
        part.lines()
            .filter(|l| l.contains("\"up_to_date\""))
            .count(),
        finished.len(),
        "{part}"
    );
}

/// The release vqtok-train and, beside it, libvqtok_pydist.so (what a rank loads).
fn trainer_bin() -> PathBuf {
    release_build(&["-p", "vqtok-train", "--bin", "vqtok-train"]);
    release_build(&["-p", "vqtok-pydist", "--lib"]);
    workspace_root().join("target/release/vqtok-train")
}

/// `deploy/slurm/train.sbatch` with 2 tasks on the single-node Slurm: `srun` starts the
/// two Gloo ranks, which train exactly what `torchrun --nproc-per-node 2` trains (the same
/// checkpoint bytes); resubmitted with more steps, the job resumes from its checkpoint.
#[test]
#[ignore = "needs root, slurm-wlm, munge, podman, runc, debootstrap: cargo xtask test --deploy"]
fn slurm_srun_trains_two_ranks_like_torchrun() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "{IGNORE}");
    let dir = scratch("train");
    let bin = trainer_bin();
    let mut cfg =
        vqtok_config::Config::from_path(workspace_root().join("configs/taming_tiny.json"))
            .unwrap()
            .to_json();
    vqtok_testkit::merge_json(
        &mut cfg,
        serde_json::json!({
            "model_args": {"lossconfig": {"params": {"disc_start": 2}}},
            "train_args": {"num_steps": 4, "checkpoint_every": 2, "val_every": 1000,
                           "log_every": 1, "disc_update_every": 1},
            "data_args": {"resolution": 32}
        }),
    );
    let config = dir.join("param.json");
    std::fs::write(&config, cfg.to_string()).unwrap();
    let python = vqtok_testkit::python();
    let args = |out: &Path| -> Vec<std::ffi::OsString> {
        vec![
            "--config".into(),
            config.clone().into(),
            "--data".into(),
            "synthetic:8".into(),
            "--out".into(),
            out.into(),
            "--dist-timeout".into(),
            "60".into(),
        ]
    };
    let reference = dir.join("torchrun");
    let o = run(Command::new(python.with_file_name("torchrun"))
        .args(["--standalone", "--nproc-per-node", "2", "--no-python"])
        .arg(&bin)
        .args(["--threads", "1", "train"])
        .args(args(&reference)));
    assert_status(&o, 0);

    let slurm = Slurm::up(&dir.join("cluster"));
    let sbatch = workspace_root().join("deploy/slurm/train.sbatch");
    let out = dir.join("slurm");
    let log = dir.join("train-%j.log");
    let submit = |extra: &[&str]| {
        let mut a: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&"--ntasks=2", &"--cpus-per-task=1", &"-o", &log, &sbatch];
        let rest = args(&out);
        let mut owned: Vec<&dyn AsRef<std::ffi::OsStr>> = rest
            .iter()
            .map(|s| s as &dyn AsRef<std::ffi::OsStr>)
            .collect();
        a.append(&mut owned);
        for e in extra {
            a.push(e);
        }
        let job = slurm.sbatch(&a, &[("VQTOK_TRAIN", &bin), ("VQTOK_PYTHON", &python)]);
        slurm.wait(&job);
        let state = slurm.states(&job);
        let text =
            std::fs::read_to_string(dir.join(format!("train-{job}.log"))).unwrap_or_default();
        assert!(state.contains("JobState=COMPLETED"), "{state}\n{text}");
        text
    };
    let text = submit(&[]);
    assert!(
        text.contains("2 ranks over gloo (slurm), global batch 2×2 = 4 clips"),
        "{text}"
    );
    let digests: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split("weights sha256 ").nth(1))
        .collect();
    assert_eq!(digests.len(), 2, "{text}");
    assert_eq!(digests[0], digests[1], "{text}");
    let step = |run: &Path, n: u64| run.join(format!("checkpoints/step_{n:07}"));
    for file in [
        "model.safetensors",
        "optimizer_ae.safetensors",
        "optimizer_disc.safetensors",
    ] {
        let (a, b) = (step(&reference, 4).join(file), step(&out, 4).join(file));
        assert!(
            std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
            "{file}: srun's run differs from torchrun's"
        );
    }
    // The same job again with 2 more steps: it resumes (the script adds --resume).
    let text = submit(&["--steps", "6"]);
    assert!(text.contains("resuming"), "{text}");
    assert!(text.contains("from step 4 to 6"), "{text}");
    assert!(step(&out, 6).join("model.safetensors").exists());
}

fn podman() -> Command {
    let mut c = Command::new("podman");
    c.env(
        "CONTAINERS_CONF",
        workspace_root().join("deploy/container/containers.conf"),
    );
    c
}

#[test]
#[ignore = "needs root, slurm-wlm, munge, podman, runc, debootstrap: cargo xtask test --deploy"]
fn the_container_image_tokenizes_like_the_host_binary() {
    let (dir, bin, model, corpus) = setup("container", 10);
    let image = "localhost/vqtok:deploy-test";
    let t = Instant::now();
    let o = run(&mut Command::new(
        workspace_root().join("deploy/container/base-image.sh"),
    ));
    assert_status(&o, 0);
    let o = run(
        Command::new(workspace_root().join("deploy/container/build.sh"))
            .arg(image)
            .env("VQTOKENIZE", &bin),
    );
    assert_status(&o, 0);
    eprintln!("base image + build: {:.0} s", t.elapsed().as_secs_f64());

    // One clip: the same token file inside as outside (mounted at the same path, so even the
    // source path in the metadata agrees).
    let clip = corpus.join("cam1/clip01.avi");
    let host = dir.join("host.vqt.safetensors");
    assert_status(
        &run(Command::new(&bin)
            .arg(&clip)
            .arg("-o")
            .arg(&host)
            .arg("-m")
            .arg(&model)
            .arg("-q")),
        0,
    );
    let inside = dir.join("inside.vqt.safetensors");
    let mount = format!("{0}:{0}", dir.display());
    let o = run(podman()
        .args(["run", "--rm", "--network", "none", "-v", &mount, image])
        .arg(&clip)
        .arg("-o")
        .arg(&inside)
        .arg("-m")
        .arg(&model)
        .arg("-q"));
    assert_status(&o, 0);
    assert!(
        std::fs::read(&inside).unwrap() == std::fs::read(&host).unwrap(),
        "the image's token file differs from the host binary's"
    );

    // The Kubernetes Indexed Job: its pod arguments, run pod by pod in this image with the
    // index Kubernetes gives each pod, over /data laid out as the manifest expects.
    let job: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(workspace_root().join("deploy/k8s/tokenize-job.yaml")).unwrap(),
    )
    .unwrap();
    let spec = &job["spec"];
    assert_eq!(job["kind"].as_str(), Some("Job"));
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    let completions = spec["completions"].as_u64().unwrap();
    let args: Vec<String> = spec["template"]["spec"]["containers"][0]["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let after = |flag: &str| args[args.iter().position(|a| a == flag).unwrap() + 1].clone();
    assert_eq!(
        after("--shards"),
        completions.to_string(),
        "--shards = completions"
    );
    let data = dir.join("data");
    let place = |container_path: &str, host: &Path| {
        let to = data.join(container_path.strip_prefix("/data/").unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        assert!(
            Command::new("cp")
                .arg("-a")
                .arg(host)
                .arg(&to)
                .status()
                .unwrap()
                .success()
        );
    };
    place(&args[0], &corpus);
    place(&after("-m"), &model);
    for index in 0..completions {
        let o = run(podman()
            .args(["run", "--rm", "--network", "none"])
            .args(["-e", &format!("JOB_COMPLETION_INDEX={index}")])
            .args(["-v", &format!("{}:/data", data.display()), image])
            .args(&args));
        assert_status(&o, 0);
        assert!(stderr(&o).contains(&format!("$JOB_COMPLETION_INDEX={index}")));
    }
    let tokens = data.join(after("-o").strip_prefix("/data/").unwrap());
    assert_index_complete(&bin, &tokens);
    let host_run = dir.join("host-run");
    reference(&bin, &corpus, &model, &host_run);
    let (want, got) = (token_files(&host_run), token_files(&tokens));
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    for file in want.keys() {
        let (a, b) = (
            TokenFile::open(&host_run.join(file)).unwrap(),
            TokenFile::open(&tokens.join(file)).unwrap(),
        );
        // Only the source path differs (/data/corpus inside the pods).
        assert_eq!(a.levels, b.levels, "{}", file.display());
        assert_eq!(a.meta.frame_indices, b.meta.frame_indices);
    }
    let _ = podman().args(["rmi", "-f", image]).output();
}
