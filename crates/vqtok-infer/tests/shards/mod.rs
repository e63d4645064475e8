//! Many processes on one corpus: shards (flag and environment), the corpus index, and
//! several writers on one output tree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use vqtok_infer::TokenFile;

/// A corpus of 9 clips in a tree (several sizes and lengths) and 2 broken files.
fn corpus(dir: &Path) -> PathBuf {
    let input = dir.join("corpus");
    for i in 0..9 {
        let (w, h) = [(64, 48), (48, 64), (64, 64)][i % 3];
        let sub = ["", "day1/", "day2/cam/"][i % 3];
        let path = input.join(format!("{sub}clip{i}.mp4"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        write_video(&path, 6 + i, w, h, 25.0);
    }
    std::fs::write(input.join("day1/noise.mp4"), random_bytes(4000, 7)).unwrap();
    let good = std::fs::read(input.join("clip0.mp4")).unwrap();
    std::fs::write(input.join("cut.mp4"), &good[..good.len() / 2]).unwrap();
    input
}

/// `vqtokenize CORPUS -o OUT -m MODEL --json` plus `extra` and environment `env`.
fn encode_cmd(
    corpus: &Path,
    out: &Path,
    model: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vqtokenize"));
    c.arg(corpus)
        .arg("-o")
        .arg(out)
        .arg("-m")
        .arg(model)
        .arg("--json")
        .args(extra)
        .env_remove("VQTOK_MODEL");
    for var in [
        "SLURM_ARRAY_TASK_ID",
        "JOB_COMPLETION_INDEX",
        "RANK",
        "WORLD_SIZE",
    ] {
        c.env_remove(var);
    }
    c.envs(env.iter().copied());
    c
}

/// Input → status of a run's JSON summary.
fn statuses(summary: &serde_json::Value) -> BTreeMap<String, String> {
    summary["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["input"].as_str().unwrap().to_string(),
                f["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn three_shards_partition_the_corpus_byte_identically_and_index_it() {
    let dir = scratch("shards");
    let model = model("taming_tiny.json", 3);
    let input = corpus(&dir);
    let single = dir.join("single");
    let out = encode_cmd(&input, &single, &model, &[], &[])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "2 broken inputs: {}",
        stderr(&out)
    );
    let all = statuses(&stdout_json(&out));
    assert_eq!(all.len(), 11);

    // The three shards at once, on one output tree.
    let sharded = dir.join("sharded");
    let children: Vec<_> = (0..3)
        .map(|i| {
            encode_cmd(
                &input,
                &sharded,
                &model,
                &["--shard", &format!("{i}/3"), "--allow-bad-inputs"],
                &[],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let mut union = BTreeMap::new();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        // Broken files are the corpus' fault: reported and indexed, not a failed task.
        assert_status(&out, 0);
        let err = stderr(&out);
        assert!(
            err.contains(&format!("shard {i}/3 (--shard {i}/3)")),
            "{err}"
        );
        for (input, status) in statuses(&stdout_json(&out)) {
            assert!(
                union.insert(input.clone(), status).is_none(),
                "{input} is in two shards"
            );
        }
    }
    assert_eq!(
        union, all,
        "the shards' union is the corpus, with the same outcomes"
    );
    let (want, got) = (token_files(&single), token_files(&sharded));
    assert_eq!(want.len(), 9);
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    for (file, bytes) in &want {
        assert!(
            got[file] == *bytes,
            "{} differs from the single run's",
            file.display()
        );
    }

    // The index: every input once, broken ones with their reason.
    let out = vqtokenize(&[&"index", &sharded, &"--json"]);
    assert_status(&out, 0);
    let summary = stdout_json(&out);
    assert_eq!(summary["parts"], 3);
    assert_eq!(
        (summary["files"].as_u64(), summary["failed"].as_u64()),
        (Some(11), Some(2))
    );
    let frames: u64 = (0..9).map(|i| 6 + i).sum();
    assert_eq!(summary["frames"].as_u64(), Some(frames));
    let reasons = summary["failures_by_reason"].as_object().unwrap();
    assert_eq!(
        reasons.values().map(|v| v.as_u64().unwrap()).sum::<u64>(),
        2,
        "{summary}"
    );
    let index = std::fs::read_to_string(sharded.join("index.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = index
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 11);
    for broken in ["noise.mp4", "cut.mp4"] {
        let hits: Vec<_> = lines
            .iter()
            .filter(|l| l["input"].as_str().unwrap().ends_with(broken))
            .collect();
        assert_eq!(hits.len(), 1, "{broken} once: {index}");
        assert_eq!(hits[0]["status"], "failed");
        assert!(hits[0]["reason"].is_string() && hits[0]["error"].is_string());
    }
    let clip8 = lines
        .iter()
        .find(|l| l["output"] == "day2/cam/clip8.vqt.safetensors")
        .unwrap();
    // taming_tiny downsamples by 4: 64 × 64 frames → a 16 × 16 grid.
    assert_eq!(clip8["grid"], serde_json::json!([[16, 16]]));
    assert_eq!(clip8["frames"], 14);

    // A shard that never ran makes the index incomplete, and says which.
    std::fs::remove_file(sharded.join("_index/shard-1-of-3.jsonl")).unwrap();
    let out = vqtokenize(&[&"index", &sharded]);
    assert_status(&out, 1);
    assert!(stderr(&out).contains("shard-1-of-3"), "{}", stderr(&out));
}

#[test]
fn the_shard_comes_from_the_engine_that_started_the_process() {
    let dir = scratch("shard_env");
    let model = model("taming_tiny.json", 3);
    let input = corpus(&dir);
    let run = |extra: &[&str], env: &[(&str, &str)]| {
        encode_cmd(&input, &dir.join("out"), &model, extra, env)
            .output()
            .unwrap()
    };
    let by_flag = statuses(&stdout_json(&run(&["--shard", "1/3"], &[])));
    let slurm = run(
        &[],
        &[
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_MAX", "2"),
        ],
    );
    assert!(
        stderr(&slurm).contains("shard 1/3 ($SLURM_ARRAY_TASK_ID=1 of $SLURM_ARRAY_TASK_COUNT=3)"),
        "{}",
        stderr(&slurm)
    );
    assert_eq!(
        statuses(&stdout_json(&slurm)).keys().collect::<Vec<_>>(),
        by_flag.keys().collect::<Vec<_>>()
    );
    let k8s = run(&["--shards", "3"], &[("JOB_COMPLETION_INDEX", "1")]);
    assert!(stderr(&k8s).contains("$JOB_COMPLETION_INDEX=1, --shards 3"));
    assert_eq!(statuses(&stdout_json(&k8s)).len(), by_flag.len());
    let torchrun = run(&[], &[("RANK", "1"), ("WORLD_SIZE", "3")]);
    assert_eq!(statuses(&stdout_json(&torchrun)).len(), by_flag.len());
    // What cannot be told is refused before any work, naming the missing flag.
    let out = run(&[], &[("JOB_COMPLETION_INDEX", "1")]);
    assert_status(&out, 2);
    assert!(stderr(&out).contains("--shards"), "{}", stderr(&out));
    let out = run(&["--shard", "3/3"], &[]);
    assert_status(&out, 2);
}

#[test]
fn two_processes_without_shards_encode_each_input_once() {
    let dir = scratch("two_writers");
    let model = model("taming_tiny.json", 3);
    let input = dir.join("corpus");
    std::fs::create_dir_all(&input).unwrap();
    for i in 0..8 {
        write_video(&input.join(format!("c{i}.mp4")), 24, 64, 64, 25.0);
    }
    let out = dir.join("out");
    let children: Vec<_> = (0..2)
        .map(|_| {
            encode_cmd(&input, &out, &model, &["--jobs", "2"], &[])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut encoded: BTreeMap<String, usize> = BTreeMap::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_status(&out, 0);
        let all = statuses(&stdout_json(&out));
        assert_eq!(all.len(), 8, "each process ends knowing every input");
        for (input, status) in all {
            *encoded.entry(input).or_default() += usize::from(status == "encoded");
        }
    }
    assert!(
        encoded.values().all(|&n| n == 1),
        "each input encoded by exactly one process: {encoded:?}"
    );
    let files = token_files(&out);
    assert_eq!(files.len(), 8);
    for file in files.keys() {
        assert_eq!(TokenFile::open(&out.join(file)).unwrap().meta.frames(), 24);
    }
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no claim or partial file left: {leftovers:?}"
    );
}

/// An output claimed by another writer (here: this test, as a process on another host
/// sharing the folder would) is neither encoded nor touched while the claim is held; the
/// run does everything else first, then waits for the claim.
#[test]
fn a_claimed_output_is_waited_for_not_encoded_twice() {
    let dir = scratch("claimed");
    let model = model("taming_tiny.json", 3);
    let input = dir.join("corpus");
    std::fs::create_dir_all(&input).unwrap();
    write_video(&input.join("a.mp4"), 5, 64, 48, 25.0);
    write_video(&input.join("b.mp4"), 5, 64, 48, 25.0);
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let a_out = out.join("a.vqt.safetensors");
    let claim = vqtok_core::claim::claim(&a_out, vqtok_core::claim::Wait::No)
        .unwrap()
        .unwrap();
    let child = encode_cmd(&input, &out, &model, &[], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let b_out = out.join("b.vqt.safetensors");
    let started = Instant::now();
    while !b_out.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "b never written"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !a_out.exists(),
        "a claimed output is not encoded by another process"
    );
    // The holder goes away without having made a (as if killed): the waiting run makes
    // it itself.
    drop(claim);
    let done = child.wait_with_output().unwrap();
    assert_status(&done, 0);
    let s = statuses(&stdout_json(&done));
    assert!(s.values().all(|v| v == "encoded"), "{s:?}");
    assert_eq!(TokenFile::open(&a_out).unwrap().meta.frames(), 5);
}
