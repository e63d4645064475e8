//! `cargo xtask …`: the project's scripts, in Rust (rust-analyzer's xtask pattern).
//!
//! Every command that needs the environment runs `setup` first, which is quick when
//! nothing is missing, so each command works on a fresh machine as written in README.

mod agreement;
mod bench;
mod bench_train;
mod bins;
mod check_config;
mod ci;
mod demo;
mod export;
mod import_taming;
mod setup;
mod train;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "vqtok project automation",
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install Debian packages, the Python venv, LPIPS weights and sample videos (idempotent).
    #[command(after_help = "Example:\n  cargo xtask setup")]
    Setup,
    /// Setup, then rustfmt --check, clippy -D warnings, and every test (what CI runs).
    /// `--deploy`: instead, the deploy/ tier on a real Slurm and podman (root; CI runs it too).
    #[command(
        after_help = "Examples:\n  cargo xtask test\n  cargo xtask test -- -p vqtok-config\n  cargo xtask test --deploy"
    )]
    Test {
        /// Run the deploy/ tier (tests/deploy.rs): installs slurm-wlm, munge, podman, runc
        /// and debootstrap, starts a single-node Slurm, builds the container image.
        #[arg(long)]
        deploy: bool,
        /// Extra arguments for `cargo test` (after `--`).
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
    /// Train or resume a run: `vqtok-train train` with these arguments (try `--help`).
    #[command(
        disable_help_flag = true,
        after_help = "Examples:\n  cargo xtask train --config configs/taming_tiny.json --data videos/ --out runs/tiny\n  \
                      cargo xtask train --out runs/tiny --resume --steps 600\n  \
                      cargo xtask train --nproc-per-node 2 --config configs/taming_tiny.json --data videos/ --out runs/tiny2\n  \
                      cargo xtask train --help"
    )]
    Train {
        /// Build the release profile.
        #[arg(long)]
        release: bool,
        /// Data-parallel on this machine: N ranks under the venv's torchrun (one per GPU;
        /// Gloo on CPUs). Put it before vqtok-train's own arguments.
        #[arg(long, value_name = "N")]
        nproc_per_node: Option<usize>,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Validation table of a checkpoint: `vqtok-train eval` with these arguments.
    #[command(
        disable_help_flag = true,
        after_help = "Example:\n  cargo xtask eval --run runs/tiny [--ckpt runs/tiny/checkpoints/step_0000300]"
    )]
    Eval {
        #[arg(long)]
        release: bool,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Export a trained model to an ONNX model folder and verify it against the tch model.
    #[command(
        after_help = "Examples:\n  cargo xtask export --ckpt runs/tiny --out models/tiny\n  \
        cargo xtask export --weights model.safetensors --config param.json --out models/imported"
    )]
    Export {
        #[command(flatten)]
        model: vqtok_run::ModelArgs,
        #[arg(long)]
        out: std::path::PathBuf,
        /// Skip verification (manifest.json then says it was not run).
        #[arg(long)]
        no_verify: bool,
        #[arg(long)]
        release: bool,
    },
    /// Verify a model folder against the tch model it came from (token agreement, decoder
    /// |Δ|, ΔPSNR).
    #[command(after_help = "Example:\n  cargo xtask verify --ckpt runs/tiny --model models/tiny")]
    Verify {
        #[command(flatten)]
        source: vqtok_run::ModelArgs,
        #[arg(long)]
        model: std::path::PathBuf,
        /// Where the torch engine runs for the token-agreement report (cpu, cuda, cuda:N).
        #[arg(long, default_value = "cpu")]
        device: String,
        #[arg(long)]
        release: bool,
    },
    /// Validate param.json files: one summary line each, exit 2 on the first invalid one.
    #[command(after_help = "Example:\n  cargo xtask check-config configs/*.json")]
    CheckConfig {
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// The README's first command: train a small tokenizer on real sample clips on the CPU,
    /// export + verify it, tokenize frames it never saw and decode them back (prints the
    /// PSNR, writes compare.png).
    #[command(
        after_help = "Examples:\n  cargo xtask demo                 # a few minutes on 2 cores; files in runs/demo/\n  \
        cargo xtask demo --steps 480     # longer training, better reconstructions"
    )]
    Demo {
        /// Training steps (default: configs/demo.json's).
        #[arg(long)]
        steps: Option<u64>,
        /// libtorch threads (default: the CPUs this process may use). On a machine shared
        /// with other busy processes, 1 can be faster.
        #[arg(long, default_value_t = std::thread::available_parallelism().map_or(1, usize::from))]
        threads: usize,
        /// Output folder (run, model, token file, reconstruction).
        #[arg(long, default_value = "runs/demo")]
        out: std::path::PathBuf,
        /// Build the release profile.
        #[arg(long)]
        release: bool,
    },
    /// Tokenizing benchmarks: ours (criterion) against Python onnxruntime and PyTorch eager,
    /// case by case on this machine, with a table of frames/s and ratios.
    #[command(
        after_help = "Examples:\n  cargo xtask bench                      # tiny and seed, batch 1 and 8 (~30 min on 2 cores)\n  \
        cargo xtask bench --models tiny --quick\n  cargo xtask bench --models seed --threads 2 --iters 5"
    )]
    Bench {
        /// Models to time: tiny (configs/taming_tiny.json at 64²), seed (the f16 VQGAN at 256²).
        #[arg(long, value_delimiter = ',', default_value = "tiny,seed")]
        models: Vec<String>,
        /// Intra-op threads of every runtime.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Timed calls per Python runtime and case (after one warm-up call).
        #[arg(long, default_value_t = 3)]
        iters: usize,
        /// Batch 1 only.
        #[arg(long)]
        quick: bool,
    },
    /// Training step: vqtok-train against the project's PyTorch reference of the same step
    /// (benches/train_step.py, eager and torch.compile), img/s, peak memory and ratios.
    #[command(
        after_help = "Examples:\n  cargo xtask bench-train --config configs/taming_tiny.json --device cpu --batch 2 --steps 4 --warmup 2 --threads 2\n  \
        cargo xtask bench-train --config configs/taming_vqgan_f16_1024.json --device cuda --amp bf16 --batch 16 --sequence-length 1 --steps 10 --warmup 10 --repeat 2\n  \
        cargo xtask bench-train --modes vqtok,eager --disc-start config"
    )]
    BenchTrain(bench_train::BenchTrainArgs),
    /// Convert a taming Lightning .ckpt into a safetensors state dict (autoencoder + discriminator).
    #[command(
        after_help = "Example:\n  cargo xtask import-taming --ckpt logs/vqgan/checkpoints/last.ckpt --out model.safetensors"
    )]
    ImportTaming {
        /// The Lightning checkpoint (its `state_dict` is read; nothing in it is executed).
        #[arg(long)]
        ckpt: std::path::PathBuf,
        /// The safetensors file to write (taming's key names; loss.perceptual_loss.* dropped).
        #[arg(long)]
        out: std::path::PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Setup => setup::run(),
        Command::Test { cargo_args, deploy } => ci::run(&cargo_args, deploy),
        Command::CheckConfig { files } => check_config::run(&files),
        Command::Train {
            release,
            nproc_per_node,
            args,
        } => match nproc_per_node {
            Some(n) => train::run_ranks(n, &args, release),
            None => train::run("train", &args, release),
        },
        Command::Eval { release, args } => train::run("eval", &args, release),
        Command::Export {
            model,
            out,
            no_verify,
            release,
        } => export::export(&model, &out, no_verify, release),
        Command::Verify {
            source,
            model,
            device,
            release,
        } => export::verify(&source, &model, &device, release),
        Command::ImportTaming { ckpt, out } => import_taming::run(&ckpt, &out),
        Command::BenchTrain(args) => bench_train::run(&args),
        Command::Demo {
            steps,
            threads,
            out,
            release,
        } => demo::run_demo(&demo::DemoArgs {
            steps,
            threads,
            out,
            release,
        }),
        Command::Bench {
            models,
            threads,
            iters,
            quick,
        } => bench::run(&bench::BenchArgs {
            models,
            threads,
            iters,
            quick,
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => vqtok_core::exit::report(&e, &[]),
    }
}
