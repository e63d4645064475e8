//! Progress reporting: the hooks the pipelines call, and indicatif bars showing frames/s,
//! tokens/s and the device that runs the model.

use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use vqtok_runtime::Provider;

use crate::batch::{Job, Outcome, Reporter};
use crate::summary::outcome_line;

/// Per-file progress hooks (called from the thread that runs the model).
pub trait FileProgress: Sync {
    /// Work on the file begins; `expected_frames` when the container says.
    fn start(&self, expected_frames: Option<u64>);
    /// `frames` more frames went through the model.
    fn advance(&self, frames: usize);
    /// The file is done (or failed): remove the bar.
    fn finish(&self) {}
}

/// Reports nothing (library callers, tests, `--quiet`).
pub struct NoProgress;

impl FileProgress for NoProgress {
    fn start(&self, _: Option<u64>) {}
    fn advance(&self, _: usize) {}
}

/// The CPU model name from /proc/cpuinfo.
pub fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The NVIDIA driver's name for GPU `index` (/proc/driver/nvidia), if any.
pub fn gpu_name(index: i32) -> Option<String> {
    let dir = std::fs::read_dir("/proc/driver/nvidia/gpus").ok()?;
    let mut gpus: Vec<_> = dir.flatten().map(|e| e.path()).collect();
    gpus.sort();
    let info = std::fs::read_to_string(gpus.get(usize::try_from(index).ok()?)?.join("information"))
        .ok()?;
    info.lines()
        .find(|l| l.starts_with("Model:"))
        .map(|l| l["Model:".len()..].trim().to_string())
}

/// One line naming where the model runs, e.g. `CPU: AMD EPYC (2 threads)`.
pub fn device_description(provider: Provider, threads: Option<usize>) -> String {
    match provider {
        Provider::Cpu => {
            let n = threads.map_or_else(
                || {
                    std::thread::available_parallelism()
                        .map_or_else(|_| "?".into(), |n| n.to_string())
                },
                |t| t.to_string(),
            );
            format!("CPU: {} ({n} threads)", cpu_name())
        }
        Provider::Cuda { device } => format!(
            "CUDA:{device}: {}",
            gpu_name(device).unwrap_or_else(|| "unknown GPU".into())
        ),
    }
}

/// indicatif bars: one per file in flight, and an overall bar for several files.
pub struct Bars {
    multi: MultiProgress,
    overall: Option<ProgressBar>,
    tokens_per_frame: usize,
}

impl Bars {
    /// `files` in total; `visible` false draws nothing (`--quiet`; indicatif also draws
    /// nothing when stderr is not a terminal).
    pub fn new(files: usize, tokens_per_frame: usize, visible: bool) -> Bars {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let overall = (files > 1).then(|| {
            let bar = multi.add(ProgressBar::new(files as u64));
            bar.set_style(
                ProgressStyle::with_template("files {pos}/{len} [{wide_bar}] {elapsed} ETA {eta}")
                    .expect("valid template"),
            );
            bar
        });
        Bars {
            multi,
            overall,
            tokens_per_frame,
        }
    }

    /// A bar for one file, labelled `name`.
    pub fn file(&self, name: &str) -> FileBar {
        let bar = self.multi.add(ProgressBar::no_length());
        bar.set_prefix(name.to_string());
        FileBar {
            bar,
            started: Instant::now(),
            tokens_per_frame: self.tokens_per_frame,
        }
    }

    /// Prints a line above the bars (or plainly when they are hidden).
    pub fn println(&self, line: &str) {
        if self.multi.is_hidden() {
            eprintln!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }

    /// One more file finished.
    pub fn file_done(&self) {
        if let Some(b) = &self.overall {
            b.inc(1);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.overall {
            b.finish_and_clear();
        }
    }
}

/// The bar of one file.
pub struct FileBar {
    bar: ProgressBar,
    started: Instant,
    tokens_per_frame: usize,
}

impl FileProgress for FileBar {
    fn start(&self, expected_frames: Option<u64>) {
        let template = match expected_frames {
            Some(n) => {
                self.bar.set_length(n);
                "{prefix:.bold} [{bar:30}] {pos}/{len} frames, {msg}, ETA {eta}"
            }
            None => "{prefix:.bold} {spinner} {pos} frames, {msg}",
        };
        self.bar
            .set_style(ProgressStyle::with_template(template).expect("valid template"));
    }

    fn advance(&self, frames: usize) {
        self.bar.inc(frames as u64);
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let fps = self.bar.position() as f64 / secs;
        self.bar.set_message(format!(
            "{fps:.2} frames/s, {:.0} tokens/s",
            fps * self.tokens_per_frame as f64
        ));
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The short name of a file for its bar.
fn short(path: &std::path::Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// A batch run's [`Reporter`]: a bar per file in flight and a line per finished file
/// (`quiet`: no bars, and only failures get a line).
pub struct BarReporter<'a> {
    pub bars: &'a Bars,
    pub quiet: bool,
}

impl Reporter for BarReporter<'_> {
    fn begin(&self, job: &Job) -> Box<dyn FileProgress + '_> {
        if self.quiet {
            Box::new(NoProgress)
        } else {
            Box::new(self.bars.file(&short(&job.input)))
        }
    }

    fn end(&self, job: &Job, outcome: &Outcome) {
        self.bars.file_done();
        if let Some(line) = outcome_line(job, outcome, self.quiet) {
            self.bars.println(&line);
        }
    }
}

/// Peak resident memory of this process so far (VmHWM), in MB; `None` off Linux.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}
