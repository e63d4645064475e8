//! What turns a batch of frames into index grids: the one seam between the video
//! pipeline (`encode`, `batch`: streaming, resume, workers) and the runtime that runs the
//! model, so both engines share every line of the former.
//!
//! - [`OrtEncoder`]: the model folder's `encoder.onnx` on ONNX Runtime (always built);
//! - `TorchEncoder` (cargo feature `torch`): the tch model of vqtok-train built from the
//!   folder's `weights.safetensors`, on libtorch's CPU or CUDA.
//!
//! Both take u8 frames `[N, H, W, 3]` and normalise them with the manifest's constants in
//! the same f32 order, and return int64 grids `[N, H/f, W/f]` per codebook level in the
//! manifest's level order (the ONNX encoder's outputs).

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use clap::ValueEnum;
use vqtok_runtime::{FRAMES, Input, ModelFolder, Output, Session};

use crate::error::{InferError, Result};

/// Which runtime runs the encoder (`--engine`; recorded in token files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineKind {
    /// ONNX Runtime on the folder's encoder.onnx.
    Ort,
    /// libtorch on the folder's weights.safetensors (vqtokenize built with `--features torch`).
    Torch,
}

/// The arithmetic of the encoder's convolutions (`--precision`; recorded in token files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Precision {
    Fp32,
    /// Convolutions in bf16 autocast, codebook distances and argmin in fp32 (torch engine).
    Bf16,
}

impl EngineKind {
    /// The `--engine` value, and the token files' `engine`.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Ort => "ort",
            EngineKind::Torch => "torch",
        }
    }
}

impl Precision {
    /// The `--precision` value, and the token files' `precision`.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }
}

/// Display and parsing through [`ValueEnum`], whose names `as_str` spells out.
macro_rules! text_form {
    ($t:ty, $what:literal) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $t {
            type Err = String;

            fn from_str(s: &str) -> std::result::Result<Self, String> {
                <$t as ValueEnum>::from_str(s, false)
                    .map_err(|_| format!("unknown {} `{s}`", $what))
            }
        }
    };
}

text_form!(EngineKind, "engine");
text_form!(Precision, "precision");

/// A model's encoder: u8 frames → one index grid per codebook level.
pub trait Encoder: Sync {
    /// `frames` is `[n, h, w, 3]` u8; returns, per level of `model.levels()` in order, the
    /// `[n, h/f, w/f]` grid, row-major.
    fn encode(&self, frames: &[u8], n: usize, size: (usize, usize)) -> Result<Vec<Vec<i64>>>;
    fn engine(&self) -> EngineKind;
    fn precision(&self) -> Precision;
}

/// The ORT engine: one encoder session that concurrent files take turns on.
pub struct OrtEncoder {
    session: Mutex<Session>,
    /// The encoder's output names in level order.
    outputs: Vec<String>,
}

impl OrtEncoder {
    pub fn new(model: &ModelFolder, session: Session) -> OrtEncoder {
        OrtEncoder {
            session: Mutex::new(session),
            outputs: model.levels().iter().map(|l| l.indices.clone()).collect(),
        }
    }
}

impl Encoder for OrtEncoder {
    fn encode(&self, frames: &[u8], n: usize, (w, h): (usize, usize)) -> Result<Vec<Vec<i64>>> {
        let mut outputs = {
            let mut session = self
                .session
                .lock()
                .map_err(|_| InferError::Internal("encoder session lock poisoned".into()))?;
            session.run(&[(FRAMES, Input::U8(vec![n, h, w, 3], frames))])?
        };
        self.outputs
            .iter()
            .map(|name| {
                match outputs
                    .iter()
                    .position(|(o, _)| o == name)
                    .map(|i| outputs.swap_remove(i).1)
                {
                    Some(Output::I64(t)) => Ok(t.data),
                    other => Err(InferError::Internal(format!(
                        "encoder output `{name}`: expected int64, got {:?}",
                        other.as_ref().map(Output::shape)
                    ))),
                }
            })
            .collect()
    }

    fn engine(&self) -> EngineKind {
        EngineKind::Ort
    }

    fn precision(&self) -> Precision {
        Precision::Fp32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_cli_values_and_parse_back() {
        for e in EngineKind::value_variants() {
            let cli = e.to_possible_value().unwrap();
            assert_eq!(cli.get_name(), e.as_str());
            assert_eq!(e.to_string().parse::<EngineKind>(), Ok(*e));
        }
        for p in Precision::value_variants() {
            assert_eq!(p.to_possible_value().unwrap().get_name(), p.as_str());
            assert_eq!(p.to_string().parse::<Precision>(), Ok(*p));
        }
        assert!("fp16".parse::<Precision>().unwrap_err().contains("fp16"));
    }
}
