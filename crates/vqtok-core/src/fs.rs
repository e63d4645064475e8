//! Files that appear whole or not at all. Every file vqtok publishes (checkpoints, token
//! files, manifests, ONNX graphs, pictures) is written through a hidden sibling with a
//! name no other writer can pick, fsynced, renamed over its final name, and its folder
//! fsynced: a reader never sees half a file under the final name, and a crash (even
//! `kill -9`) leaves at most a hidden sibling behind. The writer holds a lock on that
//! sibling while it exists, so a cleaner tells a dead writer's leftovers from a live
//! writer's file in progress on any host ([`remove_stale_partials`]).

use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A file that could not be read or written: the I/O error with the path it happened on,
/// shown as `PATH: reason`. The library errors hold it as their `Io` variant.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct IoError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl IoError {
    pub fn new(path: impl Into<PathBuf>, source: io::Error) -> Self {
        IoError {
            path: path.into(),
            source,
        }
    }
}

impl crate::exit::Blame for IoError {
    /// A missing file, or one the user may not read or write, is the user's to fix; any
    /// other failure (disk full, I/O error) is not.
    fn is_user_error(&self) -> bool {
        matches!(
            self.source.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
        )
    }
}

/// This machine's host name (empty if it has none), with `/` and `.` replaced by `_` so
/// that it fits in a file name.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it
    // or truncates, and we stop at the first NUL either way.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    if ok {
        String::from_utf8_lossy(&buf[..len]).replace(['/', '.'], "_")
    } else {
        String::new()
    }
}

/// 64 random bits (std's per-process random hash keys, freshly drawn per call).
fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    h.write_u64(now.map_or(0, |d| d.as_nanos() as u64));
    h.finish()
}

/// A hidden sibling of `path` that only this writer uses:
/// `.NAME.partial-PID-HOST-RANDOM` followed by `suffix`. Process id and host tell a
/// person whose it is; with the random part they keep writers on other machines (a
/// shared file system) and other writers in this process apart. Whether the writer is
/// still alive is its lock's to say, not the process id ([`create_partial`]).
fn partial_path(path: &Path, suffix: &str) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.partial-{}{suffix}", unique_tag()))
}

/// `PID-HOST-RANDOM`: a name part no other writer picks, on this host or another one
/// sharing the folder, in this process or another.
pub fn unique_tag() -> String {
    format!(
        "{}-{}-{:016x}",
        std::process::id(),
        host_name(),
        random_u64()
    )
}

/// Creates `path` for writing, failing if anything already exists there (`O_EXCL`) and
/// never following a symlink (`O_NOFOLLOW`): a planted link cannot redirect the write.
pub fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Attempts at a fresh name before [`create_partial`] gives up; more than one is only
/// needed when a cleaner removed the file between its creation and its lock.
const PARTIAL_ATTEMPTS: usize = 4;

/// Creates a fresh partial sibling of `path` ([`partial_path`], [`create_new`]) and takes
/// an exclusive lock (`flock`) on it, held until the returned file is closed. The lock is
/// what tells a live writer's partial file from a dead one's ([`remove_stale_partials`]):
/// the kernel drops it when the writer exits, however it exits, which a process id
/// cannot say across containers and hosts.
///
/// A cleaner may remove the file after it is created and before it is locked; the
/// path is then checked to still name the locked file, and a new name is tried if not.
pub fn create_partial(path: &Path, suffix: &str) -> io::Result<(PathBuf, File)> {
    use std::os::unix::fs::MetadataExt;
    for _ in 0..PARTIAL_ATTEMPTS {
        let tmp = partial_path(path, suffix);
        let file = create_new(&tmp)?;
        match file.try_lock() {
            Ok(()) => {}
            // A cleaner holds it and is about to remove it: take another name.
            Err(std::fs::TryLockError::WouldBlock) => continue,
            Err(std::fs::TryLockError::Error(e)) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        }
        let ours = file.metadata()?;
        match std::fs::symlink_metadata(&tmp) {
            Ok(named) if named.dev() == ours.dev() && named.ino() == ours.ino() => {
                return Ok((tmp, file));
            }
            _ => continue,
        }
    }
    Err(io::Error::other(format!(
        "{}: partial files kept disappearing before they could be locked",
        path.display()
    )))
}

/// Whether `partial` is left over from a writer that is gone: true when nobody holds
/// its lock ([`create_partial`]). Taking the lock ourselves (and keeping it while the
/// caller removes the file) is the test; a file we cannot open is not judged stale.
fn lock_if_stale(partial: &Path) -> Option<File> {
    // Read and write: on NFS, flock is emulated with fcntl locks, and an exclusive fcntl
    // lock needs a file open for writing.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(partial)
        .ok()?;
    file.try_lock().ok()?;
    Some(file)
}

/// Removes the partial siblings of `path` ([`partial_path`] names) that killed writers
/// left behind: those whose lock nobody holds. A live writer's file, on this host or
/// another one sharing the folder, in this process or another, is kept.
pub fn remove_stale_partials(path: &Path) {
    let Some(name) = path.file_name() else {
        return;
    };
    let prefix = format!(".{}.partial-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(parent(path)) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        let partial = entry.path();
        // The lock is held across the removal, so that no writer can take the file over
        // in between (writers only create fresh names, see `create_partial`).
        if let Some(_lock) = lock_if_stale(&partial) {
            let _ = std::fs::remove_file(&partial);
        }
    }
}

/// fsyncs a folder, so that a rename or creation inside it survives a power loss.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()
}

/// The folder a path lives in (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Publishes a finished file written elsewhere (by a library that only writes to a path,
/// such as libtorch's safetensors writer) under `path`: fsyncs `tmp`, renames it over
/// `path` and fsyncs the folder. `tmp` should come from [`create_partial`], its file kept
/// open (locked) until this returns. On error `tmp` is removed and `path` is left as it
/// was.
pub fn publish(tmp: &Path, path: &Path) -> io::Result<()> {
    let result = File::open(tmp)
        .and_then(|f| f.sync_all())
        .and_then(|()| std::fs::rename(tmp, path))
        .and_then(|()| sync_dir(parent(path)));
    if result.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    result
}

/// Writes `path` atomically: `fill` writes the content into a fresh, locked hidden
/// sibling ([`create_partial`]), which is flushed, fsynced, renamed over `path`, and the
/// folder fsynced. On any error the sibling is removed and `path` is left as it was.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let (tmp, file) = create_partial(path, "")?;
    let result = (|| {
        let mut out = BufWriter::new(file);
        fill(&mut out)?;
        // The file (and its lock) stays open until it is under its final name.
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir(parent(path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// [`write_atomic_with`] for content already in memory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |out| out.write_all(bytes))
}

/// Swaps two paths in one step (`renameat2` with `RENAME_EXCHANGE`): each name goes on
/// naming something complete throughout, which two renames cannot do for a folder that
/// is replaced. File systems without it (NFS, some FUSE ones) answer `EINVAL`.
pub fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let a = CString::new(a.as_os_str().as_bytes())?;
    let b = CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both are NUL-terminated paths that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Points the symlink `link` at `target` (a path relative to the link's folder), replacing
/// what was there in one rename, then fsyncs the folder: readers see the old target or the
/// new one, never no link.
pub fn replace_symlink(link: &Path, target: &Path) -> io::Result<()> {
    let tmp = partial_path(link, "");
    std::os::unix::fs::symlink(target, &tmp)?;
    let result = std::fs::rename(&tmp, link).and_then(|()| sync_dir(parent(link)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_files_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let failed = write_atomic_with(&path, |out| {
            out.write_all(b"half")?;
            Err(io::Error::other("disk on fire"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"second", "untouched");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "no partial file left: {names:?}");
    }

    #[test]
    fn partial_names_are_unique_hidden_and_start_with_the_pid() {
        let p = Path::new("/x/y/tokens.vqt.safetensors");
        let (a, b) = (partial_path(p, ".L0"), partial_path(p, ".L0"));
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        let rest = name
            .strip_prefix(".tokens.vqt.safetensors.partial-")
            .unwrap();
        assert_eq!(
            rest.split('-').next().unwrap(),
            std::process::id().to_string()
        );
        assert!(name.ends_with(".L0"));
        assert_eq!(a.parent(), p.parent());
    }

    #[test]
    fn two_opens_of_one_file_in_one_process_conflict() {
        // flock belongs to the open file description, not the process: what lets one
        // test process (and one vqtokenize with several workers) stand for two writers.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let a = File::create(&path).unwrap();
        let b = File::open(&path).unwrap();
        a.try_lock().unwrap();
        assert!(matches!(
            b.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        drop(a);
        b.try_lock().unwrap();
    }

    #[test]
    fn stale_partials_are_told_by_their_lock_not_their_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.vqt.safetensors");
        let at = |name: &str| dir.path().join(name);
        // Written by this process and still open: live, though the pid is ours.
        let (ours, _ours_open) = create_partial(&path, ".L0").unwrap();
        // A writer on another host (its pid means nothing here), holding its lock.
        let remote = at(".a.vqt.safetensors.partial-4999999-otherhost-00ff00ff00ff00ff");
        std::fs::write(&remote, b"x").unwrap();
        let remote_open = File::open(&remote).unwrap();
        remote_open.try_lock().unwrap();
        // A killed writer whose pid is now someone else's (1 always runs): stale.
        let orphan = at(".a.vqt.safetensors.partial-1-somehost-0123456789abcdef");
        std::fs::write(&orphan, b"x").unwrap();
        // Another output's partial file is not this one's to judge.
        let other = at(".b.vqt.safetensors.partial-4999999-otherhost-00ff00ff00ff00ff");
        std::fs::write(&other, b"x").unwrap();
        remove_stale_partials(&path);
        assert!(ours.exists() && remote.exists() && other.exists());
        assert!(!orphan.exists());
        // Once the writer is gone, its file is stale.
        drop(remote_open);
        remove_stale_partials(&path);
        assert!(!remote.exists() && ours.exists());
    }

    #[test]
    fn create_partial_makes_a_fresh_locked_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        let (tmp, _file) = create_partial(&path, ".L1").unwrap();
        assert!(tmp.to_string_lossy().ends_with(".L1"));
        let other = File::open(&tmp).unwrap();
        assert!(other.try_lock().is_err(), "the writer holds the lock");
    }

    #[test]
    fn create_new_refuses_existing_files_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"keep").unwrap();
        assert!(create_new(&target).is_err());
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(create_new(&link).is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    }

    #[test]
    fn exchange_swaps_folders() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        for (d, content) in [(&a, "old"), (&b, "new")] {
            std::fs::create_dir(d).unwrap();
            std::fs::write(d.join("f"), content).unwrap();
        }
        exchange(&b, &a).unwrap();
        assert_eq!(std::fs::read_to_string(a.join("f")).unwrap(), "new");
        assert_eq!(std::fs::read_to_string(b.join("f")).unwrap(), "old");
    }

    #[test]
    fn symlinks_are_replaced_in_one_step() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("latest");
        replace_symlink(&link, Path::new("step_1")).unwrap();
        replace_symlink(&link, Path::new("step_2")).unwrap();
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("step_2"));
    }
}
