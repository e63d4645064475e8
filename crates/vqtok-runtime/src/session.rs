//! A small ONNX Runtime wrapper (export's verification and vqtokenize): load the library from an
//! explicit path (never ort's panic on a missing library), open sessions with a
//! chosen optimisation level and thread count, run them with typed host tensors.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::session::Session as OrtSession;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{DynValue, TensorElementType, TensorRef, ValueType};

use crate::error::{Result, RuntimeError};

/// Environment variable naming `libonnxruntime.so` (set by `.cargo/config.toml`).
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// `ORT_DYLIB_PATH` as it was when this crate was compiled (`.cargo/config.toml` sets it).
const BUILT_WITH: Option<&str> = option_env!("ORT_DYLIB_PATH");

static ENVIRONMENT: OnceLock<(PathBuf, ort::environment::Environment)> = OnceLock::new();

fn runtime_err(context: &str, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Runtime(format!("{context}: {e}"))
}

/// Where to look for `libonnxruntime.so` when no path is given, in order: `$ORT_DYLIB_PATH`;
/// beside the executable (a deployed binary shipped with its library); the path this crate
/// was built with (`.cargo/config.toml` sets it, so binaries built in the repo run directly
/// from `target/`, without cargo and without exporting anything).
fn default_library() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(ORT_DYLIB_ENV) {
        return Ok(PathBuf::from(p));
    }
    let beside_exe = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("libonnxruntime.so")));
    beside_exe
        .into_iter()
        .chain(BUILT_WITH.map(PathBuf::from))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            RuntimeError::Runtime(format!(
                "no libonnxruntime.so: {ORT_DYLIB_ENV} is not set, none is beside the executable, \
                 and the build-time path {} is gone; point {ORT_DYLIB_ENV} at the library from the \
                 onnxruntime 1.31 wheel (`cargo xtask setup` links it as .cache/vqtok/libonnxruntime.so)",
                BUILT_WITH.unwrap_or("(none)")
            ))
        })
}

/// Loads ONNX Runtime once per process, from `library` or else the default search
/// ([`default_library`]). Later calls return the library already loaded (a different
/// path is an error: a process can hold only one).
///
/// Telemetry: set `ORT_DISABLE_TELEMETRY=1` in the process environment before this
/// (binaries do it first thing in `main`; cargo sets it for tests).
pub fn init(library: Option<&Path>) -> Result<&'static Path> {
    let wanted = match library {
        Some(p) => p.to_path_buf(),
        None => default_library()?,
    };
    if let Some((loaded, _)) = ENVIRONMENT.get() {
        if library.is_some() && loaded != &wanted {
            return Err(RuntimeError::Runtime(format!(
                "ONNX Runtime is already loaded from {}; cannot also load {}",
                loaded.display(),
                wanted.display()
            )));
        }
        return Ok(loaded);
    }
    if !wanted.is_file() {
        return Err(RuntimeError::Runtime(format!(
            "ONNX Runtime library {} does not exist (set {ORT_DYLIB_ENV} or run `cargo xtask setup`)",
            wanted.display()
        )));
    }
    let env = ort::init_from(&wanted)
        .map_err(|e| runtime_err(&format!("cannot load {}", wanted.display()), e))?
        .with_name("vqtok")
        .with_telemetry(false)
        .build()
        .map_err(|e| runtime_err("cannot create the environment", e))?;
    // A concurrent first call may have won the race; either environment is the same library.
    let (path, _) = ENVIRONMENT.get_or_init(|| (wanted, env));
    Ok(path)
}

/// ORT graph optimisation level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Optimization {
    Disable,
    Basic,
    Extended,
    /// Includes the NCHWc layout transformation that makes convolutions fast on CPU.
    All,
}

/// Where a session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Provider {
    /// ORT's own CPU kernels (MLAS).
    #[default]
    Cpu,
    /// The CUDA execution provider on GPU `device`; only a CUDA build of ONNX Runtime
    /// (the onnxruntime-gpu wheel's library) has it. Opening fails, rather than quietly
    /// running on the CPU, when this library lacks it.
    Cuda { device: i32 },
}

/// How to open a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    pub optimization: Optimization,
    /// Intra-op threads; None lets ORT use one per physical core.
    pub threads: Option<usize>,
    /// Whether idle intra-op threads spin before sleeping; None keeps ORT's default
    /// (spinning). Turning it off frees the cores between runs for a decode thread.
    pub spinning: Option<bool>,
    pub provider: Provider,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            optimization: Optimization::All,
            threads: None,
            spinning: None,
            provider: Provider::Cpu,
        }
    }
}

/// Whether the loaded ONNX Runtime library was built with the CUDA execution provider
/// (loads the default library first if needed).
pub fn cuda_available() -> Result<bool> {
    use ort::ep::ExecutionProvider;
    init(None)?;
    ort::ep::CUDA::is_available().map_err(|e| runtime_err("querying execution providers", e))
}

/// A host tensor: shape and row-major data.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor<T> {
    pub shape: Vec<usize>,
    pub data: Vec<T>,
}

impl<T> HostTensor<T> {
    pub fn new(shape: Vec<usize>, data: Vec<T>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        HostTensor { shape, data }
    }
}

/// A borrowed input of one of the element types our graphs use.
#[derive(Debug, Clone)]
pub enum Input<'a> {
    U8(Vec<usize>, &'a [u8]),
    I64(Vec<usize>, &'a [i64]),
    F32(Vec<usize>, &'a [f32]),
}

/// An output copied to the host.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    U8(HostTensor<u8>),
    I64(HostTensor<i64>),
    F32(HostTensor<f32>),
}

impl Output {
    pub fn shape(&self) -> &[usize] {
        match self {
            Output::U8(t) => &t.shape,
            Output::I64(t) => &t.shape,
            Output::F32(t) => &t.shape,
        }
    }
}

/// An ONNX Runtime session over one model file.
pub struct Session {
    inner: OrtSession,
    path: PathBuf,
}

impl Session {
    /// Opens `model` (external-data files resolve relative to it). Calls [`init`]
    /// with the default library if nothing was loaded yet.
    pub fn open(model: &Path, options: SessionOptions) -> Result<Self> {
        init(None)?;
        let (_, env) = ENVIRONMENT.get().expect("init succeeded");
        if !model.is_file() {
            return Err(RuntimeError::bad_input(model, "model file does not exist"));
        }
        let level = match options.optimization {
            Optimization::Disable => GraphOptimizationLevel::Disable,
            Optimization::Basic => GraphOptimizationLevel::Level1,
            Optimization::Extended => GraphOptimizationLevel::Level2,
            Optimization::All => GraphOptimizationLevel::All,
        };
        let ctx = |e: ort::Error<_>| runtime_err(&format!("{}", model.display()), e);
        let mut builder = OrtSession::builder(env)
            .map_err(|e| runtime_err("session builder", e))?
            .with_optimization_level(level)
            .map_err(ctx)?;
        if let Some(n) = options.threads {
            builder = builder.with_intra_threads(n).map_err(ctx)?;
        }
        if let Some(spin) = options.spinning {
            builder = builder.with_intra_op_spinning(spin).map_err(ctx)?;
        }
        if let Provider::Cuda { device } = options.provider {
            if !cuda_available()? {
                return Err(RuntimeError::Runtime(format!(
                    "the ONNX Runtime library {} has no CUDA execution provider (use the \
                     onnxruntime-gpu build's libonnxruntime.so via {ORT_DYLIB_ENV})",
                    ENVIRONMENT
                        .get()
                        .map_or_else(String::new, |(p, _)| p.display().to_string())
                )));
            }
            let cuda = ort::ep::CUDA::default()
                .with_device_id(device)
                .build()
                .error_on_failure();
            builder = builder.with_execution_providers([cuda]).map_err(ctx)?;
        }
        let inner = builder
            .commit_from_file(model)
            .map_err(|e| runtime_err(&format!("cannot load {}", model.display()), e))?;
        Ok(Session {
            inner,
            path: model.to_path_buf(),
        })
    }

    pub fn output_names(&self) -> Vec<String> {
        self.inner
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect()
    }

    /// Runs the model on named inputs; returns every output in the model's order.
    pub fn run(&mut self, inputs: &[(&str, Input<'_>)]) -> Result<Vec<(String, Output)>> {
        let ctx = |e: ort::Error| runtime_err(&format!("running {}", self.path.display()), e);
        let mut values: Vec<(String, ort::session::SessionInputValue<'_>)> = Vec::new();
        for (name, input) in inputs {
            let v: ort::session::SessionInputValue<'_> = match input {
                Input::U8(s, d) => TensorRef::from_array_view((s.clone(), *d))
                    .map_err(ctx)?
                    .into(),
                Input::I64(s, d) => TensorRef::from_array_view((s.clone(), *d))
                    .map_err(ctx)?
                    .into(),
                Input::F32(s, d) => TensorRef::from_array_view((s.clone(), *d))
                    .map_err(ctx)?
                    .into(),
            };
            values.push((name.to_string(), v));
        }
        let names = self.output_names();
        let path = self.path.clone();
        let ctx = |e: ort::Error| runtime_err(&format!("running {}", path.display()), e);
        let outputs = self.inner.run(values).map_err(ctx)?;
        names
            .into_iter()
            .map(|name| {
                let value = outputs
                    .get(&name)
                    .ok_or_else(|| RuntimeError::Runtime(format!("output `{name}` missing")))?;
                Ok((name.clone(), to_host(value).map_err(ctx)?))
            })
            .collect()
    }
}

fn to_host(value: &DynValue) -> std::result::Result<Output, ort::Error> {
    let ValueType::Tensor { ty, .. } = value.dtype() else {
        return Err(ort::Error::new("output is not a tensor"));
    };
    fn shape(s: &ort::value::Shape) -> Vec<usize> {
        s.iter().map(|&d| d as usize).collect()
    }
    Ok(match ty {
        TensorElementType::Uint8 => {
            let (s, d) = value.try_extract_tensor::<u8>()?;
            Output::U8(HostTensor::new(shape(s), d.to_vec()))
        }
        TensorElementType::Int64 => {
            let (s, d) = value.try_extract_tensor::<i64>()?;
            Output::I64(HostTensor::new(shape(s), d.to_vec()))
        }
        TensorElementType::Float32 => {
            let (s, d) = value.try_extract_tensor::<f32>()?;
            Output::F32(HostTensor::new(shape(s), d.to_vec()))
        }
        other => {
            return Err(ort::Error::new(format!(
                "unsupported output type {other:?}"
            )));
        }
    })
}
