//! The seed's TrainVqVae (seed §4–§7): model and loss from the config, the
//! autoencoder's Adam (the discriminator's lives with the discriminator), the loop,
//! logging, validation and checkpoints.
//!
//! Per step (`step.rs`, the same on both loss paths): batch `[b, d, h, w, c]` →
//! `[(b·d), c, h, w]` → normalize → forward → the LossCalculator's generator loss
//! (taming's optimizer 0) → backward, the autoencoder's Adam → on the discriminator's
//! steps (from `disc_start`, every `disc_update_every`), its loss on the same
//! reconstruction detached (optimizer 1), backward, its Adam.
//!
//! Every step's RNG is seeded from (seed, step), so a resumed run draws the same
//! random numbers as an uninterrupted one; the data position, both optimizers and
//! the schedule are restored from the checkpoint, which makes resume exact on CPU.
//!
//! As one rank of a data-parallel job (`crate::dist`, joined before the trainer is
//! built): rank 0's weights are everyone's at the start, each rank reads its own slice
//! of the clips, the step averages gradients (`step.rs`), the ranks agree every step on
//! whether to checkpoint or stop, and only rank 0 validates and writes the run folder;
//! a checkpoint holds every rank's data position.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tch::nn::VarStore;
use tch::{Device, Tensor};
use vqtok_config::{Amp, CodebookLevel, Config, ModelConfig, json_diff};
use vqtok_run::{Checkpoint, CheckpointStore, RunDir, RunError, TrainState};

use crate::dist;
use crate::loss::{LossCalculator, LossLog, LossOptions, Lpips, Split};
use crate::model::{VqModel, create_model, load_weights};
use crate::optim::{Adam, AdamConfig};
use crate::state_dict::{LoadOptions, load_state_dict};
use crate::train::checkpoint::{self, CheckpointContent};
use crate::train::code_window::{CodeWindow, CodeWindowState};
use crate::train::data::{DataSource, DataState, validation_problem};
use crate::train::device::device_name;
use crate::train::error::TrainError;
use crate::train::evaluate::{EvalReport, evaluate, validation_lpips};
use crate::train::failpoints;
use crate::train::metrics_log::MetricsLog;
use crate::train::parallel;
use crate::train::pending::{Pending, Settled};
use crate::train::pixels::{PixelNorm, comparison_grid};
use crate::train::progress::Progress;
use crate::train::schedule::LrSchedule;
use crate::train::step::{StepLog, StepOutcome, StepSettings, model_statistics, train_step};
use crate::train::tensorboard::EventWriter;

/// Settings of one invocation that are not part of the config.
pub struct TrainOptions {
    pub run_dir: PathBuf,
    /// The checkpoint to continue from.
    pub resume: Option<Checkpoint>,
    pub device: Device,
    /// No progress bar or per-interval lines (warnings and errors still print).
    pub quiet: bool,
}

/// Keys of train_args whose change does not break an exact resume.
const RESUMABLE_CHANGES: &[&str] = &[
    "train_args.num_steps",
    "train_args.checkpoint_every",
    "train_args.keep_checkpoints",
    "train_args.log_every",
    "train_args.image_every",
    "train_args.val_every",
    "train_args.val_batches",
    "train_args.device",
    "data_args.num_workers",
    "data_args.prefetch_batches",
    "data_args.decode_timeout_s",
];

/// How a call to [`Trainer::run`] ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    pub step: u64,
    /// Stopped early by Ctrl-C / SIGTERM (a checkpoint was written).
    pub interrupted: bool,
    pub skipped_steps: u64,
    pub last_checkpoint: Option<Checkpoint>,
    pub last_validation: Option<Vec<(String, f64)>>,
}

pub struct Trainer {
    cfg: Config,
    opts: TrainOptions,
    run: RunDir,
    amp: bool,
    vs: VarStore,
    model: Box<dyn VqModel>,
    levels: Vec<CodebookLevel>,
    /// The loss and the discriminator (with its own Adam).
    calc: LossCalculator,
    /// The autoencoder's Adam.
    opt_ae: Adam,
    schedule: LrSchedule,
    norm: PixelNorm,
    train_data: DataSource,
    /// LPIPS for validation, or why it is missing (said in every validation report).
    lpips_eval: Result<Lpips, String>,
    /// The run folder's writers: rank 0's only (the other ranks of a job write nothing).
    out: Option<Outputs>,
    step: u64,
    skipped_steps: u64,
    skipped_disc_updates: u64,
    best_val: Option<f64>,
    /// Why the run does not validate, when it cannot (see `data::validation_problem`).
    no_validation: Option<String>,
    /// Codebook usage and perplexity of the current log interval.
    codes: CodeWindow,
    /// What a training forward changes in place (see `step::model_statistics`).
    statistics: Vec<Tensor>,
}

impl Trainer {
    /// Builds everything for a new run, or restores it from `opts.resume`.
    pub fn new(mut cfg: Config, opts: TrainOptions) -> Result<Trainer, TrainError> {
        // Validation data is checked now, not at the first validation.
        let no_validation = validation_problem(&cfg)?;
        if let Some(reason) = &no_validation {
            cfg.data.val_fraction = 0.0;
            eprintln!("warning: training on every file, without validation: {reason}");
        }
        let mut opts = opts;
        // Rank 0 speaks for the job (its loss lines are its own batch's).
        opts.quiet |= !dist::is_root();
        let device = opts.device;
        let amp = cfg.train.amp == Amp::Bf16;
        if amp && device == Device::Cpu {
            return Err(TrainError::Usage(
                "train_args.amp is bf16, which runs on CUDA only, but the device is the CPU".into(),
            ));
        }
        if let Device::Cuda(_) = device {
            tch::Cuda::cudnn_set_benchmark(!cfg.train.deterministic);
        }
        let run = RunDir::new(&opts.run_dir);
        let root = dist::is_root();
        // First of all, the run folder's lock (held by the store for the trainer's life):
        // a second trainer on this folder stops here, before it reads or writes anything.
        let store = root
            .then(|| run.store(cfg.train.keep_checkpoints))
            .transpose()?;

        let loaded = match &opts.resume {
            Some(ck) => Some(checkpoint::read(ck)?),
            None => None,
        };
        if let Some(ck) = &loaded {
            check_resumable(&cfg, &ck.config, ck.checkpoint.dir())?;
        }
        if loaded.is_none() && store.as_ref().is_some_and(|s| s.latest().is_some()) {
            return Err(TrainError::Usage(format!(
                "{} already holds checkpoints: pass --resume to continue that run, or choose a new --out folder",
                opts.run_dir.display()
            )));
        }

        // The initial weights (model and discriminator) come from the seed too.
        tch::manual_seed(cfg.train.seed as i64);
        let vs = VarStore::new(device);
        let model = create_model(&cfg.model, &vs.root())?;
        let levels = cfg.model.levels();
        let loss_opts = LossOptions::new(device);
        let calc = LossCalculator::new(&cfg, &loss_opts)?;
        let opt_ae = Adam::new(
            model.trainable_vars(),
            AdamConfig::from_train_args(&cfg.train),
        );
        // Validation LPIPS whenever the weights are there (it is only a metric here).
        let lpips_eval = validation_lpips(device)?;
        if let (Err(note), false) = (&lpips_eval, opts.quiet) {
            eprintln!("warning: {note}");
        }

        let data_state = match &loaded {
            Some(ck) => Some(
                parallel::rank_data(&ck.state.data, dist::rank(), dist::world_size()).map_err(
                    |e| {
                        RunError::invalid(
                            ck.checkpoint.file(Checkpoint::STATE),
                            format!("`data`: {e}"),
                        )
                    },
                )?,
            ),
            None => None,
        };
        let out = match store {
            Some(store) => Some(Outputs {
                store,
                tb: EventWriter::create(&run.tensorboard_dir())
                    .map_err(TrainError::io(run.root()))?,
                metrics: MetricsLog::open(
                    &run.metrics_path(),
                    loaded.as_ref().map(|c| c.state.step),
                )
                .map_err(TrainError::io(run.root()))?,
            }),
            None => None,
        };
        let codes = CodeWindow::new(&levels, device);
        let statistics = model_statistics(&vs);
        let mut trainer = Trainer {
            norm: PixelNorm::new(&cfg.data.normalize, device),
            schedule: LrSchedule::new(&cfg.train),
            train_data: DataSource::open_rank(
                &cfg,
                Split::Train,
                data_state.as_ref(),
                dist::rank(),
                dist::world_size(),
            )?,
            cfg,
            opts,
            run,
            amp,
            vs,
            model,
            levels,
            calc,
            opt_ae,
            lpips_eval,
            out,
            step: 0,
            skipped_steps: 0,
            skipped_disc_updates: 0,
            best_val: None,
            no_validation,
            codes,
            statistics,
        };
        match loaded {
            Some(ck) => {
                trainer.restore(ck)?;
                if let Some(out) = &mut trainer.out {
                    out.tb
                        .start_session(trainer.step)
                        .map_err(TrainError::io(trainer.run.root()))?;
                }
            }
            None => trainer.init_from_ckpt_path()?,
        }
        // The same start on every rank: rank 0's weights and statistics. A fresh run has
        // them equal already (the shared seed), a resumed one read the same checkpoint
        // (optimizer moments too); this makes it certain, as DDP's construction does.
        if dist::group().is_some() {
            let tensors: Vec<Tensor> = parallel::all_variables(&trainer.var_stores())
                .into_iter()
                .map(|(_, t)| t)
                .collect();
            dist::broadcast_from_root(&tensors);
        }
        if trainer.out.is_some() {
            let config_path = trainer.run.config_path();
            vqtok_core::fs::write_atomic(&config_path, trainer.cfg.to_json_pretty().as_bytes())
                .map_err(TrainError::io(&config_path))?;
        }
        Ok(trainer)
    }

    pub fn step(&self) -> u64 {
        self.step
    }

    /// The model's and the discriminator's var stores.
    fn var_stores(&self) -> Vec<&VarStore> {
        let mut stores = vec![&self.vs];
        if let Some(d) = self.calc.discriminator() {
            stores.push(d.var_store());
        }
        stores
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// taming's `ckpt_path` + `ignore_keys`: initialise a new run from a state dict,
    /// non-strict (missing/unexpected keys are reported, as taming's init_from_ckpt).
    fn init_from_ckpt_path(&mut self) -> Result<(), TrainError> {
        let ModelConfig::Taming(args) = &self.cfg.model else {
            return Ok(());
        };
        let Some(path) = &args.ckpt_path else {
            return Ok(());
        };
        let mut ignore = args.ignore_keys.clone();
        ignore.push("loss.".into());
        let opts = LoadOptions {
            ignore_prefixes: ignore,
            strict: false,
            ..LoadOptions::default()
        };
        let report = load_state_dict(&self.vs, path, &opts)?;
        eprintln!(
            "initialised from {path}: {} tensors loaded, {} missing, {} unexpected",
            report.loaded,
            report.missing.len(),
            report.unexpected.len()
        );
        Ok(())
    }

    fn restore(&mut self, ck: checkpoint::LoadedCheckpoint) -> Result<(), TrainError> {
        let model_path = ck.checkpoint.model_path();
        load_weights(&self.vs, &model_path)?;
        let ae_path = ck.checkpoint.file(Checkpoint::OPTIMIZER_AE);
        self.opt_ae
            .load_state_dict(&ck.optimizer_ae)
            .map_err(|e| RunError::invalid(&ae_path, e.to_string()))?;
        if self.calc.discriminator().is_some() && ck.optimizer_disc.is_none() {
            return Err(RunError::invalid(
                ck.checkpoint.file(Checkpoint::OPTIMIZER_DISC),
                "missing: the run has a discriminator",
            )
            .into());
        }
        self.calc
            .load_checkpoint_state(&ck.model, ck.optimizer_disc.as_ref(), &model_path)?;
        self.step = ck.state.step;
        self.skipped_steps = ck.state.skipped_steps;
        self.skipped_disc_updates = ck.state.skipped_disc_updates;
        self.best_val = ck.state.best_val_rec_loss;
        if !ck.state.log_window.is_null() {
            let path = ck.checkpoint.file(Checkpoint::STATE);
            let state: CodeWindowState = serde_json::from_value(ck.state.log_window.clone())
                .map_err(|e| RunError::invalid(&path, format!("`log_window`: {e}")))?;
            self.codes
                .restore(&state)
                .map_err(|e| RunError::invalid(&path, format!("`log_window`: {e}")))?;
        }
        Ok(())
    }

    /// Trains until `num_steps` (or until `stop` is raised: then finishes the step,
    /// checkpoints and returns).
    pub fn run(&mut self, stop: &AtomicBool) -> Result<RunSummary, TrainError> {
        let total = self.cfg.train.num_steps;
        let t = self.cfg.train.clone();
        let progress = Progress::new(self.step, total, self.opts.quiet);
        let world = dist::world_size();
        if !self.opts.quiet {
            let ranks = match dist::group() {
                Some(g) => format!(
                    ", {world} ranks over {} ({}), global batch {world}×{} = {} clips",
                    g.backend,
                    g.launch.launcher,
                    t.batch_size,
                    world * t.batch_size
                ),
                None => String::new(),
            };
            progress.line(&format!(
                "training {} on {} from step {} to {total} ({}{ranks})",
                self.cfg.model_type,
                device_name(self.opts.device),
                self.step,
                if self.calc.use_taming_loss() {
                    "taming loss, two optimizers"
                } else {
                    "traditional loss"
                }
            ));
        }
        let mut window = Window::default();
        let mut consecutive_bad = 0u32;
        let mut pending = Pending::default();
        let mut summary = RunSummary {
            step: self.step,
            interrupted: false,
            skipped_steps: self.skipped_steps,
            last_checkpoint: None,
            last_validation: None,
        };
        while self.step < total {
            let started = Instant::now();
            let batch = self
                .train_data
                .next_batch()?
                .ok_or_else(|| TrainError::Data("the training source ended".into()))?;
            window.wait += started.elapsed();
            let mut x = self.norm.model_input(&batch);
            if failpoints::fires_at("train-nan-batch", self.step) {
                x = x.full_like(f64::NAN);
            }
            tch::manual_seed(step_seed(t.seed, self.step) as i64);
            let outcome = if failpoints::fires_at("train-skip-batch", self.step) {
                StepOutcome::Skipped
            } else {
                self.train_step(&x)?
            };
            if failpoints::fires_at("train-poison-weights", self.step)
                && let Some(w) = self.model.trainable_vars().first()
            {
                let _ = tch::no_grad(|| w.shallow_clone().fill_(f64::NAN));
            }
            let global_step = self.step;
            self.step += 1;
            // Every rank's frames: the job's rate.
            window.frames += x.size()[0] as u64 * world as u64;
            window.steps += 1;
            let log = match outcome {
                StepOutcome::Done(log) => {
                    self.codes.add(&log.indices, &log.perplexity, &log.updated);
                    pending.push(global_step, &log);
                    Some(log)
                }
                StepOutcome::Skipped => {
                    self.settle(&mut pending, &mut consecutive_bad, &progress)?;
                    let skipped = Settled {
                        step: global_step,
                        updated: false,
                        disc_updated: None,
                    };
                    self.count(skipped, &mut consecutive_bad, &progress)?;
                    None
                }
            };
            window.time += started.elapsed();
            let step = self.step;
            // The same on every rank (ranks agree on stop and save at report steps);
            // rank 0 alone validates.
            let validation_step =
                self.no_validation.is_none() && (step.is_multiple_of(t.val_every) || step == total);
            let validating = validation_step && self.out.is_some();
            let reporting = step.is_multiple_of(t.log_every)
                || step.is_multiple_of(t.image_every)
                || step.is_multiple_of(t.checkpoint_every)
                || step == total
                || validation_step
                || pending.len() >= t.max_bad_steps as usize;
            // The steps' device flags are read here only; this step is logged if its
            // update was applied.
            let log = if reporting {
                let updated = self.settle(&mut pending, &mut consecutive_bad, &progress)?;
                log.filter(|_| updated == Some(true))
            } else {
                None
            };
            if let Some(log) = &log {
                if step.is_multiple_of(t.log_every) || step == total {
                    let line = self.write_logs(log, &window)?;
                    progress.update(step, &line);
                    progress.summary(&format!("step {step}/{total} {line}"));
                    window = Window::default();
                }
                if step.is_multiple_of(t.image_every)
                    && let Some(out) = &mut self.out
                {
                    let (h, w, rgb) = comparison_grid(&self.norm, &log.x, &log.recon, 4);
                    out.tb
                        .image(step, "train/reconstructions", &rgb, w, h)
                        .map_err(TrainError::io(&self.opts.run_dir))?;
                }
            }
            let mut save = step.is_multiple_of(t.checkpoint_every) || step == total;
            let mut best = false;
            if validating {
                let report = self.validate()?;
                let rec = report.get("val/rec_loss");
                if let Some(rec) = rec.filter(|r| r.is_finite())
                    && self.best_val.is_none_or(|b| rec < b)
                {
                    self.best_val = Some(rec);
                    best = true;
                    save = true;
                }
                progress.line(&report.to_string());
                summary.last_validation = Some(report.values);
            }
            let interrupted =
                stop.load(Ordering::SeqCst) || failpoints::fires_at("train-interrupt", global_step);
            // One decision for the job: rank 0's validation may ask for a save, and a
            // signal may reach the ranks at different steps. Taken where the ranks report
            // anyway (a collective read back every step would make each wait for its
            // device), so a signal stops a job at the next report.
            let (save, interrupted) = match dist::group() {
                None => (save, interrupted),
                Some(_) if reporting => {
                    let [save, interrupted] = dist::any([save, interrupted], self.opts.device);
                    (save, interrupted)
                }
                Some(_) => (save, false),
            };
            if interrupted {
                self.settle(&mut pending, &mut consecutive_bad, &progress)?;
            }
            if save || interrupted {
                let dir = self.save_checkpoint()?;
                if best && let Some(out) = &self.out {
                    out.store
                        .set_best(step, self.best_val.unwrap_or(f64::NAN))?;
                }
                summary.last_checkpoint = dir.or(summary.last_checkpoint);
            }
            if interrupted {
                summary.interrupted = true;
                break;
            }
        }
        if let Some(out) = &mut self.out {
            out.tb.flush().map_err(TrainError::io(&self.opts.run_dir))?;
        }
        progress.finish();
        if let Some(g) = dist::group() {
            let digest = parallel::weights_digest(&self.var_stores());
            eprintln!(
                "rank {}/{}: weights sha256 {digest} at step {}",
                g.rank(),
                g.world_size(),
                self.step
            );
            parallel::check_same_weights(&dist::gather_strings(&digest), self.step)?;
        }
        summary.step = self.step;
        summary.skipped_steps = self.skipped_steps;
        if !self.opts.quiet {
            eprintln!("data: {}", self.train_data.summary());
        }
        Ok(summary)
    }

    /// Reads the flags of the steps in `pending` (one transfer) and counts them; returns
    /// whether the last one's update was applied.
    fn settle(
        &mut self,
        pending: &mut Pending,
        consecutive_bad: &mut u32,
        progress: &Progress,
    ) -> Result<Option<bool>, TrainError> {
        let mut last = None;
        for settled in pending.read() {
            self.count(settled, consecutive_bad, progress)?;
            last = Some(settled.updated);
        }
        Ok(last)
    }

    /// Counts one step's outcome: skips are logged and counted, and `max_bad_steps` in a
    /// row end the run (the skipped steps changed nothing, so the last checkpoint is good).
    fn count(
        &mut self,
        s: Settled,
        consecutive_bad: &mut u32,
        progress: &Progress,
    ) -> Result<(), TrainError> {
        let what = if !s.updated {
            self.skipped_steps += 1;
            "non-finite loss, step skipped (no update, statistics restored)"
        } else if s.disc_updated == Some(false) {
            self.skipped_disc_updates += 1;
            "non-finite discriminator loss, discriminator update skipped \
             (the autoencoder was updated)"
        } else {
            *consecutive_bad = 0;
            return Ok(());
        };
        *consecutive_bad += 1;
        progress.line(&format!("step {}: {what}", s.step));
        if *consecutive_bad >= self.cfg.train.max_bad_steps {
            progress.finish();
            return Err(TrainError::Diverged {
                steps: *consecutive_bad,
                at: s.step,
            });
        }
        Ok(())
    }

    /// One optimisation step at `self.step`.
    fn train_step(&mut self, x: &Tensor) -> Result<StepOutcome, TrainError> {
        let settings = StepSettings {
            lr: self.schedule.lr_at(self.step),
            grad_clip: self.cfg.train.grad_clip,
            amp: self.amp.then_some(self.opts.device),
        };
        train_step(
            self.model.as_ref(),
            &self.statistics,
            &mut self.calc,
            &mut self.opt_ae,
            x,
            self.step,
            &settings,
        )
    }

    /// Writes one log interval to TensorBoard and metrics.jsonl; returns the short
    /// status line for the progress display.
    fn write_logs(&mut self, log: &StepLog, window: &Window) -> Result<String, TrainError> {
        let mut values: Vec<(String, f64)> = log.losses.iter().flat_map(LossLog::scalars).collect();
        let multi = self.levels.len() > 1;
        let key = |base: &str, name: &str| {
            if multi {
                format!("train/{base}/{name}")
            } else {
                format!("train/{base}")
            }
        };
        for (level, s) in self.levels.iter().zip(self.codes.take()) {
            let name = level.name;
            values.push((key("codebook_usage", name), s.usage_percent));
            values.push((key("dead_codes", name), s.dead_codes as f64));
            values.push((key("perplexity", name), s.mean_perplexity));
        }
        let secs = window.time.as_secs_f64().max(1e-9);
        let img_per_s = window.frames as f64 / secs;
        values.push((
            "train/lr".into(),
            self.schedule.lr_at(self.step.saturating_sub(1)),
        ));
        values.push(("train/img_per_s".into(), img_per_s));
        values.push((
            "train/data_wait_frac".into(),
            window.wait.as_secs_f64() / secs,
        ));
        values.push(("train/skipped_steps".into(), self.skipped_steps as f64));
        values.push((
            "train/skipped_disc_updates".into(),
            self.skipped_disc_updates as f64,
        ));
        if let Some(out) = &mut self.out {
            let io = TrainError::io(&self.opts.run_dir);
            out.tb
                .scalars(self.step, values.iter().map(|(k, v)| (k.as_str(), *v)))
                .map_err(TrainError::io(&self.opts.run_dir))?;
            out.metrics
                .write(self.step, values.iter().map(|(k, v)| (k.as_str(), *v)))
                .map_err(io)?;
        }
        let get = |k: &str| values.iter().find(|(key, _)| key == k).map(|(_, v)| *v);
        let mut line = format!("{img_per_s:.1} img/s");
        for k in [
            "train/total_loss",
            "train/rec_loss",
            "train/recon_loss",
            "train/disc_loss",
        ] {
            if let Some(v) = get(k) {
                line.push_str(&format!(" {}={v:.4}", &k[6..]));
            }
        }
        if let Some(u) = get("train/codebook_usage") {
            line.push_str(&format!(" codes={u:.1}%"));
        }
        Ok(line)
    }

    /// One validation pass; logs `val/*` and the first batch's reconstructions.
    pub fn validate(&mut self) -> Result<EvalReport, TrainError> {
        let mut data = DataSource::open(&self.cfg, Split::Val, None)?;
        let report = evaluate(
            self.model.as_ref(),
            &self.levels,
            &self.calc,
            &self.norm,
            &mut data,
            self.cfg.train.val_batches,
            &self.lpips_eval,
            self.step,
        )?;
        let io = || TrainError::io(&self.opts.run_dir);
        let Some(out) = &mut self.out else {
            return Ok(report);
        };
        out.tb
            .scalars(
                self.step,
                report.values.iter().map(|(k, v)| (k.as_str(), *v)),
            )
            .map_err(io())?;
        if let Some((h, w, rgb)) = &report.grid {
            out.tb
                .image(self.step, "val/reconstructions", rgb, *w, *h)
                .map_err(io())?;
        }
        out.metrics
            .write(
                self.step,
                report.values.iter().map(|(k, v)| (k.as_str(), *v)),
            )
            .map_err(io())?;
        out.tb.flush().map_err(io())?;
        Ok(report)
    }

    /// Writes `checkpoints/step_NNNNNNN` for the current step, unless a weight, statistic
    /// or optimizer moment is not finite: a checkpoint never holds NaN or inf, and the
    /// last good one stays `latest`.
    ///
    /// In a job every rank calls it at the same step (their data positions go into the
    /// checkpoint); rank 0 writes it and returns it, the others return `None`.
    pub fn save_checkpoint(&mut self) -> Result<Option<Checkpoint>, TrainError> {
        let position = serde_json::to_string(&self.train_data.state()).expect("plain data");
        let positions = dist::gather_strings(&position)
            .iter()
            .map(|p| serde_json::from_str::<DataState>(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TrainError::Data(format!("a rank's data position: {e}")))?;
        let Some(out) = &self.out else {
            return Ok(None);
        };
        let state = TrainState {
            step: self.step,
            model_hash: self.cfg.model_hash(),
            config_hash: self.cfg.config_hash(),
            use_taming_loss: self.calc.use_taming_loss(),
            data: parallel::saved_data(positions),
            seed: self.cfg.train.seed,
            skipped_steps: self.skipped_steps,
            skipped_disc_updates: self.skipped_disc_updates,
            log_window: serde_json::to_value(self.codes.state()).expect("plain data"),
            best_val_rec_loss: self.best_val,
            vqtok_version: env!("CARGO_PKG_VERSION").into(),
        };
        let content = CheckpointContent {
            config: &self.cfg,
            model: &self.vs,
            discriminator: self.calc.checkpoint_state(),
            optimizer_ae: self.opt_ae.state_dict(),
            scheduler: self.schedule.state(self.step),
            state: &state,
        };
        if let Some(tensor) = content.first_non_finite() {
            return Err(TrainError::NonFiniteState {
                step: self.step,
                tensor,
                last: out.store.latest().map(|c| c.dir().to_path_buf()),
            });
        }
        out.store
            .save(self.step, |dir| checkpoint::write(dir, &content))
            .map(Some)
            .map_err(TrainError::from)
    }
}

/// What writes the run folder (held by rank 0 alone).
struct Outputs {
    store: CheckpointStore,
    tb: EventWriter,
    metrics: MetricsLog,
}

/// Rates over one log interval.
#[derive(Default)]
struct Window {
    steps: u64,
    frames: u64,
    time: Duration,
    wait: Duration,
}

/// The seed of `step`'s RNG (SplitMix64 of seed and step: independent streams).
fn step_seed(seed: u64, step: u64) -> u64 {
    let mut z = seed ^ step.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) >> 1
}

/// A resume must not change what the weights mean or how training proceeds; only
/// the keys in [`RESUMABLE_CHANGES`] may differ.
fn check_resumable(now: &Config, saved: &Config, checkpoint: &Path) -> Result<(), TrainError> {
    let differences: Vec<String> = json_diff(&saved.to_json(), &now.to_json())
        .into_iter()
        .filter(|d| {
            !RESUMABLE_CHANGES
                .iter()
                .any(|k| d.starts_with(&format!("{k}:")))
        })
        .collect();
    if differences.is_empty() {
        Ok(())
    } else {
        Err(TrainError::ResumeMismatch {
            checkpoint: checkpoint.to_path_buf(),
            differences,
        })
    }
}
