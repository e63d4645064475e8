//! Where the files come from: directories (recursive, by extension), globs, and manifests
//! (`.txt`: one path per line; `.jsonl`: `{"path": …, "start": s, "end": s}` per line), plus
//! the stable train/val split.
//!
//! Every item carries a `split_key`: its path relative to the source that named it (the
//! directory, the glob's literal prefix, or the manifest's folder, as written there). The split
//! hashes that key, so moving a dataset or adding files never moves a file between splits.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, VideoError};

/// One file (or a time segment of one) to draw clips from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaItem {
    pub path: PathBuf,
    /// Segment start in seconds (manifests only).
    pub start_s: Option<f64>,
    /// Segment end in seconds, exclusive.
    pub end_s: Option<f64>,
    pub split_key: String,
}

/// Expands source specs into items, in a deterministic order (each source sorted or in
/// manifest order, sources in the given order, exact duplicates dropped).
pub fn collect_sources(specs: &[String], extensions: &[String]) -> Result<Vec<MediaItem>> {
    let exts: Vec<String> = extensions
        .iter()
        .map(|e| e.trim_start_matches('.').to_lowercase())
        .collect();
    let mut out = Vec::new();
    for spec in specs {
        let before = out.len();
        if spec.contains(['*', '?', '[']) {
            glob_items(spec, &mut out)?;
        } else {
            let p = Path::new(spec);
            let meta = std::fs::metadata(p).map_err(|e| VideoError::Source {
                source_spec: spec.clone(),
                detail: format!("cannot read it: {e}"),
            })?;
            if meta.is_dir() {
                let mut files = Vec::new();
                let mut seen = HashSet::new();
                walk(p, &exts, &mut files, &mut seen).map_err(|e| VideoError::Source {
                    source_spec: spec.clone(),
                    detail: e.to_string(),
                })?;
                out.extend(files.into_iter().map(|f| {
                    let key = rel_key(&f, p);
                    item(f, key)
                }));
            } else {
                match extension(p).as_deref() {
                    Some("txt") => txt_manifest(p, &mut out)?,
                    Some("jsonl") => jsonl_manifest(p, &mut out)?,
                    _ => {
                        let key = p
                            .file_name()
                            .map_or_else(|| spec.clone(), |n| n.to_string_lossy().into_owned());
                        out.push(item(p.to_path_buf(), key));
                    }
                }
            }
        }
        if out.len() == before {
            return Err(VideoError::Source {
                source_spec: spec.clone(),
                detail: format!("names no media files (extensions: {})", exts.join(", ")),
            });
        }
    }
    let mut seen = HashSet::new();
    out.retain(|i| {
        seen.insert((
            i.path.clone(),
            i.start_s.map(f64::to_bits),
            i.end_s.map(f64::to_bits),
        ))
    });
    Ok(out)
}

/// Position of `key` in [0, 1): the first 8 bytes of its SHA-256. Items below `val_fraction`
/// are validation items.
pub fn split_position(key: &str) -> f64 {
    (vqtok_core::hash::stable_u64(key) >> 11) as f64 / (1u64 << 53) as f64
}

fn item(path: PathBuf, split_key: String) -> MediaItem {
    MediaItem {
        path,
        start_s: None,
        end_s: None,
        split_key,
    }
}

fn extension(p: &Path) -> Option<String> {
    p.extension().map(|e| e.to_string_lossy().to_lowercase())
}

/// `/`-separated path of `f` under `root`.
fn rel_key(f: &Path, root: &Path) -> String {
    let rel = f.strip_prefix(root).unwrap_or(f);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Sorted recursive walk; follows directory links once (cycles are cut by canonical path).
fn walk(
    dir: &Path,
    exts: &[String],
    out: &mut Vec<PathBuf>,
    seen: &mut HashSet<PathBuf>,
) -> std::io::Result<()> {
    if !seen.insert(std::fs::canonicalize(dir)?) {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        // Follows links; a dangling link is neither and is left out.
        if p.is_dir() {
            walk(&p, exts, out, seen)?;
        } else if p.is_file() && extension(&p).is_some_and(|e| exts.contains(&e)) {
            out.push(p);
        }
    }
    Ok(())
}

fn glob_items(pattern: &str, out: &mut Vec<MediaItem>) -> Result<()> {
    let err = |detail: String| VideoError::Source {
        source_spec: pattern.to_string(),
        detail,
    };
    let paths = glob::glob(pattern).map_err(|e| err(format!("bad glob: {e}")))?;
    // The literal directory prefix is the root for split keys.
    let root: PathBuf = Path::new(pattern)
        .components()
        .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
        .collect();
    for p in paths {
        let p = p.map_err(|e| err(e.to_string()))?;
        if p.is_file() {
            let key = rel_key(&p, &root);
            out.push(item(p, key));
        }
    }
    Ok(())
}

fn manifest_dir(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

fn read_manifest(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| VideoError::Source {
        source_spec: path.display().to_string(),
        detail: format!("cannot read manifest: {e}"),
    })
}

/// `.txt`: one path per line; blank lines and `#` comments skipped; relative to its folder.
fn txt_manifest(path: &Path, out: &mut Vec<MediaItem>) -> Result<()> {
    let dir = manifest_dir(path);
    for line in read_manifest(path)?.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(item(dir.join(line), line.to_string()));
    }
    Ok(())
}

#[derive(Deserialize)]
struct JsonlEntry {
    path: String,
    start: Option<f64>,
    end: Option<f64>,
}

/// `.jsonl`: `{"path": "a.mp4", "start": 1.5, "end": 4.0}`; other keys are ignored (manifests
/// often carry captions). Malformed lines are errors naming file and line.
fn jsonl_manifest(path: &Path, out: &mut Vec<MediaItem>) -> Result<()> {
    let dir = manifest_dir(path);
    for (i, line) in read_manifest(path)?.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |detail: String| VideoError::Manifest {
            path: path.to_path_buf(),
            line: i + 1,
            detail,
        };
        let e: JsonlEntry = serde_json::from_str(line).map_err(|e| {
            bad(format!(
                "expected {{\"path\": …, \"start\"?: s, \"end\"?: s}}: {e}"
            ))
        })?;
        if let Some(s) = e.start
            && !(s.is_finite() && s >= 0.0)
        {
            return Err(bad(format!("`start` must be ≥ 0 seconds, got {s}")));
        }
        if let Some(end) = e.end
            && !(end.is_finite() && end > e.start.unwrap_or(0.0))
        {
            return Err(bad(format!("`end` must be after `start`, got {end}")));
        }
        out.push(MediaItem {
            path: dir.join(&e.path),
            start_s: e.start,
            end_s: e.end,
            split_key: e.path,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }

    fn exts() -> Vec<String> {
        vec!["mp4".into(), "png".into()]
    }

    #[test]
    fn directory_walk_is_sorted_recursive_and_filtered() {
        let t = tempfile::tempdir().unwrap();
        for f in ["b.mp4", "a/z.MP4", "a/y.txt", "c/d/e.png", "0.mkv"] {
            touch(&t.path().join(f));
        }
        let items = collect_sources(&[t.path().display().to_string()], &exts()).unwrap();
        let keys: Vec<&str> = items.iter().map(|i| i.split_key.as_str()).collect();
        assert_eq!(keys, vec!["a/z.MP4", "b.mp4", "c/d/e.png"]);
        assert_eq!(items[1].path, t.path().join("b.mp4"));
    }

    #[test]
    fn glob_and_manifests() {
        let t = tempfile::tempdir().unwrap();
        for f in ["v/1.mp4", "v/2.mp4", "v/x.png"] {
            touch(&t.path().join(f));
        }
        let pat = format!("{}/v/*.mp4", t.path().display());
        let items = collect_sources(&[pat], &exts()).unwrap();
        assert_eq!(
            items
                .iter()
                .map(|i| i.split_key.as_str())
                .collect::<Vec<_>>(),
            ["1.mp4", "2.mp4"]
        );

        let txt = t.path().join("list.txt");
        std::fs::write(&txt, "# comment\nv/2.mp4\n\nv/x.png\n").unwrap();
        let jsonl = t.path().join("list.jsonl");
        std::fs::write(
            &jsonl,
            "{\"path\": \"v/1.mp4\", \"start\": 0.5, \"end\": 2, \"caption\": \"hi\"}\n",
        )
        .unwrap();
        let specs = [
            txt.display().to_string(),
            jsonl.display().to_string(),
            txt.display().to_string(),
        ];
        let items = collect_sources(&specs, &exts()).unwrap();
        // The repeated manifest adds nothing (exact duplicates dropped).
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].path, t.path().join("v/2.mp4"));
        assert_eq!((items[2].start_s, items[2].end_s), (Some(0.5), Some(2.0)));
        assert_eq!(items[2].split_key, "v/1.mp4");
    }

    #[test]
    fn bad_sources_are_errors_that_name_them() {
        let t = tempfile::tempdir().unwrap();
        let missing = t.path().join("nope").display().to_string();
        let e = collect_sources(std::slice::from_ref(&missing), &exts())
            .unwrap_err()
            .to_string();
        assert!(e.contains(&missing), "{e}");
        let jsonl = t.path().join("m.jsonl");
        std::fs::write(
            &jsonl,
            "{\"path\": \"a.mp4\"}\n{\"path\": \"b.mp4\", \"start\": 3, \"end\": 1}\n",
        )
        .unwrap();
        let e = collect_sources(&[jsonl.display().to_string()], &exts())
            .unwrap_err()
            .to_string();
        assert!(e.contains("m.jsonl:2") && e.contains("end"), "{e}");
        std::fs::write(&jsonl, "not json\n").unwrap();
        let e = collect_sources(&[jsonl.display().to_string()], &exts())
            .unwrap_err()
            .to_string();
        assert!(e.contains("m.jsonl:1"), "{e}");
        let empty = t.path().join("emptydir");
        std::fs::create_dir(&empty).unwrap();
        assert!(collect_sources(&[empty.display().to_string()], &exts()).is_err());
    }

    #[test]
    fn split_position_is_stable_and_uniform() {
        // Pinned (Python: sha256, first 8 bytes big-endian, top 53 bits / 2^53): changing the
        // hash would silently move files between train and val.
        assert_eq!(split_position("clips/a.mp4"), 0.7399374120375395);
        let below = (0..2000)
            .filter(|i| split_position(&format!("v{i}.mp4")) < 0.1)
            .count();
        // Binomial(2000, 0.1): mean 200, sd 13.4; ±60 is > 4 sd.
        assert!((140..260).contains(&below), "{below}");
    }
}
