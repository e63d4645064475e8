//! `vqtokenize`: videos → token files (`encode`, the default), token files → videos
//! (`decode`), `info`, `index` (merge the shards' corpus index parts) and `compare`
//! (token agreement of two files). Exit status: 0 ok; 1 an internal failure, or any input
//! failed when several were given; 2 bad usage or a bad single input (missing model
//! folder, unreadable video, token file of another model). The work and the reports are
//! vqtok-infer's; this file parses arguments and prints.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::json;
use vqtok_core::exit;
use vqtok_infer::batch::{self, BatchOptions};
use vqtok_infer::engine::{EncoderArgs, EngineArgs};
use vqtok_infer::index;
use vqtok_infer::progress::{BarReporter, Bars, FileProgress, NoProgress};
use vqtok_infer::shard::{self, Shard};
use vqtok_infer::summary::EncodeSummary;
use vqtok_infer::tokens::stored_metadata;
use vqtok_infer::{
    Compare, DecodeOptions, EncodeOptions, Framing, InferError, OutputSize, Selection, SizeRule,
    TokenFile, decode_tokens,
};
use vqtok_runtime::GraphKind;
use vqtok_video::Fit;

const EXAMPLES: &str = "Examples:
  vqtokenize clip.mp4 -m models/f16                  # → clip.vqt.safetensors
  vqtokenize videos/ -o tokens/ --jobs 2 --stride 2  # a folder tree; resumes where it stopped
  vqtokenize list.jsonl -o tokens/ --size source --json
  vqtokenize corpus/ -o tokens/ --shard 2/8          # this machine's eighth of the corpus
  vqtokenize corpus/ -o tokens/ --shards 8           # under a Slurm array / Indexed Job
  vqtokenize index tokens/                           # → tokens/index.jsonl + summary
  vqtokenize decode clip.vqt.safetensors -o recon.mp4 --psnr --compare compare.png
  vqtokenize info clip.vqt.safetensors
  vqtokenize videos/ -o tokens/ --engine torch --device cuda --precision bf16  # --features torch

The model folder is -m, else $VQTOK_MODEL, else ./model.";

#[derive(Parser)]
#[command(
    name = "vqtokenize",
    version,
    about = "Videos → VQ token files → videos, with a vqtok model folder (ONNX Runtime)",
    after_help = EXAMPLES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Videos → token files (the default command: `vqtokenize clip.mp4` = `vqtokenize encode clip.mp4`).
    #[command(after_help = EXAMPLES)]
    Encode(EncodeArgs),
    /// A token file → a video (refuses token files of another model).
    #[command(
        after_help = "Example:\n  vqtokenize decode clip.vqt.safetensors -o recon.mp4 -m models/f16 --psnr --compare compare.png"
    )]
    Decode(DecodeArgs),
    /// Print what a token file holds.
    #[command(after_help = "Example:\n  vqtokenize info clip.vqt.safetensors --json")]
    Info(InfoArgs),
    /// Merge OUT/_index/shard-I-of-N.jsonl (written by each encode run into OUT) into
    /// OUT/index.jsonl; exit 1 if shards are missing.
    #[command(after_help = "Example:\n  vqtokenize index tokens/ --json")]
    Index(IndexArgs),
    /// How many tokens of two token files of the same frames agree (engines, precisions).
    #[command(
        after_help = "Example:\n  vqtokenize compare ort/clip.vqt.safetensors torch/clip.vqt.safetensors"
    )]
    Compare(CompareArgs),
}

#[derive(Args)]
struct IndexArgs {
    /// The output folder the shards encoded into.
    out: PathBuf,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// How much is printed.
#[derive(Args)]
struct Output {
    /// No progress bars or per-file lines (errors are still printed).
    #[arg(short, long)]
    quiet: bool,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct EncodeArgs {
    /// Videos, directories (recursive), globs, or .txt / .jsonl manifests.
    #[arg(required = true)]
    inputs: Vec<String>,
    /// Token file (one input) or output folder (mirrors the input tree); default: next
    /// to each input as NAME.vqt.safetensors.
    #[arg(short, long)]
    out: Option<PathBuf>,
    /// Model input size: `model` (the training resolution, square), N, WxH, or `source`
    /// (the source size rounded to the model's factor).
    #[arg(long, default_value = "model")]
    size: SizeRule,
    /// How a source maps onto that size.
    #[arg(long, value_enum, default_value = "crop")]
    fit: Fit,
    /// Resample to this frame rate first (default: the video's own).
    #[arg(long)]
    fps: Option<f64>,
    /// Take every N-th frame.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    stride: u64,
    /// Seconds to skip at the start.
    #[arg(long, default_value_t = 0.0)]
    start: f64,
    /// Seconds to tokenize (default: to the end).
    #[arg(long)]
    duration: Option<f64>,
    /// At most this many frames per video.
    #[arg(long)]
    max_frames: Option<usize>,
    /// Videos encoded at the same time (decoding in parallel; the model takes turns).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    jobs: u64,
    /// Re-encode even where a valid token file exists.
    #[arg(long)]
    force: bool,
    /// FFmpeg decoder threads per video (0: one per core). More keep a GPU fed from
    /// large videos; on a CPU the model wants the cores.
    #[arg(long, default_value_t = 1)]
    decode_threads: usize,
    /// Tokenize only shard I of N of the inputs (e.g. 0/4). Default: from
    /// $SLURM_ARRAY_TASK_ID, $JOB_COMPLETION_INDEX or $RANK, else everything.
    #[arg(long, value_name = "I/N")]
    shard: Option<Shard>,
    /// Number of shards, when the index comes from the environment (a Kubernetes Indexed
    /// Job's completions; a Slurm array whose ids are not 0..N-1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    shards: Option<u64>,
    /// Exit 0 even when some inputs are unusable (unreadable, corrupt, no video …): they
    /// are reported and listed in the index. Other failures still exit 1. For corpus jobs,
    /// where a scheduler should not mark a task failed for one broken file.
    #[arg(long)]
    allow_bad_inputs: bool,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    encoder: EncoderArgs,
    #[command(flatten)]
    output: Output,
}

#[derive(Args)]
struct DecodeArgs {
    /// A token file.
    tokens: PathBuf,
    /// Video to write (default: NAME.recon.mp4 next to the token file).
    #[arg(short, long)]
    out: Option<PathBuf>,
    /// `model`: the tokenized frames as they are; `source`: pad bars removed, scaled
    /// back to the source's pixel size.
    #[arg(long, value_enum, default_value = "model")]
    size: OutputSize,
    /// Frame rate of the video (default: the token file's).
    #[arg(long)]
    fps: Option<f64>,
    /// libx264 quality (0 lossless … 51).
    #[arg(long, default_value_t = 18, value_parser = clap::value_parser!(u8).range(0..=51))]
    crf: u8,
    /// Compare with the source frames the tokens were made from and print the PSNR.
    #[arg(long)]
    psnr: bool,
    /// Write a PNG of source frames above their reconstructions (needs the source video).
    #[arg(long, value_name = "PNG")]
    compare: Option<PathBuf>,
    /// Frames in the --compare picture, evenly spread over the clip.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64), requires = "compare")]
    compare_frames: u64,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    output: Output,
}

#[derive(Args)]
struct InfoArgs {
    #[arg(required = true)]
    tokens: Vec<PathBuf>,
    /// Print the metadata as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct CompareArgs {
    a: PathBuf,
    b: PathBuf,
    /// Print the counts as JSON.
    #[arg(long)]
    json: bool,
}

/// `vqtokenize clip.mp4 …` means `vqtokenize encode clip.mp4 …`.
fn with_default_command(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    const KNOWN: [&str; 10] = [
        "encode",
        "decode",
        "info",
        "index",
        "compare",
        "help",
        "-h",
        "--help",
        "-V",
        "--version",
    ];
    if let Some(first) = args.get(1)
        && !KNOWN.contains(&first.to_string_lossy().as_ref())
    {
        args.insert(1, "encode".into());
    }
    args
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Ok(exit code) for a finished run.
fn encode(args: EncodeArgs) -> anyhow::Result<u8> {
    let shard = shard::resolve(args.shard, args.shards.map(|n| n as usize), &|name| {
        std::env::var(name).ok()
    })?;
    let engine = args.engine.open_encoder(&args.encoder)?;
    let model = &engine.model;
    let plan = batch::plan(&args.inputs, args.out.as_deref())?.only(shard.shard);
    // The corpus index part goes into an output folder (not next to the inputs, nor for
    // a single token file).
    let index_dir = args.out.as_deref().filter(|o| !batch::names_one_file(o));
    let options = BatchOptions {
        encode: EncodeOptions {
            selection: Selection {
                start_s: args.start,
                duration_s: args.duration,
                stride: args.stride as usize,
                fps: args.fps,
                max_frames: args.max_frames,
            },
            framing: Framing {
                size: args.size,
                fit: args.fit,
            },
            batch: args.engine.batch as usize,
            decode_threads: args.decode_threads,
        },
        jobs: args.jobs as usize,
        force: args.force,
    };
    let quiet = args.output.quiet;
    let started = std::time::Instant::now();
    let res = model.resolution();
    let bars = Bars::new(plan.jobs.len(), model.tokens_per_frame(res, res), !quiet);
    if !quiet {
        bars.println(&format!(
            "model {} ({}, {}), {}",
            model.dir().display(),
            model.family(),
            &model.id()[..12],
            engine.device
        ));
        if shard.shard != Shard::ALL {
            bars.println(&format!(
                "shard {} ({}): {} input(s)",
                shard.shard,
                shard.source,
                plan.jobs.len() + plan.failed.len()
            ));
        }
    }
    for (spec, reason) in &plan.failed {
        bars.println(&format!("error: {spec}: {reason}"));
    }
    let reporter = BarReporter { bars: &bars, quiet };
    let outcomes = batch::run(model, &*engine.encoder, &plan.jobs, &options, &reporter);
    bars.finish();
    if let Some(out) = index_dir {
        let part = index::write_shard(out, shard.shard, &index::entries(model, &plan, &outcomes))?;
        if !quiet {
            eprintln!("index part {}", part.display());
        }
    }
    let summary = EncodeSummary::new(
        model,
        &engine.device,
        &plan,
        &outcomes,
        started.elapsed().as_secs_f64(),
    );
    if !quiet || summary.failed > 0 {
        eprintln!("{summary}");
    }
    if args.output.json {
        print_json(&summary)?;
    }
    Ok(summary.exit_code(args.allow_bad_inputs))
}

fn decode(args: DecodeArgs) -> anyhow::Result<u8> {
    let engine = args.engine.open()?;
    let model = &engine.model;
    let tokens = TokenFile::open(&args.tokens)?;
    vqtok_infer::check_model(model, &tokens, &args.tokens)?;
    let mut decoder = model.session(GraphKind::Decoder, engine.session)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| vqtok_infer::tokens::recon_path(&args.tokens));
    let options = DecodeOptions {
        batch: args.engine.batch as usize,
        size: args.size,
        fps: args.fps,
        crf: args.crf,
        psnr: args.psnr,
        compare: args.compare.map(|path| Compare {
            path,
            frames: args.compare_frames as usize,
        }),
    };
    let g = tokens.meta.geometry;
    let quiet = args.output.quiet;
    let bars = Bars::new(1, model.tokens_per_frame(g.out_height, g.out_width), !quiet);
    let bar = bars.file(&args.tokens.display().to_string());
    let progress: &dyn FileProgress = if quiet { &NoProgress } else { &bar };
    let d = decode_tokens(
        model,
        &mut decoder,
        &tokens,
        &args.tokens,
        &out,
        &options,
        progress,
    )?;
    progress.finish();
    if !quiet {
        eprintln!("{d} (on {})", engine.device);
    }
    if args.output.json {
        let mut summary = serde_json::to_value(&d)?;
        summary["device"] = json!(engine.device);
        print_json(&summary)?;
    }
    Ok(0)
}

fn info(args: InfoArgs) -> anyhow::Result<u8> {
    let mut all = Vec::new();
    for path in &args.tokens {
        // Opening checks the whole file (format, shapes, index range) either way.
        let file = TokenFile::open(path)?;
        if args.json {
            all.push(json!({"path": path, "metadata": stored_metadata(path)?}));
        } else {
            println!("{}\n{}", path.display(), file.meta);
        }
    }
    if args.json {
        let out = if all.len() == 1 {
            all.remove(0)
        } else {
            json!(all)
        };
        print_json(&out)?;
    }
    Ok(0)
}

fn index(args: IndexArgs) -> anyhow::Result<u8> {
    let summary = index::merge(&args.out)?;
    eprintln!("{summary}");
    if args.json {
        print_json(&summary)?;
    }
    Ok(summary.exit_code())
}

fn compare(args: CompareArgs) -> anyhow::Result<u8> {
    let a = TokenFile::open(&args.a)?;
    let b = TokenFile::open(&args.b)?;
    let agreement = vqtok_infer::compare::agreement(&a, &b, &args.b)?;
    if args.json {
        let mut out = serde_json::to_value(agreement)?;
        out["fraction"] = json!(agreement.fraction());
        print_json(&out)?;
    } else {
        println!("{agreement}");
    }
    Ok(0)
}

fn main() -> ExitCode {
    // SAFETY: first statement of main, before any thread exists. The onnxruntime 1.31
    // wheel otherwise writes a telemetry database under ~/.cache.
    unsafe { std::env::set_var("ORT_DISABLE_TELEMETRY", "1") };
    let cli = Cli::parse_from(with_default_command(std::env::args_os().collect()));
    let result = match cli.command {
        Command::Encode(a) => encode(a),
        Command::Decode(a) => decode(a),
        Command::Info(a) => info(a),
        Command::Index(a) => index(a),
        Command::Compare(a) => compare(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => exit::report(
            &e,
            &[
                exit::blame::<InferError>,
                exit::blame::<vqtok_runtime::RuntimeError>,
            ],
        ),
    }
}
