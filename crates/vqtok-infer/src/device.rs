//! `--device cpu|cuda|cuda:N`: the one device flag of both engines, and how it combines
//! with ONNX Runtime's `--provider` (kept for scripts that use it). A bare index `N`
//! still means `cuda:N`, as `--device N` did when it was the CUDA provider's index.

use std::fmt;
use std::str::FromStr;

use clap::ValueEnum;

use crate::error::{InferError, Result};

/// Where the model runs, as `--device` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    Cpu,
    /// GPU `N` (`cuda` is `cuda:0`).
    Cuda(i32),
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let index = |n: &str| {
            n.parse::<i32>()
                .ok()
                .filter(|&i| i >= 0)
                .ok_or_else(|| format!("`{n}` is not a GPU index (cuda:0, cuda:1, …)"))
        };
        match s {
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            _ => match s.strip_prefix("cuda:") {
                Some(n) => index(n).map(DeviceChoice::Cuda),
                None if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() => {
                    index(s).map(DeviceChoice::Cuda)
                }
                None => Err(format!("`{s}`: expected cpu, cuda or cuda:N")),
            },
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// Which ONNX Runtime execution provider to ask for (`--provider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProviderChoice {
    Cpu,
    /// The CUDA provider (needs an onnxruntime-gpu build of the library).
    Cuda,
    /// CUDA when this ONNX Runtime library has it, else CPU.
    Auto,
}

/// What the ORT engine asks for once `--provider` and `--device` are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrtPlacement {
    Cpu,
    Cuda(i32),
    /// CUDA on this GPU when the library has the provider, else the CPU.
    CudaOrCpu(i32),
}

/// Combines `--provider` and `--device` for ONNX Runtime: `--device cuda:N` alone selects
/// the CUDA provider on GPU N, `--provider cuda|auto` alone means GPU 0, and a pair that
/// names two different places is refused rather than one of them silently winning.
pub fn ort_placement(
    provider: Option<ProviderChoice>,
    device: Option<DeviceChoice>,
) -> Result<OrtPlacement> {
    use {DeviceChoice as D, ProviderChoice as P};
    Ok(match (provider, device) {
        (None | Some(P::Cpu), None | Some(D::Cpu)) => OrtPlacement::Cpu,
        (None | Some(P::Cuda), Some(D::Cuda(n))) => OrtPlacement::Cuda(n),
        (Some(P::Cuda), None) => OrtPlacement::Cuda(0),
        (Some(P::Auto), None) => OrtPlacement::CudaOrCpu(0),
        (Some(P::Auto), Some(D::Cuda(n))) => OrtPlacement::CudaOrCpu(n),
        (Some(p), Some(d)) => {
            return Err(InferError::invalid(
                "device",
                format!(
                    "--device {d} contradicts --provider {}; give one of them",
                    p.to_possible_value()
                        .map_or_else(String::new, |v| v.get_name().to_string())
                ),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vqtok_core::exit::Blame;

    #[test]
    fn device_names_parse_and_print_back() {
        for (text, want) in [
            ("cpu", DeviceChoice::Cpu),
            ("cuda", DeviceChoice::Cuda(0)),
            ("cuda:0", DeviceChoice::Cuda(0)),
            ("cuda:3", DeviceChoice::Cuda(3)),
            ("1", DeviceChoice::Cuda(1)),
        ] {
            assert_eq!(text.parse::<DeviceChoice>(), Ok(want), "{text}");
        }
        assert_eq!(DeviceChoice::Cuda(2).to_string(), "cuda:2");
        assert_eq!(DeviceChoice::Cpu.to_string(), "cpu");
        for bad in [
            "", "gpu", "cuda:", "cuda:-1", "cuda:x", "-1", "cuda1", "CPU",
        ] {
            let e = bad.parse::<DeviceChoice>().unwrap_err();
            assert!(e.contains("cuda"), "{bad}: {e}");
        }
    }

    #[test]
    fn provider_and_device_combine_or_are_refused_when_they_contradict() {
        use {DeviceChoice as D, OrtPlacement as O, ProviderChoice as P};
        let ok = [
            (None, None, O::Cpu),
            (None, Some(D::Cpu), O::Cpu),
            (None, Some(D::Cuda(2)), O::Cuda(2)),
            (Some(P::Cpu), None, O::Cpu),
            (Some(P::Cpu), Some(D::Cpu), O::Cpu),
            (Some(P::Cuda), None, O::Cuda(0)),
            (Some(P::Cuda), Some(D::Cuda(1)), O::Cuda(1)),
            (Some(P::Auto), None, O::CudaOrCpu(0)),
            (Some(P::Auto), Some(D::Cuda(1)), O::CudaOrCpu(1)),
        ];
        for (p, d, want) in ok {
            assert_eq!(ort_placement(p, d).unwrap(), want, "{p:?} {d:?}");
        }
        for (p, d) in [(P::Cpu, D::Cuda(0)), (P::Cuda, D::Cpu), (P::Auto, D::Cpu)] {
            let e = ort_placement(Some(p), Some(d)).unwrap_err();
            assert!(e.is_user_error(), "{e}");
            assert!(e.to_string().contains("contradicts"), "{e}");
        }
    }
}
