//! The seed's `video_pipe`: batches of clips, decoded by worker threads ahead of the consumer.
//!
//! Work items form one endless sequence (training: epoch `e` is a seeded shuffle of the files;
//! validation: every file's evenly spaced clips, once). Workers claim items in sequence order,
//! at most `prefetch_batches · batch_size` ahead of the consumer, and the consumer takes the
//! results strictly in sequence order, skipping items that gave no clip. A batch therefore
//! depends only on the seed and the position in the sequence — not on the worker count or on
//! timing — and the position ([`LoaderState`]) is all a checkpoint needs. Items of one file
//! are decoded one at a time (a tiny dataset does not use all workers), so a file that hangs
//! ties up one worker, not all of them.
//!
//! A worker stuck inside a system call (a hung network mount, a FIFO) cannot be interrupted;
//! after `decode_timeout` plus a grace period the consumer skips that item, counts the file as
//! timed out and starts a replacement worker, so batches keep coming.

mod options;
mod stats;
mod work;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use options::{LoaderOptions, Split};
pub use stats::{LoaderStats, SkippedFile};
pub use work::ClipInfo;

use crate::error::{Result, SkipReason, VideoError};
use crate::rng::Rng;
use crate::source::{MediaItem, collect_sources, split_position};
use work::{Clip, Made, Task};

/// Tag of the per-epoch shuffle stream.
const SHUFFLE_STREAM: u64 = 2;

/// `images` is `[b, d, h, w, 3]` row-major RGB (`shape`), one clip per batch row.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub images: Vec<u8>,
    pub shape: [usize; 5],
    pub paths: Vec<PathBuf>,
    pub clips: Vec<ClipInfo>,
}

/// The data position, saved with a checkpoint. The next batch after
/// [`VideoLoader::resume`] is the one that would have followed without the interruption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoaderState {
    pub split: Split,
    pub seed: u64,
    /// Hash of the split's file list; resuming on a different dataset is refused.
    pub dataset: String,
    pub items_per_epoch: u64,
    pub epoch: u64,
    /// Items of `epoch` already consumed.
    pub position: u64,
}

/// Per-file knowledge shared by the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileStatus {
    Unknown,
    Ok,
    /// A failure that any clip of this file would hit again (cannot open, too short …):
    /// later items of the file are skipped without opening it, with the same outcome.
    Bad(SkipReason),
}

enum Outcome {
    Clip(Box<Clip>),
    Skipped,
    Nothing,
}

struct Sched {
    next_claim: u64,
    consumed: u64,
    results: BTreeMap<u64, Outcome>,
    /// Item → (worker, started at, file).
    in_flight: HashMap<u64, (usize, Instant, usize)>,
    abandoned: HashSet<usize>,
    files: Vec<FileStatus>,
    /// Files already reported in `stats.skipped` / counted as looped.
    reported: HashSet<usize>,
    looped: HashSet<usize>,
    perms: BTreeMap<u64, Arc<Vec<u32>>>,
    live_workers: usize,
    shutdown: bool,
    stats: LoaderStats,
}

struct Shared {
    opts: LoaderOptions,
    items: Vec<MediaItem>,
    per_epoch: u64,
    /// Validation ends after one pass.
    end: Option<u64>,
    window: u64,
    sched: Mutex<Sched>,
    work_cv: Condvar,
    done_cv: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Sched> {
        // A panic while holding the lock is caught per item; the data stays consistent.
        self.sched.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where this loader's `g`-th training item sits in the job's one sequence (see
    /// [`LoaderOptions::rank`]).
    fn global(&self, g: u64) -> u64 {
        if self.opts.split == Split::Val {
            return g;
        }
        g * self.opts.world_size as u64 + self.opts.rank as u64
    }

    fn task(&self, s: &mut Sched, g: u64) -> Task {
        match self.opts.split {
            Split::Train => {
                let g = self.global(g);
                let epoch = g / self.per_epoch;
                let perm = s.perms.entry(epoch).or_insert_with(|| {
                    let mut p: Vec<u32> = (0..self.items.len() as u32).collect();
                    Rng::derive(self.opts.seed, &[SHUFFLE_STREAM, epoch]).shuffle(&mut p);
                    Arc::new(p)
                });
                let file = perm[(g % self.per_epoch) as usize] as usize;
                Task {
                    file,
                    epoch,
                    val_clip: 0,
                }
            }
            Split::Val => {
                let per = self.opts.val_clips_per_video as u64;
                Task {
                    file: (g / per) as usize,
                    epoch: 0,
                    val_clip: (g % per) as usize,
                }
            }
        }
    }

    fn may_claim(&self, s: &Sched) -> bool {
        s.next_claim < s.consumed + self.window && self.end.is_none_or(|e| s.next_claim < e)
    }

    /// Books a failed item: the warning line and stats once per file, and the shortcut for
    /// failures that do not depend on the clip.
    fn record_failure(&self, s: &mut Sched, file: usize, reason: SkipReason, detail: String) {
        let clip_dependent = reason == SkipReason::Corrupt;
        if !clip_dependent {
            if s.files[file] == FileStatus::Ok {
                s.stats.files_ok -= 1;
            }
            s.files[file] = FileStatus::Bad(reason);
        }
        if s.reported.insert(file) {
            let skipped = SkippedFile {
                path: self.items[file].path.clone(),
                reason,
                detail,
            };
            if !self.opts.quiet {
                eprintln!("{skipped}");
            }
            s.stats.skipped.push(skipped);
        }
    }
}

/// Multi-threaded, deterministic clip loader; see the module docs.
pub struct VideoLoader {
    shared: Arc<Shared>,
    workers: HashMap<usize, JoinHandle<()>>,
    next_worker: usize,
    fail_streak: u64,
    dataset: String,
}

impl VideoLoader {
    /// Scans the sources, applies the train/val split and starts the workers at epoch 0.
    pub fn new(opts: LoaderOptions) -> Result<VideoLoader> {
        VideoLoader::start(opts, None)
    }

    /// Like [`VideoLoader::new`], continuing from a saved position.
    pub fn resume(opts: LoaderOptions, state: &LoaderState) -> Result<VideoLoader> {
        VideoLoader::start(opts, Some(state))
    }

    fn start(opts: LoaderOptions, state: Option<&LoaderState>) -> Result<VideoLoader> {
        opts.validate()?;
        crate::ensure_ffmpeg();
        let mut items = collect_sources(&opts.sources, &opts.extensions)?;
        if let Some(f) = opts.holdout {
            items.retain(|i| (split_position(&i.split_key) < f) == (opts.split == Split::Val));
        }
        if items.is_empty() {
            return Err(VideoError::NoUsableData {
                split: opts.split.as_str(),
                detail: match opts.holdout {
                    Some(f) => format!(
                        "no file of {} falls in the {} part of the split (val_fraction {f}); \
                         give `data_args.val` or change `val_fraction`",
                        opts.sources.join(", "),
                        opts.split.as_str()
                    ),
                    None => format!("{} names no files", opts.sources.join(", ")),
                },
            });
        }
        let per_epoch = match opts.split {
            Split::Train => items.len() as u64,
            Split::Val => items.len() as u64 * opts.val_clips_per_video as u64,
        };
        let dataset = dataset_hash(&items);
        let start = match state {
            None => 0,
            Some(st) => {
                let mismatch = |what: String| Err(VideoError::State { detail: what });
                if st.split != opts.split {
                    return mismatch(format!(
                        "it is a {} position, this is the {} loader",
                        st.split.as_str(),
                        opts.split.as_str()
                    ));
                }
                if st.seed != opts.seed {
                    return mismatch(format!(
                        "seed {} in the checkpoint, {} now",
                        st.seed, opts.seed
                    ));
                }
                if st.dataset != dataset || st.items_per_epoch != per_epoch {
                    return mismatch(format!(
                        "the file list changed ({} items per epoch in the checkpoint, {per_epoch} now); \
                         start the data position afresh",
                        st.items_per_epoch
                    ));
                }
                st.epoch * per_epoch + st.position
            }
        };
        let end = (opts.split == Split::Val).then_some(per_epoch);
        let window = (opts.prefetch_batches * opts.batch_size).max(opts.num_workers) as u64;
        let stats = LoaderStats {
            files: items.len(),
            ..LoaderStats::default()
        };
        let shared = Arc::new(Shared {
            sched: Mutex::new(Sched {
                next_claim: start,
                consumed: start,
                results: BTreeMap::new(),
                in_flight: HashMap::new(),
                abandoned: HashSet::new(),
                files: vec![FileStatus::Unknown; items.len()],
                reported: HashSet::new(),
                looped: HashSet::new(),
                perms: BTreeMap::new(),
                live_workers: 0,
                shutdown: false,
                stats,
            }),
            opts,
            items,
            per_epoch,
            end,
            window,
            work_cv: Condvar::new(),
            done_cv: Condvar::new(),
        });
        let mut loader = VideoLoader {
            shared,
            workers: HashMap::new(),
            next_worker: 0,
            fail_streak: 0,
            dataset,
        };
        for _ in 0..loader.shared.opts.num_workers {
            loader.spawn_worker()?;
        }
        Ok(loader)
    }

    /// The next batch; `None` once a validation pass is complete (training never ends).
    /// The last validation batch may be smaller than `batch_size`.
    pub fn next_batch(&mut self) -> Result<Option<Batch>> {
        let shared = Arc::clone(&self.shared);
        let opts = &shared.opts;
        let b = opts.batch_size;
        let mut clips: Vec<Clip> = Vec::with_capacity(b);
        while clips.len() < b {
            let Some(outcome) = self.take_next()? else {
                break;
            };
            match outcome {
                Outcome::Clip(c) => {
                    clips.push(*c);
                    self.fail_streak = 0;
                }
                Outcome::Skipped => self.fail_streak += 1,
                Outcome::Nothing => {}
            }
            // Two epochs' worth of items in a row without a clip contain a whole epoch in which
            // every file failed.
            if self.fail_streak >= 2 * self.shared.per_epoch {
                return Err(self.no_usable_data());
            }
        }
        if clips.is_empty() {
            let s = self.shared.lock();
            let nothing_ever = s.stats.clips == 0;
            drop(s);
            return if nothing_ever {
                Err(self.no_usable_data())
            } else {
                Ok(None)
            };
        }
        let (d, r) = (opts.sequence_length, opts.resolution);
        let mut images = Vec::with_capacity(clips.len() * d * r * r * 3);
        let mut infos = Vec::with_capacity(clips.len());
        for c in clips {
            images.extend_from_slice(&c.data);
            infos.push(c.info);
        }
        let mut s = self.shared.lock();
        s.stats.clips += infos.len() as u64;
        s.stats.batches += 1;
        drop(s);
        Ok(Some(Batch {
            images,
            shape: [infos.len(), d, r, r, 3],
            paths: infos.iter().map(|c| c.path.clone()).collect(),
            clips: infos,
        }))
    }

    /// Position after the last batch returned.
    pub fn state(&self) -> LoaderState {
        let consumed = self.shared.lock().consumed;
        LoaderState {
            split: self.shared.opts.split,
            seed: self.shared.opts.seed,
            dataset: self.dataset.clone(),
            items_per_epoch: self.shared.per_epoch,
            epoch: consumed / self.shared.per_epoch,
            position: consumed % self.shared.per_epoch,
        }
    }

    pub fn stats(&self) -> LoaderStats {
        self.shared.lock().stats.clone()
    }

    /// The files of this split, in file-index order.
    pub fn files(&self) -> &[MediaItem] {
        &self.shared.items
    }

    fn no_usable_data(&self) -> VideoError {
        let stats = self.stats();
        VideoError::NoUsableData {
            split: self.shared.opts.split.as_str(),
            detail: format!("every file was skipped: {}", stats.summary()),
        }
    }

    /// Waits for the next item in sequence order.
    fn take_next(&mut self) -> Result<Option<Outcome>> {
        let shared = Arc::clone(&self.shared);
        let t0 = Instant::now();
        let watchdog = shared.opts.decode_timeout
            + (shared.opts.decode_timeout / 2).max(Duration::from_secs(1));
        let mut s = shared.lock();
        let outcome = loop {
            let g = s.consumed;
            if shared.end.is_some_and(|e| g >= e) {
                return Ok(None);
            }
            if let Some(o) = s.results.remove(&g) {
                break o;
            }
            // Items stuck beyond their own timeout (any of them: a later item of a file can
            // hold up an earlier one waiting for that file): skip them, retire their workers.
            let stuck: Vec<(u64, usize, usize)> = s
                .in_flight
                .iter()
                .filter(|(_, (_, since, _))| since.elapsed() > watchdog)
                .map(|(&h, &(worker, _, file))| (h, worker, file))
                .collect();
            if !stuck.is_empty() {
                for &(h, worker, file) in &stuck {
                    s.in_flight.remove(&h);
                    s.abandoned.insert(worker);
                    s.live_workers -= 1;
                    s.stats.abandoned_workers += 1;
                    s.stats.failed_items += 1;
                    let detail = format!(
                        "no result after {:.1} s; worker abandoned",
                        watchdog.as_secs_f64()
                    );
                    shared.record_failure(&mut s, file, SkipReason::Timeout, detail);
                    s.results.insert(h, Outcome::Skipped);
                }
                drop(s);
                for &(_, worker, _) in &stuck {
                    // Detached: it returns on its own if the call ever completes.
                    self.workers.remove(&worker);
                    self.spawn_worker()?;
                }
                shared.work_cv.notify_all();
                s = shared.lock();
                continue;
            }
            if s.live_workers == 0 {
                return Err(VideoError::Internal(
                    "all loader workers have exited".into(),
                ));
            }
            s = shared
                .done_cv
                .wait_timeout(s, Duration::from_millis(100))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        };
        s.consumed += 1;
        let epoch = shared.global(s.consumed) / shared.per_epoch;
        s.perms.retain(|&e, _| e + 1 >= epoch);
        s.stats.wait_seconds += t0.elapsed().as_secs_f64();
        drop(s);
        shared.work_cv.notify_all();
        Ok(Some(outcome))
    }

    fn spawn_worker(&mut self) -> Result<()> {
        let id = self.next_worker;
        self.next_worker += 1;
        let shared = Arc::clone(&self.shared);
        shared.lock().live_workers += 1;
        let handle = std::thread::Builder::new()
            .name(format!("vqtok-video-{id}"))
            .spawn(move || worker(&shared, id))
            .map_err(|e| VideoError::Internal(format!("cannot start a worker thread: {e}")))?;
        self.workers.insert(id, handle);
        Ok(())
    }
}

impl Iterator for VideoLoader {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        self.next_batch().transpose()
    }
}

impl Drop for VideoLoader {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.work_cv.notify_all();
        for (_, h) in self.workers.drain() {
            let _ = h.join();
        }
    }
}

fn worker(shared: &Shared, id: usize) {
    loop {
        let (g, task, known_bad) = {
            let mut s = shared.lock();
            loop {
                if s.shutdown || s.abandoned.contains(&id) {
                    s.live_workers -= usize::from(!s.abandoned.contains(&id));
                    return;
                }
                if shared.may_claim(&s) {
                    break;
                }
                s = shared.work_cv.wait(s).unwrap_or_else(|p| p.into_inner());
            }
            let g = s.next_claim;
            s.next_claim += 1;
            let task = shared.task(&mut s, g);
            // One item per file at a time: if an earlier one is stuck, this one would hang the
            // same way; if it fails for the whole file, this one is skipped at once.
            while s.in_flight.values().any(|&(_, _, f)| f == task.file) {
                if s.shutdown || s.abandoned.contains(&id) {
                    s.live_workers -= usize::from(!s.abandoned.contains(&id));
                    return;
                }
                s = shared.work_cv.wait(s).unwrap_or_else(|p| p.into_inner());
            }
            let now = Instant::now();
            s.in_flight.insert(g, (id, now, task.file));
            let known_bad = matches!(s.files[task.file], FileStatus::Bad(_));
            (g, (task, now), known_bad)
        };
        let (task, claimed) = task;
        let t0 = Instant::now();
        let made = if known_bad {
            None
        } else {
            let item = &shared.items[task.file];
            Some(
                catch_unwind(AssertUnwindSafe(|| {
                    work::make(&shared.opts, item, task, claimed)
                }))
                .unwrap_or_else(|p| {
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    Err(VideoError::file(
                        &item.path,
                        SkipReason::Corrupt,
                        format!("decoder panicked: {msg}"),
                    ))
                }),
            )
        };
        let elapsed = t0.elapsed().as_secs_f64();

        let mut s = shared.lock();
        s.in_flight.remove(&g);
        if s.abandoned.contains(&id) {
            // The consumer gave up on this item and replaced this worker.
            return;
        }
        s.stats.decode_seconds += elapsed;
        let outcome = match made {
            None => {
                s.stats.failed_items += 1;
                Outcome::Skipped
            }
            Some(Ok(Made::Clip(c))) => {
                if s.files[task.file] == FileStatus::Unknown {
                    s.files[task.file] = FileStatus::Ok;
                    s.stats.files_ok += 1;
                }
                if c.info.looped && s.looped.insert(task.file) {
                    s.stats.looped += 1;
                }
                Outcome::Clip(Box::new(c))
            }
            Some(Ok(Made::Nothing)) => Outcome::Nothing,
            Some(Err(e)) => {
                s.stats.failed_items += 1;
                let (reason, detail) = match e {
                    VideoError::File { reason, detail, .. } => (reason, detail),
                    other => (SkipReason::Corrupt, other.to_string()),
                };
                shared.record_failure(&mut s, task.file, reason, detail);
                Outcome::Skipped
            }
        };
        s.results.insert(g, outcome);
        s.stats.peak_buffered_clips = s.stats.peak_buffered_clips.max(s.results.len());
        drop(s);
        shared.done_cv.notify_all();
        // Workers waiting for this file to be free.
        shared.work_cv.notify_all();
    }
}

/// Identifies a file list: SHA-256 over every item's path, segment and split key.
fn dataset_hash(items: &[MediaItem]) -> String {
    let mut h = Sha256::new();
    for i in items {
        h.update(i.path.to_string_lossy().as_bytes());
        h.update(format!("\0{:?}\0{:?}\0{}\n", i.start_s, i.end_s, i.split_key).as_bytes());
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}
