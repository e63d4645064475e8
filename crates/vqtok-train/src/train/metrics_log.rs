//! `RUN/metrics.jsonl`: one JSON object per logged step, for scripts and plots
//! without TensorBoard.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;

pub struct MetricsLog {
    file: File,
}

impl MetricsLog {
    /// Opens `path` (a run's metrics.jsonl) for appending. When resuming from
    /// `resume_step`, lines logged after it by the interrupted run are dropped, so the
    /// file describes the run that actually continues.
    pub fn open(path: &Path, resume_step: Option<u64>) -> io::Result<Self> {
        let path = path.to_path_buf();
        if let (Some(step), true) = (resume_step, path.exists()) {
            let kept: Vec<String> = BufReader::new(File::open(&path)?)
                .lines()
                .map_while(Result::ok)
                .filter(|line| {
                    serde_json::from_str::<serde_json::Value>(line)
                        .ok()
                        .and_then(|v| v["step"].as_u64())
                        .is_some_and(|s| s <= step)
                })
                .collect();
            let text: String = kept.iter().map(|l| format!("{l}\n")).collect();
            vqtok_core::fs::write_atomic(&path, text.as_bytes())?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(MetricsLog { file })
    }

    /// Appends one line `{"step": step, "time": unix_seconds, key: value, …}`.
    pub fn write<'a>(
        &mut self,
        step: u64,
        values: impl IntoIterator<Item = (&'a str, f64)>,
    ) -> io::Result<()> {
        let mut obj = serde_json::Map::new();
        obj.insert("step".into(), step.into());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        obj.insert("time".into(), now.into());
        for (k, v) in values {
            // JSON has no NaN/Inf: write them as null rather than corrupting the line.
            let value = serde_json::Number::from_f64(v)
                .map_or(serde_json::Value::Null, serde_json::Value::Number);
            obj.insert(k.to_string(), value);
        }
        writeln!(self.file, "{}", serde_json::Value::Object(obj))?;
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_drops_lines_after_the_checkpoint() {
        let dir = std::env::temp_dir().join(format!("vqtok-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut log = MetricsLog::open(&dir.join("metrics.jsonl"), None).unwrap();
        for step in [10, 20, 30] {
            log.write(step, [("train/total_loss", step as f64), ("bad", f64::NAN)])
                .unwrap();
        }
        drop(log);
        let mut log = MetricsLog::open(&dir.join("metrics.jsonl"), Some(20)).unwrap();
        log.write(30, [("train/total_loss", 3.0)]).unwrap();
        let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let steps: Vec<u64> = lines.iter().map(|v| v["step"].as_u64().unwrap()).collect();
        assert_eq!(steps, vec![10, 20, 30]);
        assert_eq!(lines[2]["train/total_loss"], 3.0);
        assert!(lines[0]["bad"].is_null());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
