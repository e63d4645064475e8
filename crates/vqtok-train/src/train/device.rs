//! `train_args.device` / `--device` → a tch device.

use tch::Device;

use crate::train::error::TrainError;

/// `auto` picks the first CUDA device when libtorch sees one, else the CPU.
pub fn resolve_device(spec: &str) -> Result<Device, TrainError> {
    let cuda = |i: usize| {
        if !tch::Cuda::is_available() {
            return Err(TrainError::Usage(format!(
                "device `{spec}` asked for CUDA, but libtorch sees no CUDA device \
                 (no GPU, or the binary was linked without libtorch_cuda)"
            )));
        }
        let n = tch::Cuda::device_count() as usize;
        if i >= n {
            return Err(TrainError::Usage(format!(
                "device `{spec}`: only {n} CUDA device(s) visible"
            )));
        }
        Ok(Device::Cuda(i))
    };
    match spec {
        "auto" => Ok(if tch::Cuda::is_available() {
            Device::Cuda(0)
        } else {
            Device::Cpu
        }),
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda(0),
        other => match other.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
            Some(i) => cuda(i),
            None => Err(TrainError::Usage(format!(
                "device `{other}`: expected auto, cpu, cuda or cuda:N"
            ))),
        },
    }
}

/// A short name for logs: `cpu` or `cuda:0`.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".into(),
    }
}
