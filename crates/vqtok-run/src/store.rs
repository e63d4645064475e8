//! `RUN/checkpoints/`: checkpoint folders written so that a crash (even `kill -9`) at any
//! moment leaves every complete checkpoint intact, the `latest` and `best` links, and
//! pruning.
//!
//! A checkpoint is first written into a hidden temporary folder with a name no other
//! writer picks, every file and the folder are fsynced, then it is renamed into place
//! (or exchanged with the folder of the same step, which `latest` may point to) and the
//! `latest` link is replaced by an atomic rename. The store holds the run folder's lock
//! ([`RunLock`]) for its whole life, so the hidden leftovers it removes on open are a
//! crashed writer's, never a live one's. The last `keep` checkpoints are kept, plus the
//! one `best` points to.

use std::fs;
use std::path::{Path, PathBuf};

use vqtok_core::fs::{exchange, replace_symlink, sync_dir, unique_tag, write_atomic};

use crate::checkpoint::Checkpoint;
use crate::error::RunError;
use crate::lock::RunLock;

const PREFIX: &str = "step_";
const TMP_PREFIX: &str = ".tmp-";
const LATEST: &str = "latest";
const BEST: &str = "best";
const BEST_INFO: &str = "best.json";

/// `step_0000100`: zero-padded so folders sort by step.
pub fn step_name(step: u64) -> String {
    format!("{PREFIX}{step:07}")
}

/// The checkpoint `dir/latest` points to, if it is complete.
pub(crate) fn latest_in(dir: &Path) -> Option<Checkpoint> {
    let target = fs::read_link(dir.join(LATEST)).ok()?;
    Checkpoint::open(dir.join(target)).ok()
}

/// The `checkpoints/` folder of one run, and the run folder's lock.
pub struct CheckpointStore {
    dir: PathBuf,
    keep: usize,
    /// Held as long as the store lives: only one process writes the run.
    _lock: RunLock,
}

/// Whether `name` is a writer's temporary in `checkpoints/`: a checkpoint folder being
/// written or replaced, or a `latest`/`best`/`best.json` being rewritten.
fn is_temporary(name: &str) -> bool {
    name.starts_with(TMP_PREFIX)
        || [LATEST, BEST, BEST_INFO]
            .iter()
            .any(|f| name.starts_with(&format!(".{f}.partial-")))
}

impl CheckpointStore {
    /// Opens (creating) `dir` under the run's `lock`, removes what crashed writers left
    /// (no live writer can own it while the lock is held) and repoints a `latest` that a
    /// crash left dangling at the newest complete checkpoint.
    pub(crate) fn open(dir: &Path, keep: usize, lock: RunLock) -> Result<Self, RunError> {
        fs::create_dir_all(dir).map_err(RunError::io(dir))?;
        for entry in fs::read_dir(dir).map_err(RunError::io(dir))?.flatten() {
            if !is_temporary(&entry.file_name().to_string_lossy()) {
                continue;
            }
            let path = entry.path();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let removed = if is_dir {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            removed.map_err(RunError::io(&path))?;
        }
        let store = CheckpointStore {
            dir: dir.to_path_buf(),
            keep: keep.max(1),
            _lock: lock,
        };
        if store.latest().is_none()
            && let Some((step, _)) = store.list().pop()
        {
            store.point(LATEST, &step_name(step))?;
        }
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a checkpoint for `step` through `write` (which fills the folder it is
    /// given), makes it durable, publishes it as `latest` and prunes old ones.
    pub fn save<E: From<RunError>>(
        &self,
        step: u64,
        write: impl FnOnce(&Path) -> Result<(), E>,
    ) -> Result<Checkpoint, E> {
        let name = step_name(step);
        let tmp = self
            .dir
            .join(format!("{TMP_PREFIX}{name}-{}", unique_tag()));
        // A fresh folder: never one that is already there.
        fs::create_dir(&tmp).map_err(RunError::io(&tmp))?;
        write(&tmp)?;
        for entry in fs::read_dir(&tmp).map_err(RunError::io(&tmp))?.flatten() {
            let path = entry.path();
            fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(RunError::io(&path))?;
        }
        sync_dir(&tmp).map_err(RunError::io(&tmp))?;
        let dst = self.dir.join(&name);
        if dst.exists() {
            // Re-saving a step (a run resumed from an earlier checkpoint reaches it again).
            self.replace(&tmp, &dst)?;
        } else {
            fs::rename(&tmp, &dst).map_err(RunError::io(&dst))?;
            sync_dir(&self.dir).map_err(RunError::io(&self.dir))?;
        }
        self.point(LATEST, &name)?;
        self.prune()?;
        Ok(Checkpoint::open(dst)?)
    }

    /// Puts the complete checkpoint folder `new` in the place of `dst`, so that `dst`
    /// (and `latest` or `best` pointing to it) never names nothing: one atomic exchange,
    /// after which `new` holds the old checkpoint, which is removed. On file systems
    /// without an exchange (NFS), the old folder is renamed aside and the new one into
    /// place: two renames in a row, and a crash between them leaves the link dangling
    /// until the next open repoints `latest`.
    fn replace(&self, new: &Path, dst: &Path) -> Result<(), RunError> {
        let old = match exchange(new, dst) {
            Ok(()) => new.to_path_buf(),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
                let old = self.dir.join(format!("{TMP_PREFIX}old-{}", unique_tag()));
                fs::rename(dst, &old).map_err(RunError::io(dst))?;
                fs::rename(new, dst).map_err(RunError::io(dst))?;
                old
            }
            Err(e) => return Err(RunError::io(dst)(e)),
        };
        sync_dir(&self.dir).map_err(RunError::io(&self.dir))?;
        fs::remove_dir_all(&old).map_err(RunError::io(&old))
    }

    /// The newest complete checkpoint, if any.
    pub fn latest(&self) -> Option<Checkpoint> {
        latest_in(&self.dir)
    }

    /// Records `step` as the best checkpoint by validation `metric` (lower is better).
    /// `best.json` and the `best` link are each fsynced with their folder.
    pub fn set_best(&self, step: u64, metric: f64) -> Result<(), RunError> {
        let name = step_name(step);
        let info = self.dir.join(BEST_INFO);
        let text = serde_json::json!({ "checkpoint": name, "val_rec_loss": metric }).to_string();
        write_atomic(&info, text.as_bytes()).map_err(RunError::io(&info))?;
        self.point(BEST, &name)
    }

    /// Validation metric of the current best checkpoint.
    pub fn best_metric(&self) -> Option<f64> {
        let text = fs::read_to_string(self.dir.join(BEST_INFO)).ok()?;
        serde_json::from_str::<serde_json::Value>(&text).ok()?["val_rec_loss"].as_f64()
    }

    /// Complete checkpoints, oldest first.
    pub fn list(&self) -> Vec<(u64, PathBuf)> {
        let mut found: Vec<(u64, PathBuf)> = fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let step = name.strip_prefix(PREFIX)?.parse().ok()?;
                Some((step, e.path()))
            })
            .collect();
        found.sort();
        found
    }

    /// Points the symlink `link` at `name` in one rename.
    fn point(&self, link: &str, name: &str) -> Result<(), RunError> {
        let path = self.dir.join(link);
        replace_symlink(&path, Path::new(name)).map_err(RunError::io(&path))
    }

    fn prune(&self) -> Result<(), RunError> {
        let protected: Vec<PathBuf> = [LATEST, BEST]
            .iter()
            .filter_map(|l| {
                fs::read_link(self.dir.join(l))
                    .ok()
                    .map(|t| self.dir.join(t))
            })
            .collect();
        let all = self.list();
        let excess = all.len().saturating_sub(self.keep);
        for (_, path) in all.into_iter().take(excess) {
            if !protected.contains(&path) {
                fs::remove_dir_all(&path).map_err(RunError::io(&path))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RunDir;

    /// A run folder in a fresh temporary folder (kept alive by the returned guard).
    fn new_run() -> (tempfile::TempDir, RunDir) {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::new(tmp.path());
        (tmp, run)
    }

    fn write_state(dir: &Path, step: u64) -> Result<(), RunError> {
        let f = dir.join(Checkpoint::STATE);
        fs::write(&f, format!("{{\"step\": {step}}}")).map_err(RunError::io(&f))
    }

    #[test]
    fn keeps_last_k_and_best_and_resolves_latest() {
        let (tmp, run) = new_run();
        let store = run.store(2).unwrap();
        for step in [100, 200, 300, 400] {
            store.save(step, |d| write_state(d, step)).unwrap();
            if step == 200 {
                store.set_best(200, 0.5).unwrap();
            }
        }
        let steps: Vec<u64> = store.list().into_iter().map(|(s, _)| s).collect();
        assert_eq!(steps, vec![200, 300, 400], "last two plus best");
        let step_dir = |s| run.checkpoints_dir().join(step_name(s));
        assert_eq!(store.latest().unwrap().dir(), step_dir(400));
        assert_eq!(run.latest().unwrap().dir(), step_dir(400));
        assert_eq!(store.best_metric(), Some(0.5));
        assert_eq!(
            Checkpoint::resolve(run.root()).unwrap().dir(),
            step_dir(400)
        );
        assert_eq!(
            Checkpoint::resolve(&step_dir(300)).unwrap().dir(),
            step_dir(300)
        );
        assert!(Checkpoint::resolve(&tmp.path().join("nothing")).is_err());
    }

    #[test]
    fn a_failed_write_leaves_latest_alone_and_is_cleaned_up() {
        let (_tmp, run) = new_run();
        let store = run.store(3).unwrap();
        store.save(10, |d| write_state(d, 10)).unwrap();
        let err = store.save(20, |_| Err(RunError::invalid("disk", "on fire")));
        assert!(err.is_err());
        assert_eq!(
            store.latest().unwrap().dir(),
            run.checkpoints_dir().join(step_name(10))
        );
        // The half-written folder is what a kill -9 would leave; reopening removes it.
        let leftovers = || {
            fs::read_dir(run.checkpoints_dir())
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(TMP_PREFIX))
                .count()
        };
        assert_eq!(leftovers(), 1);
        drop(store);
        run.store(3).unwrap();
        assert_eq!(leftovers(), 0);
    }

    #[test]
    fn a_second_writer_is_refused_and_touches_nothing() {
        let (tmp, run) = new_run();
        let store = run.store(3).unwrap();
        let saved = store.save(10, |d| {
            // A second trainer starts while the first writes its checkpoint.
            let second = run.store(3).err().expect("the folder is locked");
            let message = second.to_string();
            assert!(matches!(second, RunError::Busy { .. }), "{message}");
            assert!(
                message.contains(&tmp.path().display().to_string())
                    && message.contains(&format!("pid {}", std::process::id())),
                "names the folder and the holder: {message}"
            );
            assert!(d.is_dir(), "the checkpoint in progress is left alone");
            write_state(d, 10)
        });
        saved.unwrap();
        assert!(run.latest().is_some());
        drop(store);
        run.store(3).expect("the lock goes with its holder");
    }

    #[test]
    fn re_saving_a_step_never_leaves_latest_pointing_at_nothing() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let (_tmp, run) = new_run();
        let store = run.store(3).unwrap();
        // Many files, so that a folder removed before its replacement is renamed in
        // stays missing long enough to be seen.
        let write = |d: &Path, round: u64| -> Result<(), RunError> {
            for i in 0..64 {
                let f = d.join(format!("part_{i}"));
                fs::write(&f, round.to_le_bytes()).map_err(RunError::io(&f))?;
            }
            write_state(d, 7)
        };
        store.save(7, |d| write(d, 0)).unwrap();
        let done = AtomicBool::new(false);
        let misses = std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut misses = 0;
                while !done.load(Ordering::Relaxed) {
                    if run.latest().is_none() {
                        misses += 1;
                    }
                }
                misses
            });
            for round in 1..=40 {
                store.save(7, |d| write(d, round)).unwrap();
            }
            done.store(true, Ordering::Relaxed);
            reader.join().unwrap()
        });
        assert_eq!(misses, 0, "latest pointed at no checkpoint {misses} times");
        let latest = run.latest().unwrap();
        assert_eq!(
            fs::read(latest.file("part_0")).unwrap(),
            40u64.to_le_bytes()
        );
        assert_eq!(store.list().len(), 1, "the replaced folder is gone");
    }

    #[test]
    fn opening_removes_crash_leftovers_and_repoints_a_dangling_latest() {
        let (_tmp, run) = new_run();
        let store = run.store(3).unwrap();
        store.save(1, |d| write_state(d, 1)).unwrap();
        store.save(2, |d| write_state(d, 2)).unwrap();
        drop(store);
        let dir = run.checkpoints_dir();
        // A crash in the middle of replacing step 2 on a file system without exchange.
        fs::rename(dir.join(step_name(2)), dir.join(".tmp-old-x")).unwrap();
        fs::write(dir.join(".best.json.partial-1-h-0"), b"{").unwrap();
        assert!(run.latest().is_none());
        let store = run.store(3).unwrap();
        assert_eq!(store.latest().unwrap().dir(), dir.join(step_name(1)));
        let names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }
}
