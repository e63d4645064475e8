//! Serialising a model, moving its weights to an external-data file when the single
//! protobuf message would come near protobuf's 2 GiB limit.

use std::path::Path;

use prost::Message;
use vqtok_core::hash::sha256_hex;

use super::proto::{ModelProto, StringStringEntryProto, tensor_proto::DataLocation};
use crate::error::{ExportError, Result};

/// Offsets in the external-data file are multiples of this, so runtimes can mmap
/// tensors directly (onnx's own converter aligns the same way).
const EXTERNAL_ALIGN: usize = 4096;
/// Tensors smaller than this stay inline: shape constants and biases are not worth a seek.
const EXTERNAL_MIN_BYTES: usize = 1024;

/// A file written into the model folder.
#[derive(Debug, Clone)]
pub struct WrittenFile {
    /// File name inside the folder.
    pub name: String,
    pub bytes: u64,
    /// Lower-case hex sha256 of the content.
    pub sha256: String,
}

/// Writes `bytes` to `dir/name` (atomically) and returns its record.
pub(crate) fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<WrittenFile> {
    let path = dir.join(name);
    vqtok_core::fs::write_atomic(&path, bytes).map_err(|e| ExportError::io(&path, e))?;
    Ok(WrittenFile {
        name: name.to_string(),
        bytes: bytes.len() as u64,
        sha256: sha256_hex(bytes),
    })
}

/// Writes `model` as `dir/file_name`. When its initializers hold more than
/// `external_threshold` bytes, every initializer of at least 1 KiB moves to
/// `dir/<file_name>.data` (ONNX external data, paths relative to the model file).
/// Returns the files written, model first.
pub fn write_model(
    mut model: ModelProto,
    dir: &Path,
    file_name: &str,
    external_threshold: u64,
) -> Result<Vec<WrittenFile>> {
    let mut written = Vec::new();
    let graph = model.graph.as_mut().expect("builders always set a graph");
    let total: u64 = graph
        .initializer
        .iter()
        .map(|t| t.raw_data.as_ref().map_or(0, |d| d.len() as u64))
        .sum();
    if total > external_threshold {
        let data_name = format!("{file_name}.data");
        let mut blob: Vec<u8> = Vec::new();
        for t in &mut graph.initializer {
            let Some(raw) = t.raw_data.take_if(|d| d.len() >= EXTERNAL_MIN_BYTES) else {
                continue;
            };
            let offset = blob.len().next_multiple_of(EXTERNAL_ALIGN);
            blob.resize(offset, 0);
            blob.extend_from_slice(&raw);
            let entry = |k: &str, v: String| StringStringEntryProto {
                key: Some(k.into()),
                value: Some(v),
            };
            t.external_data = vec![
                entry("location", data_name.clone()),
                entry("offset", offset.to_string()),
                entry("length", raw.len().to_string()),
            ];
            t.data_location = Some(DataLocation::External as i32);
        }
        let data = write_file(dir, &data_name, &blob)?;
        let bytes = model.encode_to_vec();
        written.push(write_file(dir, file_name, &bytes)?);
        written.push(data);
    } else {
        let bytes = model.encode_to_vec();
        if bytes.len() as u64 >= i32::MAX as u64 {
            return Err(ExportError::Unsupported(format!(
                "{file_name} would be {} bytes, past protobuf's 2 GiB limit; lower the \
                 external-data threshold",
                bytes.len()
            )));
        }
        written.push(write_file(dir, file_name, &bytes)?);
    }
    Ok(written)
}
