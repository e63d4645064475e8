//! Reading and writing safetensors files (checkpoints, codebooks, reference files).
//!
//! The whole file is read once and indexed, so fetching the ~400 tensors of a
//! checkpoint four times (once per graph) does not re-parse the header each time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors, View};

use crate::error::{ExportError, Result};

/// A safetensors file in memory, with typed accessors that convert and check shapes.
pub struct TensorFile {
    path: PathBuf,
    bytes: Vec<u8>,
    data_start: usize,
    index: HashMap<String, safetensors::tensor::TensorInfo>,
}

impl TensorFile {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).map_err(|e| ExportError::io(&path, e))?;
        TensorFile::from_bytes(bytes, path)
    }

    /// [`TensorFile::open`] on bytes already read; `path` names the file in errors.
    pub fn from_bytes(bytes: Vec<u8>, path: PathBuf) -> Result<Self> {
        let (header_len, meta) =
            SafeTensors::read_metadata(&bytes).map_err(|e| ExportError::Safetensors {
                path: path.clone(),
                message: e.to_string(),
            })?;
        // SafeTensors::deserialize validates offsets against the buffer; do it once here.
        SafeTensors::deserialize(&bytes).map_err(|e| ExportError::Safetensors {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let index = meta
            .tensors()
            .into_iter()
            .map(|(k, v)| (k, v.clone()))
            .collect();
        Ok(TensorFile {
            path,
            bytes,
            data_start: 8 + header_len,
            index,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.index.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Shape of `name`, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.index.get(name).map(|i| i.shape.as_slice())
    }

    fn raw(&self, name: &str) -> Result<(&safetensors::tensor::TensorInfo, &[u8])> {
        let info = self.index.get(name).ok_or_else(|| {
            ExportError::bad_input(&self.path, format!("missing tensor `{name}`"))
        })?;
        let (a, b) = info.data_offsets;
        Ok((info, &self.bytes[self.data_start + a..self.data_start + b]))
    }

    fn dtype_error(&self, name: &str, dtype: Dtype, expected: &'static str) -> ExportError {
        ExportError::WeightDtype {
            source_name: self.path.display().to_string(),
            name: name.to_string(),
            dtype: format!("{dtype:?}"),
            expected,
        }
    }

    /// A float tensor as f32 (f64 files are rounded to nearest), with its shape.
    pub fn f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let (info, raw) = self.raw(name)?;
        let data = match info.dtype {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F64 => raw
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("chunk of 8")) as f32)
                .collect(),
            other => return Err(self.dtype_error(name, other, "F32 or F64")),
        };
        Ok((info.shape.clone(), data))
    }

    /// A uint8 tensor with its shape.
    pub fn u8(&self, name: &str) -> Result<(Vec<usize>, Vec<u8>)> {
        let (info, raw) = self.raw(name)?;
        match info.dtype {
            Dtype::U8 => Ok((info.shape.clone(), raw.to_vec())),
            other => Err(self.dtype_error(name, other, "U8")),
        }
    }

    /// An int64 tensor with its shape.
    pub fn i64(&self, name: &str) -> Result<(Vec<usize>, Vec<i64>)> {
        let (info, raw) = self.raw(name)?;
        match info.dtype {
            Dtype::I64 => Ok((
                info.shape.clone(),
                raw.chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().expect("chunk of 8")))
                    .collect(),
            )),
            other => Err(self.dtype_error(name, other, "I64")),
        }
    }
}

/// One tensor to write: dtype, shape and little-endian bytes.
pub struct RawTensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl RawTensor {
    pub fn from_f32(shape: &[usize], data: &[f32]) -> Self {
        RawTensor {
            dtype: Dtype::F32,
            shape: shape.to_vec(),
            data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    pub fn from_u8(shape: &[usize], data: &[u8]) -> Self {
        RawTensor {
            dtype: Dtype::U8,
            shape: shape.to_vec(),
            data: data.to_vec(),
        }
    }

    pub fn from_i64(shape: &[usize], data: &[i64]) -> Self {
        RawTensor {
            dtype: Dtype::I64,
            shape: shape.to_vec(),
            data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

impl View for &RawTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Writes `tensors` (name → tensor) as a safetensors file.
pub fn write_tensors(path: &Path, tensors: &[(String, RawTensor)]) -> Result<()> {
    let bytes = safetensors::serialize(tensors.iter().map(|(k, v)| (k.as_str(), v)), None)
        .map_err(|e| ExportError::Safetensors {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    vqtok_core::fs::write_atomic(path, &bytes).map_err(|e| ExportError::io(path, e))
}
