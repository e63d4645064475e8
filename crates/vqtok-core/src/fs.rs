//! Files that appear whole or not at all. Every file vqtok publishes (checkpoints, token
//! files, manifests, ONNX graphs, pictures) is written through a hidden sibling with a
//! name no other writer can pick, fsynced, renamed over its final name, and its folder
//! fsynced: a reader never sees half a file under the final name, and a crash (even
//! `kill -9`) leaves at most a hidden sibling behind.

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

/// This machine's host name (empty if it has none).
fn host_name() -> String {
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
/// `.NAME.partial-PID-HOST-RANDOM` followed by `suffix`. The process id comes first so
/// that tools can tell whose it is; host and random part keep writers on other machines
/// (a shared file system) and other writers in this process apart.
pub fn partial_path(path: &Path, suffix: &str) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(
        ".{name}.partial-{}-{}-{:016x}{suffix}",
        std::process::id(),
        host_name(),
        random_u64()
    ))
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
/// `path` and fsyncs the folder. `tmp` should come from [`partial_path`]. On error `tmp`
/// is removed and `path` is left as it was.
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

/// Writes `path` atomically: `fill` writes the content into a fresh hidden sibling
/// ([`partial_path`], created with [`create_new`]), which is flushed and [`publish`]ed.
/// On any error the sibling is removed and `path` is left as it was.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = partial_path(path, "");
    let written = (|| {
        let mut out = BufWriter::new(create_new(&tmp)?);
        fill(&mut out)?;
        out.into_inner().map_err(|e| e.into_error())?;
        Ok(())
    })();
    match written {
        Ok(()) => publish(&tmp, path),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// [`write_atomic_with`] for content already in memory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |out| out.write_all(bytes))
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
    fn symlinks_are_replaced_in_one_step() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("latest");
        replace_symlink(&link, Path::new("step_1")).unwrap();
        replace_symlink(&link, Path::new("step_2")).unwrap();
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("step_2"));
    }
}
