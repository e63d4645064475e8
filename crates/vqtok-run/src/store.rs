//! `RUN/checkpoints/`: checkpoint folders written so that a crash (even `kill -9`) at any
//! moment leaves every complete checkpoint intact, the `latest` and `best` links, and
//! pruning.
//!
//! A checkpoint is first written into a hidden temporary folder, every file and the
//! folder are fsynced, then it is renamed into place and the `latest` link is replaced
//! by an atomic rename. Leftover temporary folders from a crash are removed on open.
//! The last `keep` checkpoints are kept, plus the one `best` points to.

use std::fs;
use std::path::{Path, PathBuf};

use vqtok_core::fs::{replace_symlink, sync_dir, write_atomic};

use crate::checkpoint::Checkpoint;
use crate::error::RunError;

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

/// The `checkpoints/` folder of one run.
pub struct CheckpointStore {
    dir: PathBuf,
    keep: usize,
}

impl CheckpointStore {
    /// Opens (creating) `dir` and removes half-written leftovers.
    pub fn open(dir: &Path, keep: usize) -> Result<Self, RunError> {
        fs::create_dir_all(dir).map_err(RunError::io(dir))?;
        for entry in fs::read_dir(dir).map_err(RunError::io(dir))?.flatten() {
            if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                let path = entry.path();
                fs::remove_dir_all(&path).map_err(RunError::io(&path))?;
            }
        }
        Ok(CheckpointStore {
            dir: dir.to_path_buf(),
            keep: keep.max(1),
        })
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
            .join(format!("{TMP_PREFIX}{name}-{}", std::process::id()));
        fs::create_dir_all(&tmp).map_err(RunError::io(&tmp))?;
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
            // Re-saving the same step (e.g. on SIGTERM right after a periodic save).
            fs::remove_dir_all(&dst).map_err(RunError::io(&dst))?;
        }
        fs::rename(&tmp, &dst).map_err(RunError::io(&dst))?;
        self.point(LATEST, &name)?;
        self.prune()?;
        Ok(Checkpoint::open(dst)?)
    }

    /// The newest complete checkpoint, if any.
    pub fn latest(&self) -> Option<Checkpoint> {
        latest_in(&self.dir)
    }

    /// Records `step` as the best checkpoint by validation `metric` (lower is better).
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

    fn write_state(dir: &Path, step: u64) -> Result<(), RunError> {
        let f = dir.join(Checkpoint::STATE);
        fs::write(&f, format!("{{\"step\": {step}}}")).map_err(RunError::io(&f))
    }

    #[test]
    fn keeps_last_k_and_best_and_resolves_latest() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::new(tmp.path());
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
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::new(tmp.path());
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
        run.store(3).unwrap();
        assert_eq!(leftovers(), 0);
    }
}
