//! `vqtok-train`: train a tokenizer, evaluate a checkpoint, or write the tch reference
//! that `vqtok-export verify` compares the ONNX graphs against.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use vqtok_config::Config;
use vqtok_core::exit;
use vqtok_train::loss::{LossCalculator, LossOptions, Lpips, Split, lpips_weights_path};
use vqtok_train::model::create_model;
use vqtok_train::state_dict::{LoadOptions, load_state_dict};
use vqtok_train::train::checkpoint::{self, MODEL_FILE};
use vqtok_train::train::checkpoint_store::resolve;
use vqtok_train::train::data::DataSource;
use vqtok_train::train::device::resolve_device;
use vqtok_train::train::evaluate::evaluate;
use vqtok_train::train::pixels::PixelNorm;
use vqtok_train::train::signals::install_stop_flag;
use vqtok_train::train::{TrainError, TrainOptions, Trainer};

#[derive(Parser)]
#[command(
    name = "vqtok-train",
    version,
    about = "Train VQ video tokenizers on libtorch (CPU or CUDA)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// libtorch CPU threads (default: libtorch's choice).
    #[arg(long, global = true)]
    threads: Option<i32>,
}

#[derive(Subcommand)]
enum Command {
    /// Train (or resume) a run.
    #[command(after_help = "Examples:\n  \
        vqtok-train train --config configs/taming_tiny.json --data videos/ --out runs/tiny\n  \
        vqtok-train train --out runs/tiny --resume --steps 600        # continue to step 600\n  \
        vqtok-train train --config configs/taming_vqgan_f16_1024.json --data synthetic --out runs/bench --steps 30")]
    Train {
        /// param.json (optional with --resume: the checkpoint's config is used).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Training data: directory, glob, .txt/.jsonl manifest, or `synthetic[:N]`; replaces data_args.train.
        #[arg(long)]
        data: Vec<String>,
        /// Run folder (checkpoints/, tensorboard/, metrics.jsonl, param.json).
        #[arg(long)]
        out: PathBuf,
        /// auto, cpu, cuda or cuda:N (overrides train_args.device).
        #[arg(long)]
        device: Option<String>,
        /// Continue from the run's latest checkpoint, or from the given checkpoint folder.
        #[arg(long, num_args = 0..=1)]
        resume: Option<Option<PathBuf>>,
        /// Train until this many steps in total (overrides train_args.num_steps).
        #[arg(long)]
        steps: Option<u64>,
        /// Clips per batch (overrides train_args.batch_size).
        #[arg(long)]
        batch_size: Option<usize>,
        /// No progress bar or interval lines.
        #[arg(long)]
        quiet: bool,
    },
    /// Validation metrics of a checkpoint (rec loss, PSNR, SSIM, LPIPS, codebook usage).
    #[command(
        after_help = "Example:\n  vqtok-train eval --run runs/tiny\n  vqtok-train eval --run runs/tiny --ckpt runs/tiny/checkpoints/step_0000200"
    )]
    Eval {
        #[arg(long)]
        run: PathBuf,
        /// A checkpoint folder (default: the run's latest).
        #[arg(long)]
        ckpt: Option<PathBuf>,
        /// Evaluate on these videos instead of the config's validation data.
        #[arg(long)]
        data: Vec<String>,
        /// Validation batches (default: train_args.val_batches).
        #[arg(long)]
        batches: Option<usize>,
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// Write the tch reference file for `vqtok-export verify`.
    #[command(
        after_help = "Example:\n  vqtok-train reference --ckpt runs/tiny/checkpoints/latest --out ref.safetensors"
    )]
    Reference {
        /// A checkpoint folder or run folder.
        #[arg(long)]
        ckpt: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Held-out validation batches to include (from the config's or --data's videos).
        #[arg(long, default_value_t = 2)]
        val_batches: usize,
        /// Random-noise frames to include as well.
        #[arg(long, default_value_t = 4)]
        random: i64,
        /// Data for the held-out frames (default: the config's data_args).
        #[arg(long)]
        data: Vec<String>,
        #[arg(long, default_value = "cpu")]
        device: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        tch::set_num_threads(n);
    }
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => exit::report(&e, &[exit::blame::<TrainError>]),
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Train {
            config,
            data,
            out,
            device,
            resume,
            steps,
            batch_size,
            quiet,
        } => {
            let resume = match resume {
                None => None,
                Some(None) => Some(resolve(&out).map_err(TrainError::from)?),
                Some(Some(p)) => Some(resolve(&p).map_err(TrainError::from)?),
            };
            let mut cfg = match (&config, &resume) {
                (Some(path), _) => load_config(path)?,
                (None, Some(ckpt)) => load_config(&ckpt.join(checkpoint::CONFIG_FILE))?,
                (None, None) => return Err(usage("--config is required unless --resume is given")),
            };
            if !data.is_empty() {
                cfg.data.train = data;
            }
            if let Some(n) = steps {
                cfg.train.num_steps = n;
            }
            if let Some(b) = batch_size.filter(|&b| b > 0) {
                cfg.train.batch_size = b;
            }
            if let Some(d) = device {
                cfg.train.device = d;
            }
            let device = resolve_device(&cfg.train.device)?;
            let stop = install_stop_flag().context("installing the Ctrl-C handler")?;
            let mut trainer = Trainer::new(
                cfg,
                TrainOptions {
                    run_dir: out.clone(),
                    resume,
                    device,
                    quiet,
                },
            )?;
            let summary = trainer.run(&stop)?;
            let ckpt = summary
                .last_checkpoint
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "none".into());
            eprintln!(
                "{} at step {} ({} skipped steps); last checkpoint: {ckpt}",
                if summary.interrupted {
                    "interrupted"
                } else {
                    "done"
                },
                summary.step,
                summary.skipped_steps
            );
            Ok(())
        }
        Command::Eval {
            run,
            ckpt,
            data,
            batches,
            device,
        } => {
            let dir = resolve(ckpt.as_deref().unwrap_or(&run)).map_err(TrainError::from)?;
            let mut cfg = load_config(&dir.join(checkpoint::CONFIG_FILE))?;
            if !data.is_empty() {
                // Exactly these files are evaluated (not a hash split of them).
                cfg.data.val = data;
            }
            let device = resolve_device(&device)?;
            let report =
                eval_checkpoint(&cfg, &dir, device, batches.unwrap_or(cfg.train.val_batches))?;
            println!("checkpoint {}", dir.display());
            print!("{}", report.table());
            Ok(())
        }
        Command::Reference {
            ckpt,
            out,
            val_batches,
            random,
            data,
            device,
        } => {
            let dir = resolve(&ckpt).map_err(TrainError::from)?;
            let mut cfg = load_config(&dir.join(checkpoint::CONFIG_FILE))?;
            if !data.is_empty() {
                // Exactly these files are evaluated (not a hash split of them).
                cfg.data.val = data;
            }
            let device = resolve_device(&device)?;
            let frames = reference_frames(&cfg, val_batches, random)?;
            vqtok_train::reference::write_reference(&cfg, &dir, &frames, device, &out)?;
            eprintln!("wrote {} ({} frames)", out.display(), frames.size()[0]);
            Ok(())
        }
    }
}

fn usage(msg: &str) -> anyhow::Error {
    TrainError::Usage(msg.into()).into()
}

fn load_config(path: &Path) -> Result<Config> {
    Config::from_path(path).map_err(|e| usage(&e.to_string()))
}

/// Held-out frames from the validation source (when it has data) plus seeded noise.
fn reference_frames(cfg: &Config, val_batches: usize, random: i64) -> Result<Tensor> {
    let r = cfg.data_resolution() as i64;
    let mut parts = Vec::new();
    if val_batches > 0 && !(cfg.data.train.is_empty() && cfg.data.val.is_empty()) {
        // Held-out clips make the check realistic; without the data (moved, another
        // machine) the random frames still check every graph.
        match DataSource::open(cfg, Split::Val, None) {
            Ok(mut data) => {
                for _ in 0..val_batches {
                    let Some(b) = data.next_batch()? else { break };
                    let [bb, d, h, w, c] = b.shape.map(|v| v as i64);
                    parts.push(Tensor::from_slice(&b.images).view([bb * d, h, w, c]));
                }
            }
            Err(e) => eprintln!(
                "warning: no held-out clips for the reference ({e}); using random frames only"
            ),
        }
    }
    if random > 0 {
        tch::manual_seed(0x7e57);
        parts.push(
            Tensor::randint(256, [random, r, r, 3], (Kind::Int64, Device::Cpu))
                .to_kind(Kind::Uint8),
        );
    }
    if parts.is_empty() {
        return Err(usage(
            "no frames for the reference: give --data, or --random N > 0",
        ));
    }
    Ok(Tensor::cat(&parts, 0))
}

fn eval_checkpoint(
    cfg: &Config,
    dir: &Path,
    device: Device,
    batches: usize,
) -> Result<vqtok_train::train::evaluate::EvalReport> {
    let vs = VarStore::new(device);
    let model = create_model(&cfg.model, &vs.root()).map_err(TrainError::from)?;
    let opts = LoadOptions {
        ignore_prefixes: vec!["loss.".into()],
        ..LoadOptions::default()
    };
    load_state_dict(&vs, dir.join(MODEL_FILE), &opts).map_err(TrainError::from)?;
    let mut calc = LossCalculator::new(cfg, model.as_ref(), &LossOptions::new(device))
        .map_err(TrainError::from)?;
    let named: std::collections::HashMap<String, Tensor> =
        Tensor::read_safetensors(dir.join(MODEL_FILE))?
            .into_iter()
            .collect();
    // Validation needs the discriminator's weights only, not its optimizer.
    calc.load_checkpoint_state(&named, None, &dir.join(MODEL_FILE))
        .map_err(TrainError::from)?;
    let lpips = match lpips_weights_path(None) {
        Ok(p) if p.exists() => {
            Some(Lpips::load(&p, device, Kind::Float).map_err(TrainError::from)?)
        }
        _ => None,
    };
    let levels: Vec<(String, i64)> = cfg
        .model
        .levels()
        .iter()
        .map(|l| (l.name.to_string(), l.size as i64))
        .collect();
    let norm = PixelNorm::new(&cfg.data.normalize, device);
    let mut data = DataSource::open(cfg, Split::Val, None)?;
    let state: checkpoint::TrainState =
        serde_json::from_str(&std::fs::read_to_string(dir.join(checkpoint::STATE_FILE))?)?;
    Ok(evaluate(
        model.as_ref(),
        &levels,
        &calc,
        &norm,
        &mut data,
        batches,
        lpips.as_ref(),
        state.step,
    )?)
}
