//! `manifest.json`: everything a consumer (vqtok-infer, or a user without vqtok)
//! needs to use the folder — family and config, grid rule, normalisation formulas,
//! graph I/O, sha256 of every file — and the verification report.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use vqtok_core::hash::sha256_file;

use vqtok_config::CodebookLevel;

use crate::error::{Result, RuntimeError};
use crate::pixels::PixelIo;
use crate::verification::VerifyReport;

pub const MANIFEST_FILE: &str = "manifest.json";
pub const CODEBOOK_FILE: &str = "codebook.safetensors";
/// Bumped when a consumer would misread an older folder.
pub const FORMAT_VERSION: u32 = 1;

/// How the u8 encoder maps pixels to model input (recorded in the manifest).
pub const ENCODE_FORMULA: &str = "x[c] = (u8[c] / divisor[c] - offset[c]) / std[c], in float32 in this order; encoder_float takes x as NCHW";
/// How the u8 decoder maps model output to pixels (recorded in the manifest).
pub const DECODE_FORMULA: &str = "u8[c] = round_half_to_even(clamp((x[c] * std[c] + offset[c]) * divisor[c], 0, 255)); decoder_float returns x as NCHW, unclamped";

/// Input name of the u8 graphs' frames (encoder input, decoder output).
pub const FRAMES: &str = "frames";
/// Input of `encoder_float`, output of `decoder_float`.
pub const IMAGES: &str = "images";

/// `quantize` → `indices`, `quantize_t` → `indices_t`, `quantize_b` → `indices_b`: the
/// name of a level's index grid in the graphs and in token files.
pub fn indices_name(level: &CodebookLevel) -> String {
    level.name.replacen("quantize", "indices", 1)
}

/// The graphs of a model folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphKind {
    /// u8 frames `[N, H, W, C]` → int64 indices per level.
    Encoder,
    /// int64 indices per level → u8 frames `[N, H, W, C]`.
    Decoder,
    /// normalised f32 `[N, C, H, W]` → int64 indices per level.
    EncoderFloat,
    /// int64 indices per level → normalised f32 `[N, C, H, W]` (unclamped).
    DecoderFloat,
}

impl GraphKind {
    pub const ALL: [GraphKind; 4] = [
        GraphKind::Encoder,
        GraphKind::Decoder,
        GraphKind::EncoderFloat,
        GraphKind::DecoderFloat,
    ];

    /// The graph's key in the manifest; the file is `<key>.onnx`.
    pub fn key(self) -> &'static str {
        match self {
            GraphKind::Encoder => "encoder",
            GraphKind::Decoder => "decoder",
            GraphKind::EncoderFloat => "encoder_float",
            GraphKind::DecoderFloat => "decoder_float",
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, GraphKind::EncoderFloat | GraphKind::DecoderFloat)
    }
}

/// Element type of a graph input or output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ElemType {
    Float32,
    Uint8,
    Int64,
}

/// One codebook level as consumers of the indices see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelInfo {
    /// State-dict prefix: `quantize`, `quantize_t` or `quantize_b`.
    pub name: String,
    /// Name of the index grid in the graphs' I/O.
    pub indices: String,
    /// Pixels per token side.
    pub factor: usize,
    pub codebook_size: usize,
    pub dim: usize,
    /// Key of the `[K, D]` table in codebook.safetensors.
    pub codebook_tensor: String,
}

/// One graph input or output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IoInfo {
    pub name: String,
    pub dtype: ElemType,
    /// Numbers for fixed sizes, symbols (`N`, `H/16`, `h`, `16*h`) for dynamic ones.
    pub shape: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphInfo {
    pub file: String,
    /// External-data file holding the weights, when the graph needed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_data: Option<String>,
    pub inputs: Vec<IoInfo>,
    pub outputs: Vec<IoInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileInfo {
    pub bytes: u64,
    pub sha256: String,
}

/// The normalisation constants and their formulas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    #[serde(flatten)]
    pub pixels: PixelIo,
    pub encode: String,
    pub decode: String,
}

/// Whether the ONNX graphs were checked against the tch model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Verification {
    NotRun { reason: String },
    Passed(VerifyReport),
    Failed(VerifyReport),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always `vqtok-onnx`.
    pub format: String,
    pub format_version: u32,
    pub vqtok_version: String,
    /// `taming`, `vqvae` or `vqvae2`.
    pub family: String,
    pub model_type: String,
    /// `Config::model_hash` of the exported config.
    pub model_hash: String,
    /// The full param.json, every default written out.
    pub config: serde_json::Value,
    /// Frame height and width must be multiples of this.
    pub size_multiple: usize,
    pub grid_rule: String,
    /// In the order of the encoder's outputs (VQ-VAE-2: top, then bottom).
    pub levels: Vec<LevelInfo>,
    pub normalization: Normalization,
    pub opset: i64,
    pub ir_version: i64,
    /// Keyed `encoder`, `decoder`, `encoder_float`, `decoder_float`.
    pub graphs: BTreeMap<String, GraphInfo>,
    /// Every other file of the folder.
    pub files: BTreeMap<String, FileInfo>,
    pub verification: Verification,
}

impl Manifest {
    pub fn load(model_dir: &Path) -> Result<Manifest> {
        let path = model_dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| RuntimeError::io(&path, e))?;
        let m: Manifest = serde_json::from_str(&text)
            .map_err(|e| RuntimeError::bad_input(&path, format!("not a vqtok manifest: {e}")))?;
        if m.format != "vqtok-onnx" || m.format_version != FORMAT_VERSION {
            return Err(RuntimeError::bad_input(
                &path,
                format!(
                    "format {} v{} is not vqtok-onnx v{FORMAT_VERSION}",
                    m.format, m.format_version
                ),
            ));
        }
        Ok(m)
    }

    pub fn save(&self, model_dir: &Path) -> Result<()> {
        let path = model_dir.join(MANIFEST_FILE);
        let text = serde_json::to_string_pretty(self).expect("a manifest always serialises");
        vqtok_core::fs::write_atomic(&path, (text + "\n").as_bytes())
            .map_err(|e| RuntimeError::io(&path, e))
    }

    /// Re-hashes every listed file; names the first one that is missing or changed.
    pub fn check_files(&self, model_dir: &Path) -> Result<()> {
        for (name, info) in &self.files {
            let path = model_dir.join(name);
            let sha = sha256_file(&path).map_err(|e| RuntimeError::io(&path, e))?;
            if sha != info.sha256 {
                return Err(RuntimeError::bad_input(
                    &path,
                    format!("sha256 {sha} does not match the manifest's {}", info.sha256),
                ));
            }
        }
        Ok(())
    }

    /// Rejects frame sizes the graphs cannot tokenize (they would silently produce
    /// grids of the wrong size), with the rule in the message.
    pub fn check_frame_size(&self, height: usize, width: usize) -> std::result::Result<(), String> {
        let k = self.size_multiple;
        if height == 0 || width == 0 || !height.is_multiple_of(k) || !width.is_multiple_of(k) {
            return Err(format!(
                "frame size {height}×{width} is not supported: height and width must be positive \
                 multiples of {k} ({})",
                self.grid_rule
            ));
        }
        Ok(())
    }

    /// Path of graph `key` (`encoder`, …) in `model_dir`.
    pub fn graph_path(&self, model_dir: &Path, key: &str) -> Result<std::path::PathBuf> {
        let g = self.graphs.get(key).ok_or_else(|| {
            RuntimeError::bad_input(
                model_dir.join(MANIFEST_FILE),
                format!("no `{key}` graph in this model folder"),
            )
        })?;
        Ok(model_dir.join(&g.file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_status_is_tagged_in_json() {
        let v = Verification::NotRun {
            reason: "no reference".into(),
        };
        let j = serde_json::to_value(&v).unwrap();
        assert_eq!(j["status"], "not_run");
        assert_eq!(serde_json::from_value::<Verification>(j).unwrap(), v);
    }
}
