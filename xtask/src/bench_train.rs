//! `cargo xtask bench-train`: vqtok's trainer against the project's PyTorch reference of
//! the same training step (benches/train_step.py, eager and torch.compile), on this machine
//! in one call, with a table of img/s, peak memory and the ratios (issue 18).
//!
//! Both sides read one temporary copy of the config (`param.json` in the bench folder),
//! so they train the same model with the same loss settings:
//! - `train_args.batch_size`, `num_steps = warmup + steps`, `amp` from the flags;
//! - `log_every = gcd(warmup, steps)`, so `metrics.jsonl` has windows that end exactly at
//!   step `warmup` and at the last step; vqtok's img/s is the rate over the windows after
//!   the warm-up (frames over the summed window times). A window's time is the trainer's
//!   own: from fetching the batch to the end of the step (optimizer and discriminator
//!   included), never the log write, validation or checkpoint that follow a step;
//! - `val_every`, `checkpoint_every`, `image_every` past the run, so nothing else happens
//!   inside the timed steps (the final step's validation and checkpoint come after its
//!   window is logged: see `Trainer::run`);
//! - `disc_start` (`--disc-start`, default 0: the full step, discriminator included, as
//!   docs/benchmarks.md measures it; `--disc-start config` keeps the config's value).
//!
//! An image is a frame: a step trains on `batch × sequence_length` of them on both sides.
//!
//! Peak memory. CPU: every child's `VmHWM` (peak resident set) from /proc, sampled every
//! 100 ms (the reference also reports its own getrusage peak). CUDA: the maximum of
//! `nvidia-smi memory.used` for the device sampled every 100 ms while the child runs, minus
//! the value before it started: memory the process *reserved* (CUDA context, the caching
//! allocator's pool, cuDNN workspaces), the same measure for every side; the reference's
//! own `torch.cuda.max_memory_allocated` (live tensors only) is shown next to it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use vqtok_config::{Amp, Config, ModelConfig};

use crate::bins;
use crate::setup;
use crate::util::{root, user_error, venv_python};

/// The sides the command can time.
pub const MODES: [&str; 3] = ["vqtok", "eager", "compile"];

/// What `cargo xtask bench-train` was asked (its flags).
#[derive(Debug, Clone, clap::Args)]
pub struct BenchTrainArgs {
    /// param.json of a taming VQGAN (a copy with the bench settings is what both sides read).
    #[arg(long, default_value = "configs/taming_tiny.json")]
    pub config: PathBuf,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Clips per step (each sequence_length frames; img/s counts frames).
    #[arg(long, default_value_t = 2)]
    pub batch: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 10)]
    pub steps: u64,
    /// Untimed steps first (cuDNN autotuning, torch.compile).
    #[arg(long, default_value_t = 3)]
    pub warmup: u64,
    /// bf16 or none (default: the config's train_args.amp).
    #[arg(long)]
    pub amp: Option<String>,
    /// Intra-op threads of every side (default: each library's choice).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Sides to time, in this order each round: vqtok, eager, compile.
    #[arg(long, value_delimiter = ',', default_value = "vqtok,eager,compile")]
    pub modes: Vec<String>,
    /// Rounds over the modes (alternating); the table shows medians.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// First step of the GAN terms and D updates: a step, or `config` for the config's.
    #[arg(long, default_value = "0")]
    pub disc_start: String,
    /// Frames per clip (default: the config's data_args.sequence_length).
    #[arg(long)]
    pub sequence_length: Option<usize>,
}

/// The checked flags.
#[derive(Debug, Clone, PartialEq)]
struct Plan {
    cuda_index: Option<usize>,
    amp: Option<Amp>,
    disc_start: Option<u64>,
}

fn check(args: &BenchTrainArgs) -> Result<Plan> {
    let bad = |m: String| -> anyhow::Error { user_error(m) };
    let cuda_index = match args.device.as_str() {
        "cpu" => None,
        "cuda" => Some(0),
        d => match d.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
            Some(n) => Some(n),
            None => return Err(bad(format!("--device {d}: expected cpu, cuda or cuda:N"))),
        },
    };
    let amp = match args.amp.as_deref() {
        None => None,
        Some("none") => Some(Amp::None),
        Some("bf16") => Some(Amp::Bf16),
        Some(other) => return Err(bad(format!("--amp {other}: expected bf16 or none"))),
    };
    if amp == Some(Amp::Bf16) && cuda_index.is_none() {
        return Err(bad(
            "--amp bf16 needs --device cuda (bf16 autocast runs on CUDA only)".into(),
        ));
    }
    if args.batch == 0 {
        return Err(bad("--batch must be at least 1".into()));
    }
    if args.steps == 0 {
        return Err(bad("--steps must be at least 1".into()));
    }
    if args.repeat == 0 {
        return Err(bad("--repeat must be at least 1".into()));
    }
    if args.threads == Some(0) {
        return Err(bad("--threads must be at least 1".into()));
    }
    if args.sequence_length == Some(0) {
        return Err(bad("--sequence-length must be at least 1".into()));
    }
    if args.modes.is_empty() {
        return Err(bad("--modes is empty (vqtok, eager, compile)".into()));
    }
    for (i, m) in args.modes.iter().enumerate() {
        if !MODES.contains(&m.as_str()) {
            return Err(bad(format!(
                "--modes: unknown mode `{m}` (vqtok, eager, compile)"
            )));
        }
        if args.modes[..i].contains(m) {
            return Err(bad(format!("--modes: `{m}` given twice")));
        }
    }
    let disc_start = match args.disc_start.as_str() {
        "config" => None,
        n => Some(n.parse().map_err(|_| {
            bad(format!(
                "--disc-start {n}: expected a step number or `config`"
            ))
        })?),
    };
    Ok(Plan {
        cuda_index,
        amp,
        disc_start,
    })
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// `log_every` that makes windows end at `warmup` and at `warmup + steps`.
fn log_every(warmup: u64, steps: u64) -> u64 {
    gcd(warmup, steps)
}

/// The bench copy of `cfg`.
fn bench_config(mut cfg: Config, args: &BenchTrainArgs, plan: &Plan) -> Result<Config> {
    let ModelConfig::Taming(model) = &mut cfg.model else {
        bail!(user_error(format!(
            "--config {}: bench-train times the taming VQGAN step (model_type {} is not one)",
            args.config.display(),
            cfg.model_type
        )));
    };
    if cfg.train.use_taming_loss == Some(false) {
        bail!(user_error(format!(
            "--config {}: use_taming_loss is false; the reference models the taming loss only",
            args.config.display()
        )));
    }
    if let Some(s) = plan.disc_start {
        model.lossconfig.params.disc_start = s;
    }
    let total = args.warmup + args.steps;
    let never = total + 1_000_000;
    let t = &mut cfg.train;
    t.batch_size = args.batch;
    t.num_steps = total;
    t.log_every = log_every(args.warmup, args.steps);
    t.val_every = never;
    t.checkpoint_every = never;
    t.image_every = never;
    t.val_batches = 1;
    t.device = args.device.clone();
    if let Some(amp) = plan.amp {
        t.amp = amp;
    }
    if let Some(n) = args.sequence_length {
        cfg.data.sequence_length = n;
    }
    // Parsed back: the copy passes the same validation as any param.json.
    Config::parse(&cfg.to_json_pretty())
        .map_err(|e| anyhow::anyhow!("the bench copy of the config is invalid: {e}"))
}

/// vqtok's img/s over the steps after `warmup`, from metrics.jsonl: the windows that end
/// after `warmup` must tile (warmup, warmup + steps] exactly; the rate is their frames
/// over their summed times (the frames per step cancel out).
fn vqtok_rate(metrics: &str, warmup: u64, steps: u64) -> Result<f64> {
    let mut windows = Vec::new();
    for (i, line) in metrics.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("metrics.jsonl line {}: not JSON", i + 1))?;
        if let (Some(step), Some(rate)) = (v["step"].as_u64(), v["train/img_per_s"].as_f64()) {
            windows.push((step, rate));
        }
    }
    windows.sort_by_key(|w| w.0);
    let end = warmup + steps;
    let mut prev = warmup;
    let mut secs_per_frame_steps = 0.0;
    for &(step, rate) in windows.iter().filter(|w| w.0 > warmup) {
        if !(rate.is_finite() && rate > 0.0) {
            bail!("metrics.jsonl: step {step} has img/s {rate}");
        }
        secs_per_frame_steps += (step - prev) as f64 / rate;
        prev = step;
    }
    let logged: Vec<u64> = windows.iter().map(|w| w.0).collect();
    if prev != end || (warmup > 0 && !logged.contains(&warmup)) {
        bail!(
            "metrics.jsonl: expected train/img_per_s windows ending at step {warmup} and \
             tiling steps {warmup}..{end}, got windows ending at {logged:?} (a skipped step \
             writes no log)"
        );
    }
    Ok(steps as f64 / secs_per_frame_steps)
}

/// Samples a child's peak memory while it runs.
struct MemSampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Option<f64>>,
}

/// GB of `VmHWM` in a /proc/PID/status text.
fn vm_hwm_gb(status: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0 / 1e9)
}

fn nvidia_smi_used_mib(index: usize) -> Option<f64> {
    let out = Command::new("nvidia-smi")
        .args(["--query-gpu=memory.used", "--format=csv,noheader,nounits"])
        .arg(format!("--id={index}"))
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

impl MemSampler {
    fn start(pid: u32, cuda_index: Option<usize>) -> MemSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let baseline = cuda_index.and_then(nvidia_smi_used_mib);
        let handle = std::thread::spawn(move || {
            let mut peak: Option<f64> = None;
            loop {
                let last = flag.load(Ordering::SeqCst);
                let sample = match cuda_index {
                    // VmHWM is itself a running peak: the last readable value wins.
                    None => std::fs::read_to_string(format!("/proc/{pid}/status"))
                        .ok()
                        .and_then(|s| vm_hwm_gb(&s)),
                    Some(i) => nvidia_smi_used_mib(i)
                        .map(|mib| (mib - baseline.unwrap_or(0.0)).max(0.0) * 1048576.0 / 1e9),
                };
                if let Some(s) = sample {
                    peak = Some(peak.map_or(s, |p: f64| p.max(s)));
                }
                if last {
                    return peak;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        MemSampler { stop, handle }
    }

    /// Stops sampling (call once the child has exited) and returns the peak in GB.
    fn finish(self) -> Option<f64> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().ok().flatten()
    }
}

/// Runs `cmd` to completion while sampling its memory; returns (stdout, peak GB).
fn run_sampled(mut cmd: Command, cuda_index: Option<usize>) -> Result<(String, Option<f64>)> {
    let shown = format!("{cmd:?}");
    let child: Child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {shown}"))?;
    // On CPU the last sample must be taken before the child is reaped: VmHWM is read
    // while the process exists, so sample in the loop and stop right after exit.
    let sampler = MemSampler::start(child.id(), cuda_index);
    let out = child.wait_with_output();
    let peak = sampler.finish();
    let out = out.with_context(|| format!("waiting for {shown}"))?;
    if !out.status.success() {
        bail!("{shown} failed with {}", out.status);
    }
    Ok((String::from_utf8_lossy(&out.stdout).into_owned(), peak))
}

/// One measurement of one side.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    img_per_s: f64,
    /// As measured by this command (VmHWM / nvidia-smi).
    peak_gb: Option<f64>,
    /// The reference's own peak (CUDA: max_memory_allocated; CPU: getrusage).
    self_reported_gb: Option<f64>,
}

struct Setup<'a> {
    args: &'a BenchTrainArgs,
    plan: &'a Plan,
    vqtok: PathBuf,
    config: PathBuf,
    dir: PathBuf,
    images_per_step: usize,
}

fn run_vqtok(s: &Setup, round: usize) -> Result<Sample> {
    let out = s.dir.join(format!("vqtok-{round}"));
    let mut cmd = bins::command(&s.vqtok);
    if let Some(t) = s.args.threads {
        cmd.arg("--threads").arg(t.to_string());
    }
    cmd.arg("train")
        .arg("--config")
        .arg(&s.config)
        .args(["--data", "synthetic:64", "--out"])
        .arg(&out)
        .arg("--steps")
        .arg((s.args.warmup + s.args.steps).to_string())
        .arg("--batch-size")
        .arg(s.args.batch.to_string())
        .arg("--device")
        .arg(&s.args.device)
        .arg("--quiet");
    let (_, peak) = run_sampled(cmd, s.plan.cuda_index)?;
    let path = out.join("metrics.jsonl");
    let metrics = std::fs::read_to_string(&path)
        .with_context(|| format!("vqtok-train wrote no {}", path.display()))?;
    Ok(Sample {
        img_per_s: vqtok_rate(&metrics, s.args.warmup, s.args.steps)
            .with_context(|| format!("reading {}", path.display()))?,
        peak_gb: peak,
        self_reported_gb: None,
    })
}

fn run_reference(s: &Setup, mode: &str) -> Result<Sample> {
    let mut cmd = Command::new(venv_python());
    cmd.current_dir(root())
        .arg(root().join("benches/train_step.py"))
        .arg("--config")
        .arg(&s.config)
        .args(["--mode", mode, "--device", &s.args.device])
        .args(["--batch", &s.args.batch.to_string()])
        .args(["--steps", &s.args.steps.to_string()])
        .args(["--warmup", &s.args.warmup.to_string()]);
    if let Some(amp) = &s.args.amp {
        cmd.args(["--amp", amp]);
    }
    if let Some(t) = s.args.threads {
        cmd.args(["--threads", &t.to_string()]);
    }
    let (stdout, peak) = run_sampled(cmd, s.plan.cuda_index)?;
    let line = stdout.lines().rev().find(|l| l.starts_with('{'));
    let v: Value = line
        .and_then(|l| serde_json::from_str(l).ok())
        .with_context(|| format!("train_step.py --mode {mode} printed no JSON line: {stdout}"))?;
    let images = v["batch_images"].as_u64().unwrap_or(0) as usize;
    if images != s.images_per_step {
        bail!(
            "train_step.py --mode {mode} counted {images} images per step, vqtok {}",
            s.images_per_step
        );
    }
    eprintln!("    {}", line.unwrap_or_default());
    Ok(Sample {
        img_per_s: v["img_per_s"]
            .as_f64()
            .context("train_step.py: no img_per_s")?,
        peak_gb: peak,
        self_reported_gb: v["peak_mem_gb"].as_f64(),
    })
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// One table row: a mode's median img/s and largest peaks over the rounds.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    mode: String,
    img_per_s: f64,
    peak_gb: Option<f64>,
    self_reported_gb: Option<f64>,
}

fn summarise(mode: &str, samples: &[Sample]) -> Row {
    let max = |f: fn(&Sample) -> Option<f64>| samples.iter().filter_map(f).reduce(f64::max);
    Row {
        mode: mode.to_string(),
        img_per_s: median(samples.iter().map(|s| s.img_per_s).collect()).unwrap_or(f64::NAN),
        peak_gb: max(|s| s.peak_gb),
        self_reported_gb: max(|s| s.self_reported_gb),
    }
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.digits$}"))
}

/// The markdown table: vqtok's img/s and memory over each row's (ratio > 1: vqtok is
/// faster / uses more memory).
fn table(rows: &[Row], cuda: bool) -> String {
    let ours = rows.iter().find(|r| r.mode == "vqtok");
    let mem = if cuda {
        "peak GB (nvidia-smi, reserved)"
    } else {
        "peak GB (RSS)"
    };
    let own = if cuda {
        "own peak GB (max_memory_allocated)"
    } else {
        "own peak GB (getrusage)"
    };
    let mut t = format!(
        "| mode | img/s | {mem} | {own} | vqtok/this img/s | vqtok/this memory |\n\
         |---|---|---|---|---|---|\n"
    );
    for r in rows {
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 && r.mode != "vqtok" => format!("{:.2}×", a / b),
            _ => "–".into(),
        };
        t.push_str(&format!(
            "| {} | {:.2} | {} | {} | {} | {} |\n",
            r.mode,
            r.img_per_s,
            fmt_opt(r.peak_gb, 2),
            fmt_opt(r.self_reported_gb, 2),
            ratio(ours.map(|o| o.img_per_s), Some(r.img_per_s)),
            ratio(ours.and_then(|o| o.peak_gb), r.peak_gb),
        ));
    }
    t
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn gpu_name(index: usize) -> String {
    Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,driver_version,memory.total",
            "--format=csv,noheader",
        ])
        .arg(format!("--id={index}"))
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown GPU (nvidia-smi failed)".into())
}

fn write_config(cfg: &Config, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("param.json");
    std::fs::write(&path, cfg.to_json_pretty())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

pub fn run(args: &BenchTrainArgs) -> Result<()> {
    let plan = check(args)?;
    let cfg = Config::from_path(&args.config).map_err(|e| user_error(format!("--config: {e}")))?;
    let cfg = bench_config(cfg, args, &plan)?;
    setup::run()?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let dir = root()
        .join("target/vqtok-bench-train")
        .join(format!("run-{stamp}-{}", std::process::id()));
    let config = write_config(&cfg, &dir)?;
    let vqtok = if args.modes.iter().any(|m| m == "vqtok") {
        bins::build(&[("vqtok-train", "vqtok-train")], true)?.remove(0)
    } else {
        PathBuf::new()
    };
    let setup = Setup {
        args,
        plan: &plan,
        vqtok,
        config,
        dir: dir.clone(),
        images_per_step: args.batch * cfg.data.sequence_length,
    };
    let machine = match plan.cuda_index {
        Some(i) => format!("{} (GPU {i}); CPU {}", gpu_name(i), cpu_model()),
        None => format!(
            "{}, {} CPUs",
            cpu_model(),
            std::thread::available_parallelism().map_or(1, usize::from)
        ),
    };
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); args.modes.len()];
    for round in 0..args.repeat {
        for (i, mode) in args.modes.iter().enumerate() {
            eprintln!(
                "==> round {}/{}: {mode} ({} warm-up + {} timed steps)",
                round + 1,
                args.repeat,
                args.warmup,
                args.steps
            );
            let s = if mode == "vqtok" {
                run_vqtok(&setup, round)?
            } else {
                run_reference(&setup, mode)?
            };
            eprintln!(
                "    {mode}: {:.2} img/s, peak {} GB",
                s.img_per_s,
                fmt_opt(s.peak_gb, 2)
            );
            samples[i].push(s);
        }
    }
    let rows: Vec<Row> = args
        .modes
        .iter()
        .zip(&samples)
        .map(|(m, s)| summarise(m, s))
        .collect();
    let t = &cfg.train;
    let amp = match t.amp {
        Amp::Bf16 => "bf16 autocast",
        Amp::None => "fp32",
    };
    let disc_start = match &cfg.model {
        ModelConfig::Taming(a) => a.lossconfig.params.disc_start,
        _ => 0,
    };
    println!(
        "bench-train: {} on {}, {amp}, batch {} clips × {} frames = {} images of {}², \
         {} warm-up + {} timed steps, disc_start {disc_start}, disc every {}, threads {}, \
         median of {} round(s)\nmachine: {machine}\n",
        args.config.display(),
        args.device,
        args.batch,
        cfg.data.sequence_length,
        setup.images_per_step,
        cfg.data_resolution(),
        args.warmup,
        args.steps,
        t.disc_update_every,
        args.threads.map_or("default".into(), |n| n.to_string()),
        args.repeat,
    );
    print!("{}", table(&rows, plan.cuda_index.is_some()));
    let results = json!({
        "config": cfg.to_json(),
        "machine": machine,
        "rows": rows.iter().map(|r| json!({
            "mode": r.mode, "img_per_s": r.img_per_s, "peak_gb": r.peak_gb,
            "self_reported_gb": r.self_reported_gb,
        })).collect::<Vec<_>>(),
    });
    let path = dir.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("\n(results in {})", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> BenchTrainArgs {
        BenchTrainArgs {
            config: root().join("configs/taming_tiny.json"),
            device: "cpu".into(),
            batch: 2,
            steps: 4,
            warmup: 2,
            amp: None,
            threads: Some(2),
            modes: MODES.iter().map(|s| s.to_string()).collect(),
            repeat: 1,
            disc_start: "0".into(),
            sequence_length: None,
        }
    }

    fn line(step: u64, rate: f64) -> String {
        format!("{{\"step\":{step},\"time\":1.0,\"train/img_per_s\":{rate},\"train/lr\":0.001}}\n")
    }

    #[test]
    fn log_windows_end_at_the_warmup_and_the_last_step() {
        assert_eq!(log_every(2, 4), 2);
        assert_eq!(log_every(0, 5), 5);
        assert_eq!(log_every(3, 10), 1);
        assert_eq!(log_every(10, 20), 10);
    }

    #[test]
    fn rate_is_frames_over_summed_time_after_the_warmup() {
        // Windows (0,2] at 1 img/s (warm-up, ignored), (2,4] at 4, (4,6] at 2:
        // 4 steps in 2/4 + 2/2 = 1.5 step-seconds-per-frame → 4 / 1.5.
        let m = [line(2, 1.0), line(4, 4.0), line(6, 2.0)].concat();
        let r = vqtok_rate(&m, 2, 4).unwrap();
        assert!((r - 4.0 / 1.5).abs() < 1e-12, "{r}");
        // Not the arithmetic mean of the windows (3.0).
        assert!((r - 3.0).abs() > 0.1);
        // No warm-up: one window.
        assert!((vqtok_rate(&line(5, 7.5), 0, 5).unwrap() - 7.5).abs() < 1e-12);
    }

    #[test]
    fn rate_rejects_windows_that_do_not_tile_the_timed_steps() {
        // Last window missing.
        let m = [line(2, 1.0), line(4, 4.0)].concat();
        assert!(vqtok_rate(&m, 2, 4).is_err());
        // No window ending at the warm-up (the first timed window would include it).
        let m = [line(3, 1.0), line(6, 4.0)].concat();
        assert!(vqtok_rate(&m, 2, 4).is_err());
        assert!(vqtok_rate("", 2, 4).is_err());
        assert!(vqtok_rate("not json\n", 2, 4).is_err());
        let m = [line(2, 1.0), line(6, 0.0)].concat();
        assert!(vqtok_rate(&m, 2, 4).is_err());
    }

    #[test]
    fn vm_hwm_is_parsed_in_gb() {
        let status = "Name:\tpython\nVmPeak:\t 999 kB\nVmHWM:\t  2048000 kB\nVmRSS:\t 1 kB\n";
        assert!((vm_hwm_gb(status).unwrap() - 2.097152).abs() < 1e-9);
        assert_eq!(vm_hwm_gb("Name:\tx\n"), None);
    }

    #[test]
    fn table_has_ratios_of_vqtok_over_each_reference() {
        let rows = vec![
            Row {
                mode: "vqtok".into(),
                img_per_s: 3.0,
                peak_gb: Some(2.0),
                self_reported_gb: None,
            },
            Row {
                mode: "eager".into(),
                img_per_s: 2.0,
                peak_gb: Some(1.0),
                self_reported_gb: Some(0.9),
            },
            Row {
                mode: "compile".into(),
                img_per_s: 4.0,
                peak_gb: None,
                self_reported_gb: Some(1.5),
            },
        ];
        let t = table(&rows, false);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5, "{t}");
        assert!(lines[0].contains("peak GB (RSS)"));
        assert_eq!(lines[2], "| vqtok | 3.00 | 2.00 | – | – | – |");
        assert_eq!(lines[3], "| eager | 2.00 | 1.00 | 0.90 | 1.50× | 2.00× |");
        assert_eq!(lines[4], "| compile | 4.00 | – | 1.50 | 0.75× | – |");
        assert!(table(&rows, true).contains("nvidia-smi"));
        // Without a vqtok row there is nothing to compare with.
        assert!(table(&rows[1..], false).lines().all(|l| !l.contains('×')));
    }

    #[test]
    fn summaries_take_the_median_rate_and_the_largest_peak() {
        let s = |r, p| Sample {
            img_per_s: r,
            peak_gb: Some(p),
            self_reported_gb: None,
        };
        let row = summarise("eager", &[s(1.0, 3.0), s(5.0, 1.0), s(2.0, 2.0)]);
        assert_eq!(row.img_per_s, 2.0);
        assert_eq!(row.peak_gb, Some(3.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }

    #[test]
    fn bad_flags_are_named() {
        let err = |f: fn(&mut BenchTrainArgs)| {
            let mut a = args();
            f(&mut a);
            format!("{:#}", check(&a).unwrap_err())
        };
        assert!(err(|a| a.device = "tpu".into()).contains("--device tpu"));
        assert!(err(|a| a.amp = Some("fp16".into())).contains("--amp fp16"));
        assert!(err(|a| a.amp = Some("bf16".into())).contains("--amp bf16 needs --device cuda"));
        assert!(err(|a| a.modes = vec!["jax".into()]).contains("--modes: unknown mode `jax`"));
        assert!(err(|a| a.modes = vec!["eager".into(), "eager".into()]).contains("twice"));
        assert!(err(|a| a.steps = 0).contains("--steps"));
        assert!(err(|a| a.batch = 0).contains("--batch"));
        assert!(err(|a| a.disc_start = "soon".into()).contains("--disc-start soon"));
        let mut a = args();
        a.device = "cuda:1".into();
        a.amp = Some("bf16".into());
        a.disc_start = "config".into();
        assert_eq!(
            check(&a).unwrap(),
            Plan {
                cuda_index: Some(1),
                amp: Some(Amp::Bf16),
                disc_start: None
            }
        );
    }

    #[test]
    fn the_bench_config_times_only_training_steps() {
        let a = args();
        let plan = check(&a).unwrap();
        let cfg = Config::from_path(&a.config).unwrap();
        let b = bench_config(cfg, &a, &plan).unwrap();
        let t = &b.train;
        assert_eq!((t.batch_size, t.num_steps, t.log_every), (2, 6, 2));
        assert!(t.val_every > 6 && t.checkpoint_every > 6 && t.image_every > 6);
        let ModelConfig::Taming(m) = &b.model else {
            panic!("taming")
        };
        assert_eq!(m.lossconfig.params.disc_start, 0);
        // `config` keeps the file's disc_start (100 in taming_tiny.json).
        let mut a = args();
        a.disc_start = "config".into();
        a.sequence_length = Some(1);
        let plan = check(&a).unwrap();
        let b = bench_config(Config::from_path(&a.config).unwrap(), &a, &plan).unwrap();
        let ModelConfig::Taming(m) = &b.model else {
            panic!("taming")
        };
        assert_eq!(m.lossconfig.params.disc_start, 100);
        assert_eq!(b.data.sequence_length, 1);
        // The classic models have no taming step to compare.
        let mut a = args();
        a.config = root().join("configs/vqvae_tiny.json");
        let cfg = Config::from_path(&a.config).unwrap();
        assert!(bench_config(cfg, &a, &plan).is_err());
    }

    /// The reference is the step it claims to be: its seed-config state dict is the fixture's
    /// 398 taming keys and shapes, and two eager steps of the tiny VQ and EMA models give
    /// finite losses and move every part (`benches/train_step.py --self-test`, ~25 s on CPU).
    #[test]
    fn the_pytorch_reference_passes_its_self_test() {
        let out = std::process::Command::new(crate::util::venv_python())
            .arg(crate::util::root().join("benches/train_step.py"))
            .arg("--self-test")
            .current_dir(crate::util::root())
            .output()
            .expect("run the venv's python (cargo xtask setup)");
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
