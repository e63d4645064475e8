//! Many inputs: expanding files, directories, globs and manifests into jobs, keeping this
//! shard's ([`crate::shard`]), skipping outputs that are already valid (resume after a
//! kill), running jobs on worker threads that share one encoder session, and never letting
//! one bad input stop the rest.
//!
//! Several processes may run over one output tree at once (overlapping shards, two runs
//! without shards, a requeued task beside its old self): a job is only looked at under the
//! claim of its output ([`vqtok_core::claim`]). A job another process holds is put back
//! and done last, waiting for the claim; by then it is normally up to date, so every input
//! is encoded once and every process ends knowing the state of all its jobs.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use vqtok_video::collect_sources;

use crate::encode::{EncodeOptions, Encoded, encode_video, mtime_unix_s};
use crate::encoder::{Encoder, Precision};
use crate::error::{InferError, Result};
use crate::progress::FileProgress;
use crate::shard::Shard;
use crate::tokens::{TOKEN_SUFFIX, TokenFile};
use vqtok_core::claim::{Wait, claim};
use vqtok_core::exit::Blame;
use vqtok_runtime::ModelFolder;

/// Extensions picked up when a directory or glob is given (explicit files are taken
/// whatever their extension).
pub const VIDEO_EXTENSIONS: [&str; 9] = [
    "mp4", "webm", "avi", "mov", "mkv", "m4v", "mpg", "mpeg", "gif",
];

/// One input file (or a manifest's time segment of one) and its token file.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub input: PathBuf,
    pub output: PathBuf,
    /// The output's path relative to the output folder (whether or not there is one): what
    /// the shard assignment hashes and the index names.
    pub key: String,
    /// Manifest segment `[start, end)` in seconds.
    pub segment: Option<(f64, Option<f64>)>,
}

/// Jobs, and the inputs that could not even be listed (with the reason).
#[derive(Debug, Default)]
pub struct Plan {
    pub jobs: Vec<Job>,
    pub failed: Vec<(String, String)>,
}

impl Plan {
    /// What `shard` owns: its jobs, and its share of the unlisted inputs (by their spec),
    /// so that each is reported by exactly one shard.
    pub fn only(self, shard: Shard) -> Plan {
        Plan {
            jobs: self
                .jobs
                .into_iter()
                .filter(|j| shard.owns(&j.key))
                .collect(),
            failed: self
                .failed
                .into_iter()
                .filter(|(spec, _)| shard.owns(spec))
                .collect(),
        }
    }
}

/// Whether `-o` names one token file (`*.safetensors`) rather than an output folder.
pub fn names_one_file(out: &Path) -> bool {
    out.to_string_lossy().ends_with(".safetensors")
}

/// A relative path that stays inside the output folder, or `None`.
fn safe_relative(key: &str) -> Option<PathBuf> {
    let p = Path::new(key);
    p.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| p.to_path_buf())
}

/// `clip.mp4` → `clip.vqt.safetensors` (`clip.2.5-7s.vqt.safetensors` for a segment).
fn token_name(rel: &Path, segment: Option<(f64, Option<f64>)>) -> PathBuf {
    let stem = rel
        .file_stem()
        .map_or_else(|| "tokens".into(), |s| s.to_string_lossy().into_owned());
    let seg = match segment {
        None => String::new(),
        Some((a, Some(b))) => format!(".{a}-{b}s"),
        Some((a, None)) => format!(".{a}-s"),
    };
    rel.with_file_name(format!("{stem}{seg}{TOKEN_SUFFIX}"))
}

/// Expands `specs` (files, directories, globs, `.txt` / `.jsonl` manifests) into jobs.
///
/// Outputs: with no `out`, next to each input; with `out` a folder, under it at the
/// input's path relative to the directory / glob / manifest that named it; with `out`
/// a `*.safetensors` file, exactly there (one input only).
pub fn plan(specs: &[String], out: Option<&Path>) -> Result<Plan> {
    let exts: Vec<String> = VIDEO_EXTENSIONS.iter().map(|e| e.to_string()).collect();
    let out_file = out.filter(|o| names_one_file(o));
    let mut plan = Plan::default();
    let mut owners: HashMap<PathBuf, PathBuf> = HashMap::new();
    for spec in specs {
        let items = match collect_sources(std::slice::from_ref(spec), &exts) {
            Ok(items) => items,
            Err(e) => {
                plan.failed.push((spec.clone(), e.to_string()));
                continue;
            }
        };
        for item in items {
            let segment = match (item.start_s, item.end_s) {
                (None, None) => None,
                (s, e) => Some((s.unwrap_or(0.0), e)),
            };
            let rel = safe_relative(&item.split_key)
                .unwrap_or_else(|| PathBuf::from(item.path.file_name().unwrap_or_default()));
            let key = token_name(&rel, segment);
            let output = match (out_file, out) {
                (Some(f), _) => f.to_path_buf(),
                (None, Some(dir)) => dir.join(&key),
                (None, None) => token_name(&item.path, segment),
            };
            if let Some(first) = owners.get(&output) {
                plan.failed.push((
                    item.path.display().to_string(),
                    format!(
                        "its output {} is already the output of {}",
                        output.display(),
                        first.display()
                    ),
                ));
                continue;
            }
            owners.insert(output.clone(), item.path.clone());
            plan.jobs.push(Job {
                input: item.path,
                output,
                key: key.to_string_lossy().into_owned(),
                segment,
            });
        }
    }
    if out_file.is_some() && plan.jobs.len() + plan.failed.len() > 1 {
        return Err(InferError::invalid(
            "out",
            format!(
                "{} names one token file, but the inputs name {} videos; give a folder",
                out_file.unwrap_or(Path::new("")).display(),
                plan.jobs.len() + plan.failed.len()
            ),
        ));
    }
    Ok(plan)
}

/// The encode options of one job: a manifest segment narrows the selection.
pub fn job_options(job: &Job, options: &EncodeOptions) -> EncodeOptions {
    let mut o = options.clone();
    if let Some((start, end)) = job.segment {
        let sel = &mut o.selection;
        let from = start + sel.start_s;
        let until = match (end, sel.duration_s) {
            (Some(e), Some(d)) => Some(e.min(from + d)),
            (Some(e), None) => Some(e),
            (None, d) => d.map(|d| from + d),
        };
        sel.start_s = from;
        sel.duration_s = until.map(|u| (u - from).max(0.0));
    }
    o
}

/// What an up-to-date token file holds (for the summary and the corpus index).
#[derive(Debug, Clone, PartialEq)]
pub struct Existing {
    pub frames: usize,
    pub tokens: u64,
    pub width: usize,
    pub height: usize,
}

/// Why `job.output` must be (re)made, or what it holds when it is a complete token file
/// of this model, for this very source file (size and mtime), made with these options and
/// this precision.
///
/// The engine does not count: both run the same weights on the same normalised pixels
/// and agree on all but ≤ 0.1 % of tokens (float near-ties), so a corpus half done by
/// one engine is finished by the other, not redone; each file's metadata says which
/// engine made it. bf16 moves more tokens than that, so a file of another precision is
/// remade.
pub fn check_up_to_date(
    job: &Job,
    model: &ModelFolder,
    options: &EncodeOptions,
    precision: Precision,
) -> std::result::Result<Existing, String> {
    if !job.output.exists() {
        return Err("no output yet".into());
    }
    let file = TokenFile::open(&job.output).map_err(|e| e.to_string())?;
    let m = &file.meta;
    if m.model_sha256 != model.id() {
        return Err(format!("made by another model ({})", m.model_sha256));
    }
    let fs = std::fs::metadata(&job.input).map_err(|e| e.to_string())?;
    if m.source.bytes != fs.len() || m.source.mtime_unix_s != mtime_unix_s(&fs) {
        return Err("the source changed".into());
    }
    let sel = &options.selection;
    let s = &m.sampling;
    let slot_fps = sel.fps.unwrap_or(m.source.fps);
    if s.start_s != sel.start_s
        || s.duration_s != sel.duration_s
        || s.stride != sel.stride
        || s.max_frames != sel.max_frames
        || s.slot_fps != slot_fps
    {
        return Err("made with another frame selection".into());
    }
    if m.fit != options.framing.fit || m.size != options.framing.size.to_string() {
        return Err("made with another size or fit".into());
    }
    if m.frames() == 0 {
        return Err("holds no frames".into());
    }
    if m.precision != precision {
        return Err(format!("made in {}", m.precision));
    }
    let (width, height) = (m.geometry.out_width, m.geometry.out_height);
    Ok(Existing {
        frames: m.frames(),
        tokens: (m.frames() * model.tokens_per_frame(height, width)) as u64,
        width,
        height,
    })
}

/// How one job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Encoded(Encoded),
    /// A valid output already existed (made by an earlier run or another process).
    UpToDate(Existing),
    Failed {
        message: String,
        /// A short name for the kind of failure ([`InferError::reason`]), for counting.
        reason: String,
        user_error: bool,
    },
}

impl Outcome {
    /// `encoded`, `up_to_date` or `failed`: the word the run's report and the corpus
    /// index give it.
    pub fn status(&self) -> &'static str {
        match self {
            Outcome::Encoded(_) => "encoded",
            Outcome::UpToDate(_) => "up_to_date",
            Outcome::Failed { .. } => "failed",
        }
    }

    /// What the job's token file holds, when it has one (encoded now or before).
    pub fn held(&self) -> Option<Existing> {
        match self {
            Outcome::Encoded(e) => Some(Existing {
                frames: e.frames,
                tokens: e.tokens,
                width: e.width,
                height: e.height,
            }),
            Outcome::UpToDate(e) => Some(e.clone()),
            Outcome::Failed { .. } => None,
        }
    }

    fn failed(e: &InferError) -> Outcome {
        Outcome::Failed {
            message: e.to_string(),
            reason: e.reason(),
            user_error: e.is_user_error(),
        }
    }
}

/// Progress of a whole run: a per-file hook for each job, and its end.
pub trait Reporter: Sync {
    fn begin(&self, job: &Job) -> Box<dyn FileProgress + '_>;
    fn end(&self, job: &Job, outcome: &Outcome);
}

#[derive(Debug, Clone, PartialEq)]
pub struct BatchOptions {
    pub encode: EncodeOptions,
    /// Files encoded at the same time (each decodes on its own thread; inference takes
    /// turns on the one session).
    pub jobs: usize,
    /// Re-encode even when a valid output exists.
    pub force: bool,
}

/// Runs every job; the results are in job order.
///
/// Jobs whose output another process holds are done after all others, waiting for it
/// (see the module doc).
pub fn run(
    model: &ModelFolder,
    encoder: &dyn Encoder,
    jobs: &[Job],
    options: &BatchOptions,
    reporter: &dyn Reporter,
) -> Vec<Outcome> {
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new(vec![None; jobs.len()]);
    let busy: Mutex<Vec<usize>> = Mutex::new(Vec::new());
    let first: Vec<usize> = (0..jobs.len()).collect();
    for_each_job(&first, options.jobs, |i| {
        match run_job(model, encoder, &jobs[i], options, reporter, Wait::No) {
            Some(outcome) => store(&results, i, outcome),
            None => lock(&busy).push(i),
        }
    });
    let mut later = lock(&busy).clone();
    later.sort_unstable();
    for_each_job(&later, options.jobs, |i| {
        let outcome = run_job(model, encoder, &jobs[i], options, reporter, Wait::Yes)
            .unwrap_or_else(|| Outcome::failed(&InferError::Internal("claim lost".into())));
        store(&results, i, outcome);
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|o| {
            o.unwrap_or_else(|| {
                Outcome::failed(&InferError::Internal(
                    "a worker stopped before this file".into(),
                ))
            })
        })
        .collect()
}

/// The lock's content even if a worker panicked holding it (results stay meaningful).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn store(results: &Mutex<Vec<Option<Outcome>>>, i: usize, outcome: Outcome) {
    lock(results)[i] = Some(outcome);
}

/// Calls `work` for each of `indices` on up to `workers` threads.
fn for_each_job(indices: &[usize], workers: usize, work: impl Fn(usize) + Sync) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..workers.clamp(1, indices.len().max(1)) {
            s.spawn(|| {
                while let Some(&i) = indices.get(next.fetch_add(1, Ordering::Relaxed)) {
                    work(i);
                }
            });
        }
    });
}

/// One job under the claim of its output; `None` when another writer holds the claim and
/// `wait` is [`Wait::No`].
fn run_job(
    model: &ModelFolder,
    encoder: &dyn Encoder,
    job: &Job,
    options: &BatchOptions,
    reporter: &dyn Reporter,
    wait: Wait,
) -> Option<Outcome> {
    let opts = job_options(job, &options.encode);
    let claimed = job
        .output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| claim(&job.output, wait))
        .map_err(|e| InferError::io(vqtok_core::claim::claim_path(&job.output), e));
    let outcome = match claimed {
        Ok(None) => return None,
        Err(e) => Outcome::failed(&e),
        Ok(Some(_claim)) => {
            vqtok_core::fs::remove_stale_partials(&job.output);
            match check_up_to_date(job, model, &opts, encoder.precision()) {
                Ok(existing) if !options.force => Outcome::UpToDate(existing),
                _ => {
                    let progress = reporter.begin(job);
                    let r =
                        encode_video(model, encoder, &job.input, &job.output, &opts, &*progress);
                    progress.finish();
                    match r {
                        Ok(e) => Outcome::Encoded(e),
                        Err(e) => Outcome::failed(&e),
                    }
                }
            }
        }
    };
    reporter.end(job, &outcome);
    Some(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::Selection;

    #[test]
    fn outputs_go_next_to_inputs_or_mirror_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        for f in ["a/x.mp4", "a/b/y.mkv", "a/notes.txt"] {
            std::fs::write(dir.path().join(f), b"").unwrap();
        }
        let spec = vec![dir.path().join("a").display().to_string()];
        let p = plan(&spec, None).unwrap();
        let outs: Vec<_> = p.jobs.iter().map(|j| j.output.clone()).collect();
        assert_eq!(
            outs,
            vec![
                dir.path().join("a/b/y.vqt.safetensors"),
                dir.path().join("a/x.vqt.safetensors")
            ]
        );
        let out = dir.path().join("tokens");
        let p = plan(&spec, Some(&out)).unwrap();
        assert_eq!(p.jobs[0].output, out.join("b/y.vqt.safetensors"));
        assert_eq!(p.jobs[1].output, out.join("x.vqt.safetensors"));
        // A missing input is reported, the rest planned.
        let mut specs = spec.clone();
        specs.push(dir.path().join("gone.mp4").display().to_string());
        let p = plan(&specs, Some(&out)).unwrap();
        assert_eq!((p.jobs.len(), p.failed.len()), (2, 1));
        assert!(p.failed[0].1.contains("gone.mp4"), "{:?}", p.failed);
        // One output file for two videos is refused.
        let e = plan(&spec, Some(&dir.path().join("t.vqt.safetensors"))).unwrap_err();
        assert!(!e.to_string().is_empty() && e.is_user_error());
    }

    #[test]
    fn manifest_segments_narrow_the_selection_and_name_the_output() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("v.mp4"), b"").unwrap();
        let manifest = dir.path().join("list.jsonl");
        std::fs::write(
            &manifest,
            "{\"path\": \"v.mp4\", \"start\": 2.5, \"end\": 7}\n{\"path\": \"v.mp4\"}\n",
        )
        .unwrap();
        let p = plan(&[manifest.display().to_string()], None).unwrap();
        assert_eq!(p.jobs.len(), 2, "{:?}", p.failed);
        assert_eq!(
            p.jobs[0].output,
            dir.path().join("v.2.5-7s.vqt.safetensors")
        );
        let base = EncodeOptions {
            selection: Selection {
                start_s: 1.0,
                duration_s: Some(10.0),
                ..Selection::default()
            },
            ..EncodeOptions::default()
        };
        let o = job_options(&p.jobs[0], &base);
        assert_eq!(o.selection.start_s, 3.5);
        assert_eq!(o.selection.duration_s, Some(3.5));
        assert_eq!(job_options(&p.jobs[1], &base), base);
    }
}
