//! `vqtokenize`: videos → token files (`encode`, the default), token files → videos
//! (`decode`), and `info`. Exit status: 0 ok; 1 an internal failure, or any input failed
//! when several were given; 2 bad usage or a bad single input (missing model folder,
//! unreadable video, token file of another model).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::json;
use vqtok_core::exit;
use vqtok_infer::batch::{self, BatchOptions, Job, Outcome, Reporter};
use vqtok_infer::progress::{Bars, FileProgress, NoProgress, device_description, peak_rss_mb};
use vqtok_infer::{
    Compare, DecodeOptions, EncodeOptions, Framing, InferError, OutputSize, Selection, SizeRule,
    TokenFile, decode_tokens,
};
use vqtok_runtime::session::{self as runtime, Optimization, Provider, SessionOptions};
use vqtok_runtime::{GraphKind, MODEL_ENV, ModelFolder};
use vqtok_video::Fit;

const EXAMPLES: &str = "Examples:
  vqtokenize clip.mp4 -m models/f16                  # → clip.vqt.safetensors
  vqtokenize videos/ -o tokens/ --jobs 2 --stride 2  # a folder tree; resumes where it stopped
  vqtokenize list.jsonl -o tokens/ --size source --json
  vqtokenize decode clip.vqt.safetensors -o recon.mp4 --psnr --compare compare.png
  vqtokenize info clip.vqt.safetensors

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
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProviderArg {
    Cpu,
    Cuda,
    /// CUDA when this ONNX Runtime library has it, else CPU.
    Auto,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FitArg {
    Crop,
    Pad,
    Resize,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputSizeArg {
    Model,
    Source,
}

#[derive(Args)]
struct RuntimeArgs {
    /// Model folder (default: $VQTOK_MODEL, else ./model).
    #[arg(short, long)]
    model: Option<PathBuf>,
    /// ONNX Runtime intra-op threads (default: one per physical core).
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long, value_enum, default_value = "cpu")]
    provider: ProviderArg,
    /// CUDA device index.
    #[arg(long, default_value_t = 0)]
    device: i32,
    /// libonnxruntime.so to load (default: $ORT_DYLIB_PATH, else beside this binary, else the
    /// path it was built with).
    #[arg(long)]
    ort_lib: Option<PathBuf>,
    /// Frames per model call.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Let ORT's idle threads spin: slightly faster on an otherwise idle machine, much
    /// slower when other processes want the cores (off by default).
    #[arg(long)]
    spin: bool,
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
    fit: FitArg,
    /// Resample to this frame rate first (default: the video's own).
    #[arg(long)]
    fps: Option<f64>,
    /// Take every N-th frame.
    #[arg(long, default_value_t = 1)]
    stride: usize,
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
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Re-encode even where a valid token file exists.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    runtime: RuntimeArgs,
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
    size: OutputSizeArg,
    /// Frame rate of the video (default: the token file's).
    #[arg(long)]
    fps: Option<f64>,
    /// libx264 quality (0 lossless … 51).
    #[arg(long, default_value_t = 18)]
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
    runtime: RuntimeArgs,
}

#[derive(Args)]
struct InfoArgs {
    #[arg(required = true)]
    tokens: Vec<PathBuf>,
    /// Print the metadata as JSON.
    #[arg(long)]
    json: bool,
}

/// `vqtokenize clip.mp4 …` means `vqtokenize encode clip.mp4 …`.
fn with_default_command(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    const KNOWN: [&str; 8] = [
        "encode",
        "decode",
        "info",
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

/// Model folder used when neither `-m` nor `$VQTOK_MODEL` is given.
const DEFAULT_MODEL_DIR: &str = "model";

fn model_dir(arg: &Option<PathBuf>) -> PathBuf {
    arg.clone()
        .or_else(|| std::env::var_os(MODEL_ENV).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_MODEL_DIR))
}

/// Loads ONNX Runtime and resolves the provider.
fn session_options(rt: &RuntimeArgs) -> anyhow::Result<SessionOptions> {
    runtime::init(rt.ort_lib.as_deref())?;
    let provider = match rt.provider {
        ProviderArg::Cpu => Provider::Cpu,
        ProviderArg::Cuda => Provider::Cuda { device: rt.device },
        ProviderArg::Auto if runtime::cuda_available()? => Provider::Cuda { device: rt.device },
        ProviderArg::Auto => Provider::Cpu,
    };
    Ok(SessionOptions {
        optimization: Optimization::All,
        threads: rt.threads,
        spinning: Some(rt.spin),
        provider,
    })
}

fn short(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Per-file lines and bars for an encode run.
struct Lines<'a> {
    bars: &'a Bars,
    quiet: bool,
}

impl Reporter for Lines<'_> {
    fn begin(&self, job: &Job) -> Box<dyn FileProgress + '_> {
        if self.quiet {
            Box::new(NoProgress)
        } else {
            Box::new(self.bars.file(&short(&job.input)))
        }
    }

    fn end(&self, job: &Job, outcome: &Outcome) {
        self.bars.file_done();
        let line = match outcome {
            Outcome::Encoded(e) if !self.quiet => format!(
                "{} → {}: {} frames at {}×{}, {} tokens, {:.2} frames/s (waited {:.1} s for frames)",
                job.input.display(),
                e.output.display(),
                e.frames,
                e.width,
                e.height,
                e.tokens,
                e.frames as f64 / e.seconds.max(1e-9),
                e.wait_seconds
            ),
            Outcome::UpToDate if !self.quiet => format!(
                "{}: {} is up to date, skipped",
                job.input.display(),
                job.output.display()
            ),
            Outcome::Failed { message, .. } => format!("error: {message}"),
            _ => return,
        };
        self.bars.println(&line);
    }
}

/// Ok(exit code) for a finished run.
fn encode(args: EncodeArgs) -> anyhow::Result<u8> {
    let rt = &args.runtime;
    let model = ModelFolder::open(&model_dir(&rt.model))?;
    let plan = batch::plan(&args.inputs, args.out.as_deref())?;
    let options = BatchOptions {
        encode: EncodeOptions {
            selection: Selection {
                start_s: args.start,
                duration_s: args.duration,
                stride: args.stride,
                fps: args.fps,
                max_frames: args.max_frames,
            },
            framing: Framing {
                size: args.size,
                fit: match args.fit {
                    FitArg::Crop => Fit::Crop,
                    FitArg::Pad => Fit::Pad,
                    FitArg::Resize => Fit::Resize,
                },
            },
            batch: rt.batch,
            decode_threads: 1,
        },
        jobs: args.jobs,
        force: args.force,
    };
    if args.stride == 0 || rt.batch == 0 || args.jobs == 0 {
        return Err(InferError::Invalid {
            field: "stride/batch/jobs",
            message: "must be ≥ 1".into(),
        }
        .into());
    }
    let session = session_options(rt)?;
    let device = device_description(session.provider, session.threads);
    let started = std::time::Instant::now();
    let encoder = Mutex::new(model.session(GraphKind::Encoder, session)?);
    let res = model.resolution();
    let bars = Bars::new(plan.jobs.len(), model.tokens_per_frame(res, res), !rt.quiet);
    if !rt.quiet {
        bars.println(&format!(
            "model {} ({}, {}), {}",
            model.dir().display(),
            model.family(),
            &model.id()[..12],
            device
        ));
    }
    for (spec, reason) in &plan.failed {
        bars.println(&format!("error: {spec}: {reason}"));
    }
    let outcomes = batch::run(
        &model,
        &encoder,
        &plan.jobs,
        &options,
        &Lines {
            bars: &bars,
            quiet: rt.quiet,
        },
    );
    bars.finish();
    let seconds = started.elapsed().as_secs_f64();

    let mut files = Vec::new();
    let (mut encoded, mut up_to_date, mut failed, mut frames, mut tokens) = (0, 0, 0, 0, 0u64);
    let mut single_user_error = false;
    for (spec, reason) in &plan.failed {
        failed += 1;
        single_user_error = true;
        files.push(json!({"input": spec, "status": "failed", "error": reason}));
    }
    for (job, outcome) in plan.jobs.iter().zip(&outcomes) {
        let mut entry = json!({"input": job.input, "output": job.output});
        match outcome {
            Outcome::Encoded(e) => {
                encoded += 1;
                frames += e.frames;
                tokens += e.tokens;
                entry["status"] = json!("encoded");
                entry["frames"] = json!(e.frames);
                entry["tokens"] = json!(e.tokens);
                entry["size"] = json!([e.width, e.height]);
                entry["seconds"] = json!(e.seconds);
                entry["infer_seconds"] = json!(e.infer_seconds);
                entry["wait_seconds"] = json!(e.wait_seconds);
            }
            Outcome::UpToDate => {
                up_to_date += 1;
                entry["status"] = json!("up_to_date");
            }
            Outcome::Failed {
                message,
                user_error,
            } => {
                failed += 1;
                single_user_error = *user_error;
                entry["status"] = json!("failed");
                entry["error"] = json!(message);
            }
        }
        files.push(entry);
    }
    let total = files.len();
    let fps = frames as f64 / seconds.max(1e-9);
    let rss = peak_rss_mb();
    if !rt.quiet || failed > 0 {
        eprintln!(
            "{encoded} encoded, {up_to_date} up to date, {failed} failed of {total} file(s); \
             {frames} frames in {seconds:.1} s ({fps:.2} frames/s, {:.0} tokens/s){}",
            tokens as f64 / seconds.max(1e-9),
            rss.map_or_else(String::new, |r| format!("; peak RSS {r:.0} MB"))
        );
    }
    if rt.json {
        let summary = json!({
            "model": {"path": model.dir(), "sha256": model.id(), "family": model.family()},
            "device": device,
            "files": files,
            "encoded": encoded,
            "up_to_date": up_to_date,
            "failed": failed,
            "frames": frames,
            "tokens": tokens,
            "seconds": seconds,
            "frames_per_second": fps,
            "tokens_per_second": tokens as f64 / seconds.max(1e-9),
            "peak_rss_mb": rss,
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(match (failed, total) {
        (0, _) => 0,
        (_, 1) if single_user_error => 2,
        _ => 1,
    })
}

fn default_recon_path(tokens: &Path) -> PathBuf {
    let name = short(tokens);
    let stem = name
        .strip_suffix(vqtok_infer::TOKEN_SUFFIX)
        .or_else(|| name.strip_suffix(".safetensors"))
        .unwrap_or(&name);
    tokens.with_file_name(format!("{stem}.recon.mp4"))
}

fn decode(args: DecodeArgs) -> anyhow::Result<u8> {
    let rt = &args.runtime;
    let model = ModelFolder::open(&model_dir(&rt.model))?;
    let tokens = TokenFile::open(&args.tokens)?;
    vqtok_infer::check_model(&model, &tokens, &args.tokens)?;
    let session = session_options(rt)?;
    let device = device_description(session.provider, session.threads);
    let mut decoder = model.session(GraphKind::Decoder, session)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_recon_path(&args.tokens));
    let options = DecodeOptions {
        batch: rt.batch,
        size: match args.size {
            OutputSizeArg::Model => OutputSize::Model,
            OutputSizeArg::Source => OutputSize::Source,
        },
        fps: args.fps,
        crf: args.crf,
        psnr: args.psnr,
        compare: args.compare.as_ref().map(|path| Compare {
            path: path.clone(),
            frames: args.compare_frames as usize,
        }),
    };
    let g = tokens.meta.geometry;
    let bars = Bars::new(
        1,
        model.tokens_per_frame(g.out_height, g.out_width),
        !rt.quiet,
    );
    let bar = bars.file(&short(&args.tokens));
    let progress: &dyn FileProgress = if rt.quiet { &NoProgress } else { &bar };
    let d = decode_tokens(
        &model,
        &mut decoder,
        &tokens,
        &args.tokens,
        &out,
        &options,
        progress,
    )?;
    progress.finish();
    if !rt.quiet {
        eprintln!(
            "{} → {}: {} frames at {}×{}, {:.3} fps, {:.2} frames/s on {device}{}",
            args.tokens.display(),
            d.output.display(),
            d.frames,
            d.width,
            d.height,
            d.fps,
            d.frames as f64 / d.seconds.max(1e-9),
            d.psnr_db
                .map_or_else(String::new, |p| format!(", PSNR {p:.2} dB vs the source"))
        );
        if let Some(c) = &d.comparison {
            eprintln!(
                "comparison (source above, reconstruction below): {}",
                c.display()
            );
        }
    }
    if rt.json {
        let summary = json!({
            "tokens": args.tokens,
            "output": d.output,
            "frames": d.frames,
            "size": [d.width, d.height],
            "fps": d.fps,
            "seconds": d.seconds,
            "psnr_db": d.psnr_db,
            "comparison": d.comparison,
            "device": device,
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(0)
}

fn info(args: InfoArgs) -> anyhow::Result<u8> {
    let mut all = Vec::new();
    for path in &args.tokens {
        let f = TokenFile::open(path)?;
        let m = &f.meta;
        if args.json {
            let raw = serde_json::to_value(
                safetensors::SafeTensors::read_metadata(
                    &std::fs::read(path).with_context(|| path.display().to_string())?,
                )
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
                .1
                .metadata(),
            )?;
            all.push(json!({"path": path, "metadata": raw}));
            continue;
        }
        let grids: Vec<String> = m
            .levels
            .iter()
            .map(|l| {
                format!(
                    "{} [{}, {}, {}] (f{}, {} codes)",
                    l.tensor,
                    m.frames(),
                    l.height,
                    l.width,
                    l.factor,
                    l.codebook_size
                )
            })
            .collect();
        println!("{}", path.display());
        println!(
            "  model     {} {} ({})",
            m.model_family, m.model_type, m.model_sha256
        );
        println!("  tokens    {} as {:?}", grids.join(", "), m.index_dtype);
        println!(
            "  frames    {} at {}×{}, {:.3} fps (slots {}…{} of a {:.3} fps grid, stride {})",
            m.frames(),
            m.geometry.out_width,
            m.geometry.out_height,
            m.sampling.fps(),
            m.frame_indices.first().copied().unwrap_or(0),
            m.frame_indices.last().copied().unwrap_or(0),
            m.sampling.slot_fps,
            m.sampling.stride
        );
        println!(
            "  source    {} ({}×{}, {:.3} fps, {} bytes, {})",
            m.source.path,
            m.source.width,
            m.source.height,
            m.source.fps,
            m.source.bytes,
            m.source
                .duration_s
                .map_or_else(|| "duration unknown".into(), |d| format!("{d:.2} s"))
        );
        println!(
            "  framing   size {}, fit {:?}: scaled to {}×{}, offset ({}, {})",
            m.size,
            m.fit,
            m.geometry.scaled_width,
            m.geometry.scaled_height,
            m.geometry.offset_x,
            m.geometry.offset_y
        );
        println!("  vqtok     {}", m.vqtok_version);
    }
    if args.json {
        let out = if all.len() == 1 {
            all.remove(0)
        } else {
            json!(all)
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(0)
}

/// The error and its causes, skipping causes the message above already quotes (our
/// errors embed their source's text).
fn main() -> ExitCode {
    // SAFETY: first statement of main, before any thread exists. The onnxruntime 1.31
    // wheel otherwise writes a telemetry database under ~/.cache.
    unsafe { std::env::set_var("ORT_DISABLE_TELEMETRY", "1") };
    let cli = Cli::parse_from(with_default_command(std::env::args_os().collect()));
    let result = match cli.command {
        Command::Encode(a) => encode(a),
        Command::Decode(a) => decode(a),
        Command::Info(a) => info(a),
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
