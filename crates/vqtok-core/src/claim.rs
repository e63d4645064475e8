//! "I am making this file": a claim on an output path that keeps two writers (threads,
//! processes, or hosts over a shared file system) from making the same output at the same
//! time. Several `vqtokenize` processes may work on one output tree, with or without
//! shards; each takes the claim of an output before it looks at it, so each input is
//! encoded once and nobody deletes or truncates another's work.
//!
//! The claim is an exclusive `flock` on a hidden sibling `.NAME.claim`. The kernel drops
//! the lock when its holder exits, however it exits, so a killed writer never blocks the
//! next; its file may stay behind, unlocked, and is taken over by the next claimer. The
//! holder removes the file when it lets go. Removing a lock file races with others who
//! already opened it, so every claimer checks, once it holds the lock, that the path still
//! names the file it locked, and starts again if not.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A held claim on an output path; dropping it lets go.
#[derive(Debug)]
pub struct Claim {
    lock_path: PathBuf,
    /// Closing it releases the lock (after the file is removed, see `Drop`).
    _file: File,
}

/// Whether [`claim`] waits for another holder to let go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Return `None` at once when someone else holds the claim.
    No,
    /// Block until the claim is free.
    Yes,
}

/// The lock file of `path`: `.NAME.claim` beside it.
pub fn claim_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.claim"))
}

/// Takes the claim on `path`; `Ok(None)` when another writer holds it and `wait` is
/// [`Wait::No`]. The folder must exist.
pub fn claim(path: &Path, wait: Wait) -> io::Result<Option<Claim>> {
    let lock_path = claim_path(path);
    loop {
        // Read and write: on NFS, flock is emulated with fcntl locks, and an exclusive
        // fcntl lock needs a file open for writing. O_NOFOLLOW: a planted link cannot
        // make us create or lock a file elsewhere.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&lock_path)?;
        match wait {
            Wait::Yes => file.lock()?,
            Wait::No => match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(e)) => return Err(e),
            },
        }
        // The previous holder may have removed the file after we opened it: a lock on an
        // unlinked file claims nothing, so start again on whatever the name holds now.
        let ours = file.metadata()?;
        match std::fs::symlink_metadata(&lock_path) {
            Ok(named) if named.dev() == ours.dev() && named.ino() == ours.ino() => {
                return Ok(Some(Claim {
                    lock_path,
                    _file: file,
                }));
            }
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
}

impl Drop for Claim {
    /// Removes the lock file while still holding the lock, then closes it: a waiter that
    /// opened the old file finds it gone from the path and retries on a fresh one.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};

    #[test]
    fn a_held_claim_refuses_others_and_is_gone_after_drop() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a.vqt.safetensors");
        let held = claim(&out, Wait::No).unwrap().expect("free claim");
        assert!(claim_path(&out).exists());
        // Another open file description (as another process would have) is refused.
        assert!(claim(&out, Wait::No).unwrap().is_none());
        drop(held);
        assert!(
            !claim_path(&out).exists(),
            "the holder removes its lock file"
        );
        assert!(claim(&out, Wait::No).unwrap().is_some());
    }

    #[test]
    fn a_dead_holders_file_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("b.vqt.safetensors");
        // What a killed holder leaves: the file, no lock.
        std::fs::write(claim_path(&out), b"").unwrap();
        assert!(claim(&out, Wait::No).unwrap().is_some());
    }

    #[test]
    fn a_planted_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("c.vqt.safetensors");
        let target = dir.path().join("elsewhere");
        std::os::unix::fs::symlink(&target, claim_path(&out)).unwrap();
        assert!(claim(&out, Wait::No).is_err());
        assert!(!target.exists());
    }

    /// Many threads, each claiming with waiting and counting how many hold the claim at
    /// once: never more than one, although every holder deletes the lock file as it lets
    /// go while others are blocked on the old one.
    #[test]
    fn waiting_claimers_hold_it_one_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let out = Arc::new(dir.path().join("d.vqt.safetensors"));
        let inside = Arc::new(AtomicUsize::new(0));
        let entered = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (out, inside, entered, start) =
                    (out.clone(), inside.clone(), entered.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    for _ in 0..50 {
                        let c = claim(&out, Wait::Yes).unwrap().expect("waited");
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                        entered.fetch_add(1, Ordering::SeqCst);
                        std::thread::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                        drop(c);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(entered.load(Ordering::SeqCst), 400);
    }
}
