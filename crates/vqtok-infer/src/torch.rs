//! The torch engine (cargo feature `torch`): vqtok-train's tch model of the folder's
//! family, built from `weights.safetensors` (taming names) and the manifest's config, on
//! libtorch's CPU or a CUDA GPU.
//!
//! Pixels are normalised by the trainer's own [`PixelNorm`] from the folder's config: the
//! ONNX graph's f32 arithmetic in its order (`u8 → f32, / divisor, − offset, / std`), so
//! both engines feed the same bits to the first convolution; they differ only in how their convolution kernels sum, which flips
//! a code where two codebook distances are within rounding of each other.
//!
//! `--precision bf16` runs the model under libtorch's bf16 autocast; the quantizer
//! casts latents back to f32 and computes distances and argmin there
//! (`vqtok_train::model::nearest_codes`), so only the convolutions lose precision.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use vqtok_runtime::{ModelFolder, Provider, WEIGHTS_FILE};
use vqtok_train::autocast::Autocast;
use vqtok_train::model::{VqModel, create_model};
use vqtok_train::state_dict::{LoadOptions, load_state_dict};
use vqtok_train::train::pixels::PixelNorm;

use crate::device::DeviceChoice;
use crate::encoder::{Encoder, EngineKind, Precision};
use crate::error::{InferError, Result};
use crate::progress::device_description;

/// State the encoder needs but weights.safetensors does not carry: an EMA codebook's
/// running statistics only matter when training updates the codebook.
const NOT_EXPORTED: [&str; 2] = [".embedding.cluster_size", ".embedding.embed_avg"];

/// The model and the normalisation constants on the device (tensors are `Send`, not
/// `Sync`: worker threads take turns through the mutex, as they do on an ORT session).
struct Net {
    /// Owns the variables the model's tensors view.
    _vs: VarStore,
    model: Box<dyn VqModel>,
    norm: PixelNorm,
}

/// The torch engine's encoder.
pub struct TorchEncoder {
    net: Mutex<Net>,
    device: Device,
    precision: Precision,
}

/// The libtorch device `choice` names, refused when this libtorch cannot reach it.
fn torch_device(choice: DeviceChoice) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda(n) => {
            let count = if tch::Cuda::is_available() {
                tch::Cuda::device_count()
            } else {
                0
            };
            if i64::from(n) >= count {
                return Err(InferError::invalid(
                    "device",
                    format!(
                        "cuda:{n}: this libtorch sees {count} CUDA device(s) (a CPU-only \
                         libtorch, no GPU, or no driver); use --device cpu or another index"
                    ),
                ));
            }
            // Fixed input sizes for the whole run: let cuDNN time its algorithms once.
            tch::Cuda::cudnn_set_benchmark(true);
            Ok(Device::Cuda(n as usize))
        }
    }
}

impl TorchEncoder {
    /// Builds the model of `folder` on `device`; `threads` sets libtorch's intra-op
    /// threads (CPU).
    pub fn open(
        folder: &ModelFolder,
        device: DeviceChoice,
        precision: Precision,
        threads: Option<usize>,
    ) -> Result<TorchEncoder> {
        if !folder.lists_file(WEIGHTS_FILE) {
            return Err(InferError::bad_input(
                folder.dir(),
                format!(
                    "this model folder has no {WEIGHTS_FILE} (it was exported before the torch \
                     engine existed); export it again with `vqtok-export export`, or use \
                     --engine ort"
                ),
            ));
        }
        let weights = folder.checked_file(WEIGHTS_FILE)?;
        if let Some(n) = threads {
            tch::set_num_threads(i32::try_from(n).unwrap_or(i32::MAX));
        }
        let device = torch_device(device)?;
        let vs = VarStore::new(device);
        let model = create_model(&folder.config().model, &vs.root())
            .map_err(|e| InferError::bad_input(folder.dir(), e.to_string()))?;
        let options = LoadOptions {
            strict: false,
            ..LoadOptions::default()
        };
        let report = load_state_dict(&vs, &weights, &options)
            .map_err(|e| InferError::bad_input(&weights, e.to_string()))?;
        let missing: Vec<&String> = report
            .missing
            .iter()
            .filter(|k| !NOT_EXPORTED.iter().any(|s| k.ends_with(s)))
            .collect();
        if !missing.is_empty() || !report.unexpected.is_empty() {
            return Err(InferError::bad_input(
                &weights,
                format!(
                    "does not fit the {} model of manifest.json: missing {missing:?}, \
                     unexpected {:?}",
                    folder.family(),
                    report.unexpected
                ),
            ));
        }
        let net = Net {
            _vs: vs,
            model,
            norm: PixelNorm::new(&folder.config().data.normalize, device),
        };
        Ok(TorchEncoder {
            net: Mutex::new(net),
            device,
            precision,
        })
    }

    /// Where the model runs, in words, with the engine and precision.
    pub fn description(&self) -> String {
        let provider = match self.device {
            Device::Cuda(n) => Provider::Cuda { device: n as i32 },
            _ => Provider::Cpu,
        };
        let threads = usize::try_from(tch::get_num_threads()).ok();
        format!(
            "{}, libtorch {}",
            device_description(provider, threads),
            self.precision
        )
    }
}

impl Encoder for TorchEncoder {
    fn encode(&self, frames: &[u8], n: usize, (w, h): (usize, usize)) -> Result<Vec<Vec<i64>>> {
        let net = self
            .net
            .lock()
            .map_err(|_| InferError::Internal("torch model lock poisoned".into()))?;
        let shape = [n, h, w, 3].map(|d| d as i64);
        // libtorch reports failures (CUDA out of memory, …) by panicking through tch:
        // an internal error of this file, not the end of the run.
        let run = catch_unwind(AssertUnwindSafe(|| -> Result<Vec<Vec<i64>>> {
            let x = net
                .norm
                .normalize_frames(&Tensor::from_slice(frames).view(shape));
            let grids = {
                let _amp = (self.precision == Precision::Bf16)
                    .then(|| Autocast::enabled(self.device, Kind::BFloat16));
                net.model
                    .encode(&x)
                    .map_err(|e| InferError::Internal(format!("torch encoder: {e}")))?
            };
            grids
                .iter()
                .map(|g| {
                    Vec::<i64>::try_from(&g.to_device(Device::Cpu).contiguous().view(-1))
                        .map_err(|e| InferError::Internal(format!("torch encoder output: {e}")))
                })
                .collect()
        }));
        run.unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "libtorch failed".into());
            Err(InferError::Internal(format!("torch encoder: {message}")))
        })
    }

    fn engine(&self) -> EngineKind {
        EngineKind::Torch
    }

    fn precision(&self) -> Precision {
        self.precision
    }
}
