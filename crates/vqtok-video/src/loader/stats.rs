//! What the loader did: files used and skipped (with reasons), clips, and where time went.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::error::SkipReason;

/// A file skipped (once per file, at its first failure).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkippedFile {
    pub path: PathBuf,
    pub reason: SkipReason,
    pub detail: String,
}

impl fmt::Display for SkippedFile {
    /// The warning line printed when the file is first skipped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "vqtok-video: skipping {}: {}: {}",
            self.path.display(),
            self.reason,
            self.detail
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LoaderStats {
    /// Files in this split.
    pub files: usize,
    /// Files that gave at least one clip.
    pub files_ok: usize,
    /// Files that failed at least once, with the first reason.
    pub skipped: Vec<SkippedFile>,
    /// Short files used by looping.
    pub looped: usize,
    /// Clips handed out in batches.
    pub clips: u64,
    /// Work items that gave no clip (a bad file is retried only when its failure may depend
    /// on the clip, e.g. corruption in the middle).
    pub failed_items: u64,
    pub batches: u64,
    /// Seconds the workers spent opening and decoding, summed over workers.
    pub decode_seconds: f64,
    /// Seconds the consumer blocked in `next_batch` waiting for clips.
    pub wait_seconds: f64,
    /// Most decoded clips ever waiting for the consumer (bounded by the prefetch window).
    pub peak_buffered_clips: usize,
    /// Workers given up as stuck in a system call and replaced.
    pub abandoned_workers: usize,
}

impl LoaderStats {
    pub fn skipped_by_reason(&self) -> BTreeMap<SkipReason, usize> {
        let mut m = BTreeMap::new();
        for s in &self.skipped {
            *m.entry(s.reason).or_insert(0) += 1;
        }
        m
    }

    /// One line for logs, e.g. `12 files: 10 ok, 2 skipped (1 empty file, 1 no video stream)`.
    pub fn summary(&self) -> String {
        let reasons = self
            .skipped_by_reason()
            .iter()
            .map(|(r, n)| format!("{n} {r}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut s = format!(
            "{} files: {} ok, {} skipped",
            self.files,
            self.files_ok,
            self.skipped.len()
        );
        if !reasons.is_empty() {
            s += &format!(" ({reasons})");
        }
        if self.looped > 0 {
            s += &format!(", {} looped", self.looped);
        }
        s + &format!(
            "; {} clips in {} batches, decode {:.1} s, consumer waited {:.1} s",
            self.clips, self.batches, self.decode_seconds, self.wait_seconds
        )
    }
}
