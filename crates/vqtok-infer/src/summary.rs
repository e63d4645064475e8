//! What an encode run reports: a line per file and one for the run (for people), the same
//! as JSON (for scripts), and the exit status the run ends with.

use std::path::PathBuf;

use serde::Serialize;
use vqtok_runtime::ModelFolder;

use crate::batch::{Job, Outcome, Plan};
use crate::progress::peak_rss_mb;

/// One input of the run.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub input: PathBuf,
    /// Absent for an input that could not even be listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<PathBuf>,
    /// `encoded`, `up_to_date` or `failed`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// `[width, height]` of the tokenized frames.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<[usize; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub infer_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether a failure is the input's fault (decides the exit status of one input).
    #[serde(skip)]
    user_error: bool,
}

impl FileReport {
    /// A report with `status` and nothing else known yet.
    fn bare(input: PathBuf, output: Option<PathBuf>, status: &'static str) -> FileReport {
        FileReport {
            input,
            output,
            status,
            frames: None,
            tokens: None,
            size: None,
            seconds: None,
            infer_seconds: None,
            wait_seconds: None,
            error: None,
            user_error: false,
        }
    }

    fn new(job: &Job, outcome: &Outcome) -> FileReport {
        let mut r = FileReport::bare(
            job.input.clone(),
            Some(job.output.clone()),
            outcome.status(),
        );
        if let Some(held) = outcome.held() {
            r.frames = Some(held.frames);
            r.tokens = Some(held.tokens);
            r.size = Some([held.width, held.height]);
        }
        match outcome {
            Outcome::Encoded(e) => {
                r.seconds = Some(e.seconds);
                r.infer_seconds = Some(e.infer_seconds);
                r.wait_seconds = Some(e.wait_seconds);
            }
            Outcome::UpToDate(_) => {}
            Outcome::Failed {
                message,
                user_error,
                ..
            } => {
                r.error = Some(message.clone());
                r.user_error = *user_error;
            }
        }
        r
    }

    fn unlisted(spec: &str, reason: &str) -> FileReport {
        FileReport {
            error: Some(reason.to_string()),
            user_error: true,
            ..FileReport::bare(PathBuf::from(spec), None, "failed")
        }
    }
}

/// The line printed when a job ends (`None`: nothing worth a line under `quiet`).
pub fn outcome_line(job: &Job, outcome: &Outcome, quiet: bool) -> Option<String> {
    match outcome {
        Outcome::Encoded(e) if !quiet => Some(format!(
            "{} → {}: {} frames at {}×{}, {} tokens, {:.2} frames/s (waited {:.1} s for frames)",
            job.input.display(),
            e.output.display(),
            e.frames,
            e.width,
            e.height,
            e.tokens,
            e.frames as f64 / e.seconds.max(1e-9),
            e.wait_seconds
        )),
        Outcome::UpToDate(_) if !quiet => Some(format!(
            "{}: {} is up to date, skipped",
            job.input.display(),
            job.output.display()
        )),
        Outcome::Failed { message, .. } => Some(format!("error: {message}")),
        _ => None,
    }
}

/// The model a run used, as the summary names it.
#[derive(Debug, Clone, Serialize)]
pub struct ModelRef {
    pub path: PathBuf,
    pub sha256: String,
    pub family: String,
}

/// A whole encode run.
#[derive(Debug, Clone, Serialize)]
pub struct EncodeSummary {
    pub model: ModelRef,
    pub device: String,
    pub files: Vec<FileReport>,
    pub encoded: usize,
    pub up_to_date: usize,
    pub failed: usize,
    pub frames: usize,
    pub tokens: u64,
    pub seconds: f64,
    pub frames_per_second: f64,
    pub tokens_per_second: f64,
    pub peak_rss_mb: Option<f64>,
}

impl EncodeSummary {
    /// The run of `plan` that ended with `outcomes` (in job order) after `seconds`.
    pub fn new(
        model: &ModelFolder,
        device: &str,
        plan: &Plan,
        outcomes: &[Outcome],
        seconds: f64,
    ) -> EncodeSummary {
        let files: Vec<FileReport> = plan
            .failed
            .iter()
            .map(|(spec, reason)| FileReport::unlisted(spec, reason))
            .chain(
                plan.jobs
                    .iter()
                    .zip(outcomes)
                    .map(|(j, o)| FileReport::new(j, o)),
            )
            .collect();
        let count = |status| files.iter().filter(|f| f.status == status).count();
        // What this run encoded (up-to-date files carry their counts too, for the report).
        let encoded = || files.iter().filter(|f| f.status == "encoded");
        let frames = encoded().filter_map(|f| f.frames).sum();
        let tokens = encoded().filter_map(|f| f.tokens).sum();
        let per_second = |n: f64| n / seconds.max(1e-9);
        EncodeSummary {
            model: ModelRef {
                path: model.dir().to_path_buf(),
                sha256: model.id().to_string(),
                family: model.family().to_string(),
            },
            device: device.to_string(),
            encoded: count("encoded"),
            up_to_date: count("up_to_date"),
            failed: count("failed"),
            frames,
            tokens,
            seconds,
            frames_per_second: per_second(frames as f64),
            tokens_per_second: per_second(tokens as f64),
            peak_rss_mb: peak_rss_mb(),
            files,
        }
    }

    /// 0 when every input was encoded or up to date; 2 when the run had one input and it
    /// was the input's fault (a bad video, a missing file); 1 otherwise. With
    /// `allow_bad_inputs` (a corpus job, where broken files are expected and indexed), 0
    /// also when every failure is the input's fault.
    pub fn exit_code(&self, allow_bad_inputs: bool) -> u8 {
        let all_inputs_fault = self
            .files
            .iter()
            .all(|f| f.status != "failed" || f.user_error);
        match (self.failed, self.files.as_slice()) {
            (0, _) => 0,
            _ if allow_bad_inputs && all_inputs_fault => 0,
            (_, [one]) if one.user_error => vqtok_core::exit::BAD_INPUT,
            _ => vqtok_core::exit::FAILURE,
        }
    }
}

/// The run's one-line summary.
impl std::fmt::Display for EncodeSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} encoded, {} up to date, {} failed of {} file(s); {} frames in {:.1} s \
             ({:.2} frames/s, {:.0} tokens/s)",
            self.encoded,
            self.up_to_date,
            self.failed,
            self.files.len(),
            self.frames,
            self.seconds,
            self.frames_per_second,
            self.tokens_per_second
        )?;
        if let Some(r) = self.peak_rss_mb {
            write!(f, "; peak RSS {r:.0} MB")?;
        }
        Ok(())
    }
}
