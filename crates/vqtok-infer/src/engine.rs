//! Which model folder, and where its graphs run: the settings every vqtokenize command
//! shares (`-m`, `--threads`, `--device`, `--provider`, `--ort-lib`, `--batch`, `--spin`),
//! the encoder's (`--engine`, `--precision`), and what they resolve to: ONNX Runtime
//! session options, or an [`Encoder`] of either engine.

use std::path::PathBuf;

use clap::Args;
use vqtok_runtime::session::{self, Optimization, Provider, SessionOptions};
use vqtok_runtime::{GraphKind, MODEL_ENV, ModelFolder};

use crate::device::{DeviceChoice, OrtPlacement, ProviderChoice, ort_placement};
use crate::encoder::{Encoder, EngineKind, OrtEncoder, Precision};
use crate::error::{InferError, Result};
use crate::progress::device_description;

/// Model folder used when neither `-m` nor `$VQTOK_MODEL` is given.
pub const DEFAULT_MODEL_DIR: &str = "model";

/// The model and runtime arguments of every command.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// Model folder (default: $VQTOK_MODEL, else ./model).
    #[arg(short, long)]
    pub model: Option<PathBuf>,
    /// Intra-op threads of ONNX Runtime or libtorch (default: one per physical core).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub threads: Option<u64>,
    /// Where the model runs: cpu, cuda or cuda:N (default: cpu, or what --provider says).
    /// A bare N means cuda:N.
    #[arg(long, value_name = "cpu|cuda|cuda:N")]
    pub device: Option<DeviceChoice>,
    /// ONNX Runtime's execution provider (default cpu; `--device cuda:N` alone picks
    /// cuda). `cuda` needs an onnxruntime-gpu build of libonnxruntime.so.
    #[arg(long, value_enum)]
    pub provider: Option<ProviderChoice>,
    /// libonnxruntime.so to load (default: $ORT_DYLIB_PATH, else beside this binary, else the
    /// path it was built with).
    #[arg(long)]
    pub ort_lib: Option<PathBuf>,
    /// Frames per model call.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: u64,
    /// Let ORT's idle threads spin: slightly faster on an otherwise idle machine, much
    /// slower when other processes want the cores (off by default).
    #[arg(long)]
    pub spin: bool,
}

/// How `encode` runs its model (flattened into that command only: decoding always runs
/// the ONNX decoder).
#[derive(Debug, Clone, Args)]
pub struct EncoderArgs {
    /// `ort`: ONNX Runtime on encoder.onnx; `torch`: libtorch on weights.safetensors (only
    /// in a vqtokenize built with `--features torch`).
    #[arg(long, value_enum, default_value = "ort")]
    pub engine: EngineKind,
    /// `bf16` (torch engine): convolutions in bf16 autocast, codebook distances and
    /// argmin in fp32.
    #[arg(long, value_enum, default_value = "fp32")]
    pub precision: Precision,
}

/// What [`EngineArgs::open_encoder`] resolves to.
pub struct Encoding {
    pub model: ModelFolder,
    pub encoder: Box<dyn Encoder>,
    /// Where the model runs, in words.
    pub device: String,
}

/// What [`EngineArgs::open`] resolves to.
pub struct Engine {
    pub model: ModelFolder,
    pub session: SessionOptions,
    /// Where the model runs, in words (e.g. `CPU: AMD EPYC (2 threads)`).
    pub device: String,
}

impl EngineArgs {
    /// The folder `-m` names, else `$VQTOK_MODEL`, else [`DEFAULT_MODEL_DIR`].
    pub fn model_dir(&self) -> PathBuf {
        self.model
            .clone()
            .or_else(|| std::env::var_os(MODEL_ENV).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_MODEL_DIR))
    }

    /// Opens the model folder, loads ONNX Runtime and resolves the provider.
    pub fn open(&self) -> Result<Engine> {
        let placement = ort_placement(self.provider, self.device)?;
        let model = ModelFolder::open(&self.model_dir())?;
        session::init(self.ort_lib.as_deref())?;
        let provider = match placement {
            OrtPlacement::Cpu => Provider::Cpu,
            OrtPlacement::Cuda(device) => Provider::Cuda { device },
            OrtPlacement::CudaOrCpu(device) if session::cuda_available()? => {
                Provider::Cuda { device }
            }
            OrtPlacement::CudaOrCpu(_) => Provider::Cpu,
        };
        let threads = self.threads.map(|t| t as usize);
        Ok(Engine {
            model,
            session: SessionOptions {
                optimization: Optimization::All,
                threads,
                spinning: Some(self.spin),
                provider,
            },
            device: device_description(provider, threads),
        })
    }

    /// Opens the model folder and the encoder `choice` names.
    pub fn open_encoder(&self, choice: &EncoderArgs) -> Result<Encoding> {
        match choice.engine {
            EngineKind::Ort => {
                if choice.precision != Precision::Fp32 {
                    return Err(InferError::invalid(
                        "precision",
                        format!(
                            "{} needs --engine torch (ONNX Runtime runs the exported fp32 graph)",
                            choice.precision
                        ),
                    ));
                }
                let Engine {
                    model,
                    session,
                    device,
                } = self.open()?;
                let encoder = OrtEncoder::new(&model, model.session(GraphKind::Encoder, session)?);
                Ok(Encoding {
                    model,
                    encoder: Box::new(encoder),
                    device,
                })
            }
            EngineKind::Torch => self.open_torch(choice.precision),
        }
    }

    /// ONNX Runtime's options mean nothing to libtorch; naming one with `--engine torch`
    /// is refused instead of ignored.
    fn check_torch_flags(&self) -> Result<()> {
        let ort_only = [
            ("--provider", self.provider.is_some()),
            ("--ort-lib", self.ort_lib.is_some()),
            ("--spin", self.spin),
        ];
        match ort_only.iter().find(|(_, given)| *given) {
            Some((flag, _)) => Err(InferError::invalid(
                "engine",
                format!(
                    "{flag} is ONNX Runtime's; the torch engine takes --device cpu|cuda|cuda:N"
                ),
            )),
            None => Ok(()),
        }
    }

    #[cfg(feature = "torch")]
    fn open_torch(&self, precision: Precision) -> Result<Encoding> {
        self.check_torch_flags()?;
        let model = ModelFolder::open(&self.model_dir())?;
        let device = self.device.unwrap_or(DeviceChoice::Cpu);
        let threads = self.threads.map(|t| t as usize);
        let encoder = crate::torch::TorchEncoder::open(&model, device, precision, threads)?;
        Ok(Encoding {
            device: encoder.description(),
            model,
            encoder: Box::new(encoder),
        })
    }

    #[cfg(not(feature = "torch"))]
    fn open_torch(&self, _: Precision) -> Result<Encoding> {
        self.check_torch_flags()?;
        Err(InferError::invalid(
            "engine",
            "this vqtokenize was built without the torch engine; build it with \
             `cargo build --release -p vqtok-infer --features torch`",
        ))
    }
}
