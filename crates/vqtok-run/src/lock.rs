//! `RUN/.lock`: one writer of a run folder at a time. The trainer holds an exclusive
//! `flock` on it for its whole life (through its [`CheckpointStore`](crate::CheckpointStore));
//! a second trainer pointed at the same folder is refused instead of deleting the first
//! one's checkpoint in progress or interleaving checkpoints with it. The kernel drops the
//! lock when its holder exits, however it exits, so a crashed run never blocks the next.
//!
//! The file stays when the run ends; only the lock on it means anything. Its text (the
//! holder's pid and host) is there for the message of the one refused.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::RunError;

/// The lock of one run folder, held until dropped.
pub(crate) struct RunLock {
    /// Closing the file releases the lock.
    _file: File,
}

impl RunLock {
    pub(crate) const FILE: &str = ".lock";

    /// Locks the run folder `root` (creating it), or says who holds it.
    pub(crate) fn acquire(root: &Path) -> Result<RunLock, RunError> {
        std::fs::create_dir_all(root).map_err(RunError::io(root))?;
        let path = root.join(Self::FILE);
        // Read and write (an exclusive fcntl lock, which NFS clients turn flock into,
        // needs write access); never through a planted symlink.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(RunError::io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                // Best effort: the holder may be rewriting it at this very moment.
                let _ = file.read_to_string(&mut holder);
                return Err(RunError::Busy {
                    path: root.to_path_buf(),
                    holder: holder.trim().to_string(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(RunError::io(&path)(e)),
        }
        let holder = format!(
            "pid {} on {}\n",
            std::process::id(),
            vqtok_core::fs::host_name()
        );
        file.set_len(0)
            .and_then(|()| file.write_all(holder.as_bytes()))
            .map_err(RunError::io(&path))?;
        Ok(RunLock { _file: file })
    }
}
