//! Which model folder, and where its graphs run: the settings every vqtokenize command
//! shares (`-m`, `--threads`, `--provider`, `--device`, `--ort-lib`, `--batch`, `--spin`),
//! as command-line arguments and as the ONNX Runtime session options they resolve to.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use vqtok_runtime::session::{self, Optimization, Provider, SessionOptions};
use vqtok_runtime::{MODEL_ENV, ModelFolder};

use crate::error::Result;
use crate::progress::device_description;

/// Model folder used when neither `-m` nor `$VQTOK_MODEL` is given.
pub const DEFAULT_MODEL_DIR: &str = "model";

/// Which ONNX Runtime execution provider to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProviderChoice {
    Cpu,
    /// The CUDA provider (needs an onnxruntime-gpu build of the library).
    Cuda,
    /// CUDA when this ONNX Runtime library has it, else CPU.
    Auto,
}

/// The model and runtime arguments of every command.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// Model folder (default: $VQTOK_MODEL, else ./model).
    #[arg(short, long)]
    pub model: Option<PathBuf>,
    /// ONNX Runtime intra-op threads (default: one per physical core).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub threads: Option<u64>,
    #[arg(long, value_enum, default_value = "cpu")]
    pub provider: ProviderChoice,
    /// CUDA device index.
    #[arg(long, default_value_t = 0)]
    pub device: i32,
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
        let model = ModelFolder::open(&self.model_dir())?;
        session::init(self.ort_lib.as_deref())?;
        let provider = match self.provider {
            ProviderChoice::Cpu => Provider::Cpu,
            ProviderChoice::Cuda => Provider::Cuda {
                device: self.device,
            },
            ProviderChoice::Auto if session::cuda_available()? => Provider::Cuda {
                device: self.device,
            },
            ProviderChoice::Auto => Provider::Cpu,
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
}
