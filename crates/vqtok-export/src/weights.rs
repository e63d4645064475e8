//! Where a graph's parameters come from: a trained checkpoint, or a seeded random
//! initialisation with PyTorch's default init (for smoke exports, tests, benchmarks).
//!
//! The layers ask for each tensor by state-dict name, expected shape and how PyTorch
//! would initialise it; a checkpoint ignores the init and checks name and shape.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::error::{ExportError, Result};
use crate::tensor_file::{RawTensor, TensorFile, write_tensors};

/// How PyTorch initialises a parameter (used only by [`RandomWeights`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Conv / ConvTranspose weight and bias: U(±1/√fan_in) (kaiming-uniform a=√5).
    Conv {
        fan_in: usize,
    },
    /// GroupNorm weight (1) and bias (0).
    NormWeight,
    NormBias,
    /// VectorQuantizer2 / classic codebook: U(±1/K).
    Codebook {
        size: usize,
    },
}

/// A provider of named f32 parameters.
pub trait WeightSource {
    /// The tensor `name` with exactly `shape`, as f32.
    fn tensor(&mut self, name: &str, shape: &[usize], init: Init) -> Result<Vec<f32>>;
}

/// Weights from a safetensors state dict (taming names; f32 or f64).
pub struct CheckpointWeights {
    file: TensorFile,
    used: BTreeSet<String>,
}

impl CheckpointWeights {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Ok(CheckpointWeights {
            file: TensorFile::open(path)?,
            used: BTreeSet::new(),
        })
    }

    /// Tensors the graphs never asked for, except the ones a checkpoint is expected to
    /// carry beside the model: the discriminator / LPIPS (`loss.*`) and EMA statistics.
    pub fn unused(&self) -> Vec<String> {
        self.file
            .names()
            .into_iter()
            .filter(|n| !self.used.contains(*n))
            .filter(|n| {
                !n.starts_with("loss.")
                    && !n.ends_with(".embedding.cluster_size")
                    && !n.ends_with(".embedding.embed_avg")
            })
            .map(String::from)
            .collect()
    }
}

impl WeightSource for CheckpointWeights {
    fn tensor(&mut self, name: &str, shape: &[usize], _init: Init) -> Result<Vec<f32>> {
        let source_name = self.file.path().display().to_string();
        let Some(found) = self.file.shape(name) else {
            return Err(ExportError::MissingWeight {
                source_name,
                name: name.to_string(),
                expected: shape.to_vec(),
            });
        };
        if found != shape {
            return Err(ExportError::WeightShape {
                source_name,
                name: name.to_string(),
                expected: shape.to_vec(),
                found: found.to_vec(),
            });
        }
        let (_, data) = self.file.f32(name)?;
        self.used.insert(name.to_string());
        Ok(data)
    }
}

/// Seeded PyTorch-default initialisation, remembering every tensor it handed out so
/// that the same weights can be asked for again (each graph asks) and saved.
pub struct RandomWeights {
    seed: u64,
    /// Also randomise GroupNorm affine parameters (PyTorch starts them at 1 and 0),
    /// so that tests notice a swapped or ignored scale/bias.
    jitter_norms: bool,
    made: std::collections::BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

impl RandomWeights {
    pub fn new(seed: u64) -> Self {
        RandomWeights {
            seed,
            jitter_norms: false,
            made: Default::default(),
        }
    }

    /// GroupNorm weight U(0.5, 1.5) and bias U(−0.5, 0.5) instead of 1 and 0.
    pub fn with_jittered_norms(mut self) -> Self {
        self.jitter_norms = true;
        self
    }

    /// Writes every tensor handed out so far as an f32 safetensors state dict.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tensors: Vec<(String, RawTensor)> = self
            .made
            .iter()
            .map(|(k, (s, d))| (k.clone(), RawTensor::from_f32(s, d)))
            .collect();
        write_tensors(path, &tensors)
    }

    /// A stream of uniform numbers in [0, 1) fixed by the seed and the tensor name,
    /// so a tensor's values do not depend on the order in which layers ask.
    fn uniform(&self, name: &str, n: usize) -> Vec<f64> {
        let mut state = self.seed ^ 0x9e37_79b9_7f4a_7c15;
        for b in name.bytes() {
            state = (state ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        (0..n)
            .map(|_| {
                // splitmix64
                state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^= z >> 31;
                (z >> 11) as f64 / (1u64 << 53) as f64
            })
            .collect()
    }
}

impl WeightSource for RandomWeights {
    fn tensor(&mut self, name: &str, shape: &[usize], init: Init) -> Result<Vec<f32>> {
        if let Some((s, d)) = self.made.get(name) {
            if s != shape {
                return Err(ExportError::WeightShape {
                    source_name: "random init".into(),
                    name: name.into(),
                    expected: shape.to_vec(),
                    found: s.clone(),
                });
            }
            return Ok(d.clone());
        }
        let n: usize = shape.iter().product();
        let u = self.uniform(name, n);
        let data: Vec<f32> = match init {
            Init::Conv { fan_in } => {
                let b = 1.0 / (fan_in as f64).sqrt();
                u.iter().map(|x| ((2.0 * x - 1.0) * b) as f32).collect()
            }
            Init::Codebook { size } => {
                let b = 1.0 / size as f64;
                u.iter().map(|x| ((2.0 * x - 1.0) * b) as f32).collect()
            }
            Init::NormWeight if self.jitter_norms => u.iter().map(|x| (0.5 + x) as f32).collect(),
            Init::NormBias if self.jitter_norms => u.iter().map(|x| (x - 0.5) as f32).collect(),
            Init::NormWeight => vec![1.0; n],
            Init::NormBias => vec![0.0; n],
        };
        self.made
            .insert(name.to_string(), (shape.to_vec(), data.clone()));
        Ok(data)
    }
}

/// Another source, remembering the first answer for every tensor name: export passes its
/// weights through this and saves what the graphs asked for as the model folder's
/// `weights.safetensors`, so the torch engine runs exactly the f32 values the ONNX graphs
/// hold (a checkpoint's extras — `loss.*`, EMA statistics — stay out).
pub struct RecordingWeights<'a> {
    inner: &'a mut dyn WeightSource,
    seen: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

impl<'a> RecordingWeights<'a> {
    pub fn new(inner: &'a mut dyn WeightSource) -> Self {
        RecordingWeights {
            inner,
            seen: BTreeMap::new(),
        }
    }

    /// Writes every tensor asked for so far as an f32 safetensors state dict.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tensors: Vec<(String, RawTensor)> = self
            .seen
            .iter()
            .map(|(k, (s, d))| (k.clone(), RawTensor::from_f32(s, d)))
            .collect();
        write_tensors(path, &tensors)
    }
}

impl WeightSource for RecordingWeights<'_> {
    fn tensor(&mut self, name: &str, shape: &[usize], init: Init) -> Result<Vec<f32>> {
        let data = self.inner.tensor(name, shape, init)?;
        self.seen
            .entry(name.to_string())
            .or_insert_with(|| (shape.to_vec(), data.clone()));
        Ok(data)
    }
}
