//! The corpus index: what a training data loader reads instead of listing millions of
//! token files. Each encode run into an output folder writes its shard's part,
//! `OUT/_index/shard-I-of-N.jsonl` (one line per input: input, output, frames, token grid,
//! status, failure reason), atomically at its end; `vqtokenize index OUT` merges the parts
//! into `OUT/index.jsonl` and says what is missing.
//!
//! A part is rewritten whole by every run of its shard, so a rerun after a crash or a
//! requeue replaces the part of the run that died; two processes running the same shard
//! each know the state of all its jobs (see [`crate::batch`]), so whichever writes last
//! writes a complete part.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vqtok_runtime::ModelFolder;

use crate::batch::{Outcome, Plan};
use crate::error::{InferError, Result};
use crate::shard::Shard;

/// The folder under the output folder holding the shards' parts.
pub const INDEX_DIR: &str = "_index";
/// The merged index under the output folder.
pub const INDEX_FILE: &str = "index.jsonl";

/// One input of the corpus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The input as the run named it (a path, or the spec that could not be listed).
    pub input: String,
    /// The token file, relative to the output folder; absent for an input that could not
    /// even be listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// `encoded`, `up_to_date` or `failed`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// `[height, width]` of each level's token grid per frame, coarsest level last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid: Option<Vec<[usize; 2]>>,
    /// Why it failed, in a word (`unreadable`, `corrupt`, `unlisted`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl IndexEntry {
    fn ok(&self) -> bool {
        self.status != "failed"
    }

    /// What identifies the input across parts: its output, else the input itself.
    fn identity(&self) -> &str {
        self.output.as_deref().unwrap_or(&self.input)
    }
}

/// `OUT/_index/shard-I-of-N.jsonl`.
pub fn shard_path(out: &Path, shard: Shard) -> PathBuf {
    out.join(INDEX_DIR)
        .join(format!("shard-{}-of-{}.jsonl", shard.index, shard.count))
}

/// The entries of one run: the plan's unlisted inputs, then its jobs with their outcomes.
pub fn entries(model: &ModelFolder, plan: &Plan, outcomes: &[Outcome]) -> Vec<IndexEntry> {
    let unlisted = plan.failed.iter().map(|(spec, why)| IndexEntry {
        input: spec.clone(),
        output: None,
        status: "failed".into(),
        frames: None,
        tokens: None,
        grid: None,
        reason: Some("unlisted".into()),
        error: Some(why.clone()),
    });
    let jobs = plan.jobs.iter().zip(outcomes).map(|(job, outcome)| {
        let held = outcome.held();
        let (reason, error) = match outcome {
            Outcome::Failed {
                message, reason, ..
            } => (Some(reason.clone()), Some(message.clone())),
            _ => (None, None),
        };
        IndexEntry {
            input: job.input.display().to_string(),
            output: Some(job.key.clone()),
            status: outcome.status().into(),
            frames: held.as_ref().map(|h| h.frames),
            tokens: held.as_ref().map(|h| h.tokens),
            grid: held.map(|h| {
                model
                    .levels()
                    .iter()
                    .map(|l| [h.height / l.factor, h.width / l.factor])
                    .collect()
            }),
            reason,
            error,
        }
    });
    unlisted.chain(jobs).collect()
}

fn to_jsonl(entries: &[IndexEntry]) -> Result<Vec<u8>> {
    let mut text = Vec::new();
    for e in entries {
        serde_json::to_writer(&mut text, e)
            .map_err(|err| InferError::Internal(format!("index entry: {err}")))?;
        text.push(b'\n');
    }
    Ok(text)
}

/// Writes this shard's part (atomically: readers see the old part or the new one).
pub fn write_shard(out: &Path, shard: Shard, entries: &[IndexEntry]) -> Result<PathBuf> {
    let path = shard_path(out, shard);
    let dir = out.join(INDEX_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| InferError::io(&dir, e))?;
    // A run killed while writing its part left a partial sibling; no one else writes it.
    vqtok_core::fs::remove_stale_partials(&path);
    vqtok_core::fs::write_atomic(&path, &to_jsonl(entries)?)
        .map_err(|e| InferError::io(&path, e))?;
    Ok(path)
}

/// What `vqtokenize index` found.
#[derive(Debug, Clone, Serialize)]
pub struct IndexSummary {
    pub index: PathBuf,
    /// Parts read.
    pub parts: usize,
    /// Inputs in the index, and how many of them have a usable token file.
    pub files: usize,
    pub ok: usize,
    pub failed: usize,
    pub frames: u64,
    pub tokens: u64,
    pub failures_by_reason: BTreeMap<String, usize>,
    /// `shard-I-of-N` parts that no run has written yet.
    pub shards_missing: Vec<String>,
    /// Entries that said a token file was there, which is gone.
    pub outputs_missing: Vec<String>,
}

impl IndexSummary {
    /// 0 when every shard reported; 1 when shards are missing (the index is incomplete).
    /// Failed inputs are the corpus' and are counted, not an error of the index.
    pub fn exit_code(&self) -> u8 {
        if self.shards_missing.is_empty() && self.outputs_missing.is_empty() {
            0
        } else {
            vqtok_core::exit::FAILURE
        }
    }
}

impl fmt::Display for IndexSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} file(s) from {} part(s): {} usable, {} failed; {} frames, {} tokens",
            self.index.display(),
            self.files,
            self.parts,
            self.ok,
            self.failed,
            self.frames,
            self.tokens
        )?;
        for (reason, n) in &self.failures_by_reason {
            write!(f, "\n  failed ({reason}): {n}")?;
        }
        if !self.shards_missing.is_empty() {
            write!(
                f,
                "\nincomplete: no part from {} (run those shards)",
                self.shards_missing.join(", ")
            )?;
        }
        if !self.outputs_missing.is_empty() {
            write!(
                f,
                "\nincomplete: {} token file(s) listed but gone, e.g. {} (rerun their shards)",
                self.outputs_missing.len(),
                self.outputs_missing[0]
            )?;
        }
        Ok(())
    }
}

/// `shard-I-of-N.jsonl` → (I, N).
fn parse_part_name(name: &str) -> Option<(usize, usize)> {
    let rest = name.strip_prefix("shard-")?.strip_suffix(".jsonl")?;
    let (i, n) = rest.split_once("-of-")?;
    let (i, n) = (i.parse().ok()?, n.parse().ok()?);
    (i < n).then_some((i, n))
}

/// Merges `OUT/_index/*.jsonl` into `OUT/index.jsonl` (sorted by output, atomically).
///
/// An input in several parts (the corpus was re-sharded with another N) keeps the entry
/// of the most recently written part. Shards are missing when, for a shard count N seen,
/// some `shard-I-of-N` part is absent.
pub fn merge(out: &Path) -> Result<IndexSummary> {
    let dir = out.join(INDEX_DIR);
    let listing = std::fs::read_dir(&dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            InferError::bad_input(
                &dir,
                "no index parts here: encode into this folder with `-o` first",
            )
        } else {
            InferError::io(&dir, e)
        }
    })?;
    let mut parts = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|e| InferError::io(&dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(shard) = parse_part_name(&name) {
            let path = entry.path();
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .map_err(|e| InferError::io(&path, e))?;
            parts.push((modified, name, shard, path));
        }
    }
    if parts.is_empty() {
        return Err(InferError::bad_input(
            &dir,
            "holds no shard-I-of-N.jsonl part",
        ));
    }
    // Oldest first, so that newer parts overwrite older entries of the same input.
    parts.sort();
    let mut merged: BTreeMap<String, IndexEntry> = BTreeMap::new();
    let mut seen: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for (_, _, (i, n), path) in &parts {
        seen.entry(*n).or_default().insert(*i);
        let text = std::fs::read_to_string(path).map_err(|e| InferError::io(path, e))?;
        for (line_no, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let e: IndexEntry = serde_json::from_str(line).map_err(|err| {
                InferError::bad_input(path, format!("line {}: {err}", line_no + 1))
            })?;
            merged.insert(e.identity().to_string(), e);
        }
    }
    let shards_missing = seen
        .iter()
        .flat_map(|(&n, have)| {
            (0..n)
                .filter(|i| !have.contains(i))
                .map(move |i| format!("shard-{i}-of-{n}"))
        })
        .collect();
    let entries: Vec<IndexEntry> = merged.into_values().collect();
    let outputs_missing = entries
        .iter()
        .filter(|e| e.ok())
        .filter_map(|e| e.output.as_ref())
        .filter(|o| !out.join(o).is_file())
        .cloned()
        .collect();
    let index = out.join(INDEX_FILE);
    vqtok_core::fs::remove_stale_partials(&index);
    vqtok_core::fs::write_atomic(&index, &to_jsonl(&entries)?)
        .map_err(|e| InferError::io(&index, e))?;
    let mut failures_by_reason = BTreeMap::new();
    for e in entries.iter().filter(|e| !e.ok()) {
        *failures_by_reason
            .entry(e.reason.clone().unwrap_or_else(|| "unknown".into()))
            .or_insert(0) += 1;
    }
    let ok: Vec<&IndexEntry> = entries.iter().filter(|e| e.ok()).collect();
    Ok(IndexSummary {
        index,
        parts: parts.len(),
        files: entries.len(),
        ok: ok.len(),
        failed: entries.len() - ok.len(),
        frames: ok.iter().filter_map(|e| e.frames).map(|f| f as u64).sum(),
        tokens: ok.iter().filter_map(|e| e.tokens).sum(),
        failures_by_reason,
        shards_missing,
        outputs_missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(output: &str, status: &str, frames: usize) -> IndexEntry {
        IndexEntry {
            input: format!("/corpus/{output}.mp4"),
            output: Some(format!("{output}.vqt.safetensors")),
            status: status.into(),
            frames: (status != "failed").then_some(frames),
            tokens: (status != "failed").then_some(frames as u64 * 16),
            grid: (status != "failed").then(|| vec![[4, 4]]),
            reason: (status == "failed").then(|| "corrupt".into()),
            error: (status == "failed").then(|| "broken".into()),
        }
    }

    fn touch_outputs(out: &Path, names: &[&str]) {
        for n in names {
            std::fs::write(out.join(format!("{n}.vqt.safetensors")), b"x").unwrap();
        }
    }

    #[test]
    fn parts_merge_into_one_sorted_index_with_a_summary() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        touch_outputs(out, &["a", "b", "c"]);
        let s = |index| Shard { index, count: 3 };
        write_shard(
            out,
            s(0),
            &[entry("c", "encoded", 5), entry("x", "failed", 0)],
        )
        .unwrap();
        write_shard(
            out,
            s(2),
            &[entry("a", "up_to_date", 3), entry("b", "encoded", 2)],
        )
        .unwrap();
        let summary = merge(out).unwrap();
        assert_eq!((summary.files, summary.ok, summary.failed), (4, 3, 1));
        assert_eq!((summary.frames, summary.tokens), (10, 160));
        assert_eq!(summary.failures_by_reason.get("corrupt"), Some(&1));
        assert_eq!(summary.shards_missing, vec!["shard-1-of-3"]);
        assert_eq!(summary.exit_code(), 1);
        assert!(summary.to_string().contains("shard-1-of-3"), "{summary}");
        let text = std::fs::read_to_string(out.join(INDEX_FILE)).unwrap();
        let outputs: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<IndexEntry>(l)
                    .unwrap()
                    .output
                    .unwrap()
            })
            .collect();
        assert_eq!(
            outputs,
            ["a", "b", "c", "x"].map(|n| format!("{n}.vqt.safetensors"))
        );
        write_shard(out, s(1), &[]).unwrap();
        assert_eq!(merge(out).unwrap().exit_code(), 0);
    }

    #[test]
    fn a_rerun_part_replaces_the_old_entries_and_gone_outputs_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        let one = Shard::ALL;
        write_shard(out, one, &[entry("a", "failed", 0)]).unwrap();
        let first = merge(out).unwrap();
        assert_eq!((first.failed, first.exit_code()), (1, 0));
        write_shard(out, one, &[entry("a", "encoded", 4)]).unwrap();
        // Listed as encoded, but the file is not there.
        let gone = merge(out).unwrap();
        assert_eq!(gone.outputs_missing, vec!["a.vqt.safetensors"]);
        assert_eq!(gone.exit_code(), 1);
        touch_outputs(out, &["a"]);
        let fine = merge(out).unwrap();
        assert_eq!((fine.ok, fine.failed, fine.exit_code()), (1, 0, 0));
    }

    #[test]
    fn no_parts_and_broken_parts_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = merge(dir.path()).unwrap_err();
        assert!(e.to_string().contains(INDEX_DIR), "{e}");
        std::fs::create_dir(dir.path().join(INDEX_DIR)).unwrap();
        std::fs::write(shard_path(dir.path(), Shard::ALL), "{not json\n").unwrap();
        let e = merge(dir.path()).unwrap_err();
        assert!(e.to_string().contains("shard-0-of-1.jsonl: line 1"), "{e}");
        assert_eq!(parse_part_name("shard-3-of-3.jsonl"), None);
        assert_eq!(parse_part_name("shard-2-of-3.jsonl"), Some((2, 3)));
    }
}
