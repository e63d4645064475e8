//! Checkpoint folders on disk: `RUN/checkpoints/step_NNNNNNN/`, written so that a
//! crash (even `kill -9`) at any moment leaves every complete checkpoint intact.
//!
//! A checkpoint is first written into a hidden temporary folder, every file and the
//! folder are fsynced, then it is renamed into place and the `latest` link is replaced
//! by an atomic rename. Leftover temporary folders from a crash are removed on open.
//! The last `keep` checkpoints are kept, plus the one `best` points to.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0}")]
    Invalid(String),
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

const PREFIX: &str = "step_";
const TMP_PREFIX: &str = ".tmp-";

/// The `checkpoints/` folder of one run.
pub struct CheckpointStore {
    dir: PathBuf,
    keep: usize,
}

impl CheckpointStore {
    /// Opens (creating) `run_dir/checkpoints` and removes half-written leftovers.
    pub fn open(run_dir: &Path, keep: usize) -> Result<Self, CheckpointError> {
        let dir = run_dir.join("checkpoints");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))?.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().starts_with(TMP_PREFIX) {
                let path = entry.path();
                fs::remove_dir_all(&path).map_err(io_err(&path))?;
            }
        }
        Ok(CheckpointStore {
            dir,
            keep: keep.max(1),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a checkpoint for `step` through `write` (which fills the folder it is
    /// given), makes it durable, publishes it as `latest` and prunes old ones.
    pub fn save(
        &self,
        step: u64,
        write: impl FnOnce(&Path) -> Result<(), CheckpointError>,
    ) -> Result<PathBuf, CheckpointError> {
        let name = step_name(step);
        let tmp = self
            .dir
            .join(format!("{TMP_PREFIX}{name}-{}", std::process::id()));
        fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        write(&tmp)?;
        for entry in fs::read_dir(&tmp).map_err(io_err(&tmp))?.flatten() {
            let path = entry.path();
            fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(io_err(&path))?;
        }
        sync_dir(&tmp)?;
        let dst = self.dir.join(&name);
        if dst.exists() {
            // Re-saving the same step (e.g. on SIGTERM right after a periodic save).
            fs::remove_dir_all(&dst).map_err(io_err(&dst))?;
        }
        fs::rename(&tmp, &dst).map_err(io_err(&dst))?;
        self.point("latest", &name)?;
        sync_dir(&self.dir)?;
        self.prune()?;
        Ok(dst)
    }

    /// The newest complete checkpoint, if any.
    pub fn latest(&self) -> Option<PathBuf> {
        let target = fs::read_link(self.dir.join("latest")).ok()?;
        let path = self.dir.join(target);
        path.is_dir().then_some(path)
    }

    /// Records `step` as the best checkpoint by validation `metric` (lower is better).
    pub fn set_best(&self, step: u64, metric: f64) -> Result<(), CheckpointError> {
        let name = step_name(step);
        let info = self.dir.join("best.json");
        let text = serde_json::json!({ "checkpoint": name, "val_rec_loss": metric }).to_string();
        let tmp = self.dir.join("best.json.tmp");
        fs::write(&tmp, text).map_err(io_err(&tmp))?;
        fs::rename(&tmp, &info).map_err(io_err(&info))?;
        self.point("best", &name)
    }

    /// Validation metric of the current best checkpoint.
    pub fn best_metric(&self) -> Option<f64> {
        let text = fs::read_to_string(self.dir.join("best.json")).ok()?;
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

    /// Atomically replaces the symlink `link` so it points to `name`.
    fn point(&self, link: &str, name: &str) -> Result<(), CheckpointError> {
        let tmp = self.dir.join(format!("{link}.tmp"));
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(name, &tmp).map_err(io_err(&tmp))?;
        let dst = self.dir.join(link);
        fs::rename(&tmp, &dst).map_err(io_err(&dst))
    }

    fn prune(&self) -> Result<(), CheckpointError> {
        let protected: Vec<PathBuf> = ["latest", "best"]
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
                fs::remove_dir_all(&path).map_err(io_err(&path))?;
            }
        }
        Ok(())
    }
}

/// `step_0000100` — zero-padded so folders sort by step.
pub fn step_name(step: u64) -> String {
    format!("{PREFIX}{step:07}")
}

/// Accepts a run folder, its `checkpoints/` folder, or one checkpoint folder, and
/// returns the checkpoint folder it designates (the latest for the first two).
pub fn resolve(path: &Path) -> Result<PathBuf, CheckpointError> {
    if path.join("train_state.json").is_file() {
        return Ok(path.to_path_buf());
    }
    for dir in [path.join("checkpoints"), path.to_path_buf()] {
        let latest = dir.join("latest");
        if let Ok(target) = fs::read_link(&latest) {
            let ckpt = dir.join(target);
            if ckpt.join("train_state.json").is_file() {
                return Ok(ckpt);
            }
        }
    }
    Err(CheckpointError::Invalid(format!(
        "{}: not a checkpoint (no train_state.json) and no checkpoints/latest inside",
        path.display()
    )))
}

fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_run(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vqtok-ckpt-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn write_state(dir: &Path, step: u64) -> Result<(), CheckpointError> {
        let f = dir.join("train_state.json");
        fs::write(&f, format!("{{\"step\": {step}}}")).map_err(io_err(&f))
    }

    #[test]
    fn keeps_last_k_and_best_and_resolves_latest() {
        let run = temp_run("keep");
        let store = CheckpointStore::open(&run, 2).unwrap();
        for step in [100, 200, 300, 400] {
            store.save(step, |d| write_state(d, step)).unwrap();
            if step == 200 {
                store.set_best(200, 0.5).unwrap();
            }
        }
        let steps: Vec<u64> = store.list().into_iter().map(|(s, _)| s).collect();
        assert_eq!(steps, vec![200, 300, 400], "last two plus best");
        assert_eq!(
            store.latest().unwrap(),
            run.join("checkpoints/step_0000400")
        );
        assert_eq!(store.best_metric(), Some(0.5));
        assert_eq!(resolve(&run).unwrap(), run.join("checkpoints/step_0000400"));
        assert_eq!(
            resolve(&run.join("checkpoints/step_0000300")).unwrap(),
            run.join("checkpoints/step_0000300")
        );
        assert!(resolve(&run.join("nothing")).is_err());
        fs::remove_dir_all(&run).unwrap();
    }

    #[test]
    fn a_failed_write_leaves_latest_alone_and_is_cleaned_up() {
        let run = temp_run("fail");
        let store = CheckpointStore::open(&run, 3).unwrap();
        store.save(10, |d| write_state(d, 10)).unwrap();
        let err = store.save(20, |_| Err(CheckpointError::Invalid("disk on fire".into())));
        assert!(err.is_err());
        assert_eq!(
            store.latest().unwrap(),
            run.join("checkpoints/step_0000010")
        );
        // The half-written folder is what a kill -9 would leave; reopening removes it.
        let leftovers = || {
            fs::read_dir(run.join("checkpoints"))
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(TMP_PREFIX))
                .count()
        };
        assert_eq!(leftovers(), 1);
        CheckpointStore::open(&run, 3).unwrap();
        assert_eq!(leftovers(), 0);
        fs::remove_dir_all(&run).unwrap();
    }
}
