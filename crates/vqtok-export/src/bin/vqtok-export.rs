//! `vqtok-export export …` writes a model folder; `vqtok-export verify …` checks one
//! against a reference file from the tch model. Exit status: 0 ok, 1 a verification
//! gate failed or an internal error, 2 bad input (files, config, weights).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use vqtok_core::exit;
use vqtok_export::{ExportError, ExportOptions, ModelSource, VerifyOptions};
use vqtok_run::ModelArgs;
use vqtok_runtime::SessionOptions;

#[derive(Parser)]
#[command(
    name = "vqtok-export",
    about = "Checkpoint → ONNX encoder/decoder, and their verification"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct RuntimeArgs {
    /// libonnxruntime.so to load (default: $ORT_DYLIB_PATH, else beside this binary, else the
    /// path it was built with).
    #[arg(long)]
    ort_lib: Option<PathBuf>,
    /// Frames per ONNX Runtime call during verification.
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Intra-op threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Subcommand)]
enum Command {
    /// Write encoder/decoder graphs, codebooks, weights.safetensors + param.json and
    /// manifest.json for a checkpoint.
    #[command(
        after_help = "Examples:\n  vqtok-export export --ckpt runs/x --out models/x\n  \
        vqtok-export export --weights model.safetensors --config param.json --out models/x --reference ref.safetensors"
    )]
    Export {
        #[command(flatten)]
        model: ModelArgs,
        /// Output model folder (created; our files in it are replaced).
        #[arg(long)]
        out: PathBuf,
        /// Reference file from the tch model: verify and record the report in manifest.json.
        #[arg(long)]
        reference: Option<PathBuf>,
        /// Skip encoder_float.onnx / decoder_float.onnx (verification needs them).
        #[arg(long, conflicts_with = "reference")]
        no_float: bool,
        /// Bytes of weights per graph above which they go to `<graph>.onnx.data`.
        #[arg(long, default_value_t = vqtok_export::DEFAULT_EXTERNAL_DATA_THRESHOLD)]
        external_data_threshold: u64,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// Verify a model folder against a reference file; records the report in manifest.json.
    #[command(
        after_help = "Example:\n  vqtok-export verify --model models/x --reference ref.safetensors"
    )]
    Verify {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        reference: PathBuf,
        /// Print the report without writing it into manifest.json.
        #[arg(long)]
        no_record: bool,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
}

/// Runs verification and prints the report; Ok(false) when a gate failed.
fn verify_and_report(
    model: &Path,
    reference: &Path,
    rt: &RuntimeArgs,
    record: bool,
) -> anyhow::Result<bool> {
    vqtok_runtime::session::init(rt.ort_lib.as_deref())?;
    let options = VerifyOptions {
        batch_size: rt.batch,
        session: SessionOptions {
            threads: rt.threads,
            ..SessionOptions::default()
        },
        ..VerifyOptions::default()
    };
    let report = vqtok_export::verify(model, reference, &options)?;
    println!("{report}");
    if record {
        vqtok_export::verify::record(model, &report)?;
    }
    Ok(report.passed)
}

fn run(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        Command::Export {
            model,
            out,
            reference,
            no_float,
            external_data_threshold,
            runtime: rt,
        } => {
            let files = model.resolve()?;
            let mut ckpt = ModelSource::files(&files.weights, &files.config)?;
            let options = ExportOptions {
                float_variants: !no_float,
                external_data_threshold,
            };
            let manifest = vqtok_export::export(&ckpt.config, &mut ckpt.weights, &out, &options)?;
            for name in ckpt.weights.unused() {
                eprintln!("warning: checkpoint tensor `{name}` is not part of the exported model");
            }
            let total: u64 = manifest.files.values().map(|f| f.bytes).sum();
            println!(
                "wrote {} ({} files, {:.1} MB): {} {}",
                out.display(),
                manifest.files.len() + 1,
                total as f64 / 1e6,
                manifest.family,
                manifest.grid_rule
            );
            match reference {
                Some(r) => verify_and_report(&out, &r, &rt, true),
                None => Ok(true),
            }
        }
        Command::Verify {
            model,
            reference,
            no_record,
            runtime: rt,
        } => verify_and_report(&model, &reference, &rt, !no_record)
            .with_context(|| format!("verifying {}", model.display())),
    }
}

fn main() -> ExitCode {
    // SAFETY: first statement of main, before any thread exists. The onnxruntime
    // 1.31 wheel otherwise writes a telemetry database under ~/.cache.
    unsafe { std::env::set_var("ORT_DISABLE_TELEMETRY", "1") };
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(exit::FAILURE),
        Err(e) => exit::report(
            &e,
            &[
                exit::blame::<ExportError>,
                exit::blame::<vqtok_run::RunError>,
                exit::blame::<vqtok_runtime::RuntimeError>,
            ],
        ),
    }
}
