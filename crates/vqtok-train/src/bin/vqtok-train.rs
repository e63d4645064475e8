//! `vqtok-train`: train a tokenizer, evaluate a checkpoint, or write the tch reference
//! that `vqtok-export verify` compares the ONNX graphs against.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tch::Device;
use vqtok_config::Config;
use vqtok_core::exit;
use vqtok_run::{Checkpoint, ModelArgs};
use vqtok_train::dist::{self, Launch};
use vqtok_train::reference;
use vqtok_train::train::device::resolve_device;
use vqtok_train::train::evaluate::eval_checkpoint;
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
    /// Train (or resume) a run; started by torchrun or srun, one rank of a data-parallel job.
    #[command(after_help = "Examples:\n  \
        vqtok-train train --config configs/taming_tiny.json --data videos/ --out runs/tiny\n  \
        vqtok-train train --out runs/tiny --resume --steps 600        # continue to step 600\n  \
        vqtok-train train --config configs/taming_vqgan_f16_1024.json --data synthetic --out runs/bench --steps 30\n\n\
        Data parallel (batch_size is per rank; every rank needs the same --out on a shared file system):\n  \
        torchrun --standalone --nproc-per-node 8 --no-python vqtok-train train --config c.json --data videos/ --out runs/big\n  \
        srun --ntasks-per-node 8 --kill-on-bad-exit=1 vqtok-train train --config c.json --data videos/ --out runs/big\n  \
        cargo xtask train --nproc-per-node 2 --config configs/taming_tiny.json --data videos/ --out runs/tiny2\n\
        A rank loads Python's torch.distributed from $VQTOK_PYTHON's venv (the torch this binary links).")]
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
        /// Seconds a rank waits for the others (rendezvous and every collective) before
        /// the job ends; must exceed rank 0's longest validation pass.
        #[arg(long, default_value_t = 600.0)]
        dist_timeout: f64,
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
        after_help = "Examples:\n  vqtok-train reference --ckpt runs/tiny --out ref.safetensors\n  \
        vqtok-train reference --weights model.safetensors --config param.json --out ref.safetensors --data clips/"
    )]
    Reference {
        #[command(flatten)]
        model: ModelArgs,
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
    // Reads FAILPOINTS; a no-op unless built with the `failpoints` feature (tests).
    let _failpoints = fail::FailScenario::setup();
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        tch::set_num_threads(n);
    }
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => exit::report(
            &e,
            &[
                exit::blame::<TrainError>,
                exit::blame::<vqtok_run::RunError>,
            ],
        ),
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
            dist_timeout,
        } => {
            let resume = match resume {
                None => None,
                Some(None) => Some(Checkpoint::resolve(&out)?),
                Some(Some(p)) => Some(Checkpoint::resolve(&p)?),
            };
            let mut cfg = match (&config, &resume) {
                (Some(path), _) => load_config(path)?,
                (None, Some(ckpt)) => ckpt.config()?,
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
            let mut device = resolve_device(&cfg.train.device)?;
            if let Some(launch) = Launch::detect()? {
                // One GPU per rank: the node's LOCAL_RANK-th.
                if let Device::Cuda(_) = device {
                    device = resolve_device(&format!("cuda:{}", launch.local_rank))?;
                }
                if !(dist_timeout.is_finite() && dist_timeout > 0.0) {
                    return Err(usage("--dist-timeout must be a positive number of seconds"));
                }
                let (rank, world) = (launch.rank, launch.world_size);
                let g = dist::init(launch, device, Duration::from_secs_f64(dist_timeout))?;
                eprintln!(
                    "rank {rank}/{world}: {} group ready; {}",
                    g.backend, g.describe
                );
            }
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
            if !dist::is_root() {
                return Ok(()); // rank 0 reports for the job
            }
            let ckpt = summary
                .last_checkpoint
                .map(|c| c.dir().display().to_string())
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
            let ck = Checkpoint::resolve(ckpt.as_deref().unwrap_or(&run))?;
            let mut cfg = ck.config()?;
            if !data.is_empty() {
                // Exactly these files are evaluated (not a hash split of them).
                cfg.data.val = data;
            }
            let device = resolve_device(&device)?;
            let report =
                eval_checkpoint(&cfg, &ck, device, batches.unwrap_or(cfg.train.val_batches))?;
            println!("checkpoint {}", ck.dir().display());
            print!("{report}");
            Ok(())
        }
        Command::Reference {
            model,
            out,
            val_batches,
            random,
            data,
            device,
        } => {
            let files = model.resolve()?;
            let (mut cfg, weights) = (load_config(&files.config)?, files.weights);
            if !data.is_empty() {
                // Exactly these files are used (not a hash split of them).
                cfg.data.val = data;
            }
            let device = resolve_device(&device)?;
            let frames = reference::reference_frames(&cfg, val_batches, random)?;
            reference::write_reference(&cfg, &weights, &frames, device, &out)?;
            eprintln!(
                "wrote {} ({} frames, {} of them held-out)",
                out.display(),
                frames.frames.size()[0],
                frames.held_out
            );
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
