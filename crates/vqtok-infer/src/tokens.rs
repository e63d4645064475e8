//! Token files (`*.vqt.safetensors`): plain safetensors, readable by Python's
//! `safetensors` as is.
//!
//! Tensors: one `[T, h, w]` index grid per codebook level, named as in the model's graphs
//! (`indices`; VQ-VAE-2: `indices_t`, `indices_b`), int16 when the codebook has at most
//! 32768 entries, else int32. Frame `t` of every grid is sampled frame `t`.
//!
//! `__metadata__` (all values are strings, as safetensors requires; structured ones are
//! JSON): `format` = `vqtok-tokens`, `format_version`, `vqtok_version`, `complete`,
//! `model_sha256` (see [`crate::Model`]), `model_family`, `model_type`,
//! `model_config_hash`, `codebook_size`, `index_dtype`, `frames`, `frame_width`,
//! `frame_height` (the model input size), `fps` (rate of the token frames), `grid`
//! (`{"indices": [h, w]}`), `levels` (per level: tensor, factor, codebook_size, height,
//! width), `source` (path, bytes, mtime, size, fps, duration, frame count, codec),
//! `sampling` (slot rate, start, duration, stride, max frames), `frame_indices` (the
//! source slots that were tokenized: slot `i` is the frame shown at `i / slot_fps`
//! seconds), `fit`, `size` (the requested size rule) and `geometry` (the exact
//! resize/crop/pad, vqtok-video's `Geometry`), `engine` (`ort` or `torch`) and
//! `precision` (`fp32` or `bf16`) of the encoder that made them. Files written before
//! the torch engine lack the last two; they were made by ONNX Runtime in fp32, and read
//! as such.
//!
//! Files are written to a hidden sibling and renamed into place, so a reader never sees
//! a partial file under the final name.

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use vqtok_config::{MAX_CODEBOOK, MAX_SIDE};
use vqtok_video::{Fit, Geometry};

use crate::encoder::{EngineKind, Precision};
use crate::error::{InferError, Result};

/// Index element type in token files: int16 when every code fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexDtype {
    I16,
    I32,
}

impl IndexDtype {
    /// The narrowest type holding indices `0 … codebook_size - 1`.
    pub fn for_codebook(codebook_size: usize) -> IndexDtype {
        if codebook_size <= i16::MAX as usize + 1 {
            IndexDtype::I16
        } else {
            IndexDtype::I32
        }
    }
}

pub const TOKEN_FORMAT: &str = "vqtok-tokens";
pub const TOKEN_FORMAT_VERSION: u32 = 1;
/// File name suffix of token files.
pub const TOKEN_SUFFIX: &str = ".vqt.safetensors";

/// One code grid as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelGrid {
    /// Tensor name (= the graphs' index input/output name).
    pub tensor: String,
    /// Pixels per token side.
    pub factor: usize,
    pub codebook_size: usize,
    pub height: usize,
    pub width: usize,
}

/// The video a token file was made from, as it was when it was read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// Absolute path.
    pub path: String,
    pub bytes: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime_unix_s: f64,
    /// Displayed size (after rotation).
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub duration_s: Option<f64>,
    /// Frames by the container's count (0: unknown).
    pub frame_count: u64,
    pub codec: String,
}

/// Which frames were tokenized (besides the exact slot list in `frame_indices`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// Rate of the slot grid that `frame_indices` count in.
    pub slot_fps: f64,
    pub start_s: f64,
    pub duration_s: Option<f64>,
    pub stride: usize,
    pub max_frames: Option<usize>,
}

impl Sampling {
    /// Rate of consecutive token frames.
    pub fn fps(&self) -> f64 {
        self.slot_fps / self.stride as f64
    }
}

/// Everything a token file says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenMeta {
    pub vqtok_version: String,
    pub model_sha256: String,
    pub model_family: String,
    pub model_type: String,
    pub model_config_hash: String,
    pub index_dtype: IndexDtype,
    pub levels: Vec<LevelGrid>,
    pub source: SourceInfo,
    pub sampling: Sampling,
    pub frame_indices: Vec<u64>,
    pub fit: Fit,
    /// The size rule as requested (`256`, `320x192`, `source`).
    pub size: String,
    pub geometry: Geometry,
    /// The runtime that ran the encoder.
    pub engine: EngineKind,
    pub precision: Precision,
    /// Only complete files are ever written; a reader insists on it.
    pub complete: bool,
}

impl TokenMeta {
    pub fn frames(&self) -> usize {
        self.frame_indices.len()
    }

    /// Largest codebook over the levels.
    pub fn codebook_size(&self) -> usize {
        self.levels
            .iter()
            .map(|l| l.codebook_size)
            .max()
            .unwrap_or(0)
    }

    fn to_map(&self) -> HashMap<String, String> {
        let grid: serde_json::Map<String, serde_json::Value> = self
            .levels
            .iter()
            .map(|l| (l.tensor.clone(), serde_json::json!([l.height, l.width])))
            .collect();
        let mut sampling = serde_json::to_value(&self.sampling).expect("plain data");
        sampling["fps"] = serde_json::json!(self.sampling.fps());
        [
            ("format", TOKEN_FORMAT.to_string()),
            ("format_version", TOKEN_FORMAT_VERSION.to_string()),
            ("vqtok_version", self.vqtok_version.clone()),
            ("complete", self.complete.to_string()),
            ("model_sha256", self.model_sha256.clone()),
            ("model_family", self.model_family.clone()),
            ("model_type", self.model_type.clone()),
            ("model_config_hash", self.model_config_hash.clone()),
            ("codebook_size", self.codebook_size().to_string()),
            (
                "index_dtype",
                match self.index_dtype {
                    IndexDtype::I16 => "int16",
                    IndexDtype::I32 => "int32",
                }
                .to_string(),
            ),
            ("frames", self.frames().to_string()),
            ("frame_width", self.geometry.out_width.to_string()),
            ("frame_height", self.geometry.out_height.to_string()),
            ("fps", self.sampling.fps().to_string()),
            ("grid", serde_json::Value::Object(grid).to_string()),
            ("levels", json(&self.levels)),
            ("source", json(&self.source)),
            ("sampling", sampling.to_string()),
            ("frame_indices", json(&self.frame_indices)),
            ("fit", json(&self.fit).trim_matches('"').to_string()),
            ("size", self.size.clone()),
            ("geometry", json(&self.geometry)),
            ("engine", self.engine.to_string()),
            ("precision", self.precision.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn from_map(path: &Path, m: &HashMap<String, String>) -> Result<TokenMeta> {
        let get = |key: &str| {
            m.get(key).map(String::as_str).ok_or_else(|| {
                InferError::bad_input(path, format!("token file metadata lacks `{key}`"))
            })
        };
        fn parse<T: DeserializeOwned>(path: &Path, key: &str, text: &str) -> Result<T> {
            serde_json::from_str(text).map_err(|e| {
                InferError::bad_input(path, format!("token file metadata `{key}`: {e}"))
            })
        }
        let format = get("format")?;
        let version = get("format_version")?;
        if format != TOKEN_FORMAT || version != TOKEN_FORMAT_VERSION.to_string() {
            return Err(InferError::bad_input(
                path,
                format!("format {format} v{version} is not {TOKEN_FORMAT} v{TOKEN_FORMAT_VERSION}"),
            ));
        }
        let index_dtype = match get("index_dtype")? {
            "int16" => IndexDtype::I16,
            "int32" => IndexDtype::I32,
            other => {
                return Err(InferError::bad_input(
                    path,
                    format!("token file metadata `index_dtype`: unknown `{other}`"),
                ));
            }
        };
        Ok(TokenMeta {
            vqtok_version: get("vqtok_version")?.to_string(),
            model_sha256: get("model_sha256")?.to_string(),
            model_family: get("model_family")?.to_string(),
            model_type: get("model_type")?.to_string(),
            model_config_hash: get("model_config_hash")?.to_string(),
            index_dtype,
            levels: parse(path, "levels", get("levels")?)?,
            source: parse(path, "source", get("source")?)?,
            sampling: parse(path, "sampling", get("sampling")?)?,
            frame_indices: parse(path, "frame_indices", get("frame_indices")?)?,
            fit: parse(path, "fit", &format!("\"{}\"", get("fit")?))?,
            size: get("size")?.to_string(),
            geometry: parse(path, "geometry", get("geometry")?)?,
            engine: optional(path, m, "engine", EngineKind::Ort)?,
            precision: optional(path, m, "precision", Precision::Fp32)?,
            complete: get("complete")? == "true",
        })
    }
}

/// The metadata value `key` parsed, or `absent` for files written before it existed.
fn optional<T: std::str::FromStr<Err = String>>(
    path: &Path,
    m: &HashMap<String, String>,
    key: &str,
    absent: T,
) -> Result<T> {
    m.get(key).map_or(Ok(absent), |v| {
        v.parse()
            .map_err(|e| InferError::bad_input(path, format!("token file metadata `{key}`: {e}")))
    })
}

/// Most code grids in one file (VQ-VAE-2 has two).
const MAX_LEVELS: usize = 8;
/// Largest pixels-per-token side a level may claim (the config allows 2^10).
const MAX_FACTOR: usize = 1024;

impl TokenMeta {
    /// Checks every field a reader computes with — grid sizes, the framing geometry,
    /// the sampling rate — against each other and against sane bounds, so that a crafted
    /// file is refused with the field's name instead of dividing by zero, overflowing or
    /// asking for an endless resize when it is decoded.
    fn validate(&self) -> std::result::Result<(), String> {
        self.validate_geometry()?;
        self.validate_levels()?;
        self.validate_sampling()
    }

    /// The geometry must be exactly what `--size`/`--fit` give for the recorded source
    /// size (as vqtokenize computes it), with every side within the video limit.
    fn validate_geometry(&self) -> std::result::Result<(), String> {
        let g = &self.geometry;
        for (field, side) in [
            ("src_width", g.src_width),
            ("src_height", g.src_height),
            ("out_width", g.out_width),
            ("out_height", g.out_height),
        ] {
            if !(1..=MAX_SIDE).contains(&side) {
                return Err(format!(
                    "`geometry.{field}` is {side}, not between 1 and {MAX_SIDE}"
                ));
            }
        }
        let want = Geometry::fit(
            g.src_width,
            g.src_height,
            g.out_width,
            g.out_height,
            self.fit,
        )
        .map_err(|e| format!("`geometry`: {e}"))?;
        if *g != want {
            return Err(format!(
                "`geometry` {g:?} is not what fit `{}` gives for {}×{} → {}×{}: {want:?}",
                json(&self.fit).trim_matches('"'),
                g.src_width,
                g.src_height,
                g.out_width,
                g.out_height
            ));
        }
        let src = (self.source.width as usize, self.source.height as usize);
        if src != (g.src_width, g.src_height) {
            return Err(format!(
                "`source` is {}×{} but `geometry` maps a {}×{} frame",
                src.0, src.1, g.src_width, g.src_height
            ));
        }
        Ok(())
    }

    /// Each grid is the output size divided by its factor; names are distinct; the
    /// codebooks fit the index type.
    fn validate_levels(&self) -> std::result::Result<(), String> {
        if !(1..=MAX_LEVELS).contains(&self.levels.len()) {
            return Err(format!(
                "`levels` lists {} grids, not between 1 and {MAX_LEVELS}",
                self.levels.len()
            ));
        }
        let g = &self.geometry;
        for (i, l) in self.levels.iter().enumerate() {
            let at = |field: &str| format!("`levels[{i}].{field}`");
            if l.tensor.is_empty() || self.levels[..i].iter().any(|o| o.tensor == l.tensor) {
                return Err(format!(
                    "{} `{}` is empty or repeated",
                    at("tensor"),
                    l.tensor
                ));
            }
            if !(l.factor.is_power_of_two() && l.factor <= MAX_FACTOR) {
                return Err(format!(
                    "{} is {}, not a power of two up to {MAX_FACTOR}",
                    at("factor"),
                    l.factor
                ));
            }
            if !(1..=MAX_CODEBOOK).contains(&l.codebook_size) {
                return Err(format!(
                    "{} is {}, not between 1 and {MAX_CODEBOOK}",
                    at("codebook_size"),
                    l.codebook_size
                ));
            }
            let want = (g.out_height / l.factor, g.out_width / l.factor);
            let exact =
                g.out_height.is_multiple_of(l.factor) && g.out_width.is_multiple_of(l.factor);
            if !exact || (l.height, l.width) != want {
                return Err(format!(
                    "{}×{} is {}×{}, but a {}×{} frame at factor {} gives {}×{}",
                    at("height"),
                    at("width"),
                    l.height,
                    l.width,
                    g.out_height,
                    g.out_width,
                    l.factor,
                    g.out_height as f64 / l.factor as f64,
                    g.out_width as f64 / l.factor as f64
                ));
            }
        }
        let want = IndexDtype::for_codebook(self.codebook_size());
        if self.index_dtype != want {
            return Err(format!(
                "`index_dtype` is {:?}, but a codebook of {} needs {want:?}",
                self.index_dtype,
                self.codebook_size()
            ));
        }
        Ok(())
    }

    /// A positive, finite frame rate and stride, and slots in increasing order.
    fn validate_sampling(&self) -> std::result::Result<(), String> {
        let s = &self.sampling;
        if !(s.slot_fps.is_finite() && s.slot_fps > 0.0) {
            return Err(format!("`sampling.slot_fps` is {}, not > 0", s.slot_fps));
        }
        if s.stride == 0 {
            return Err("`sampling.stride` is 0".into());
        }
        let times = [("start_s", Some(s.start_s)), ("duration_s", s.duration_s)];
        for (field, t) in times {
            if let Some(t) = t.filter(|t| !(t.is_finite() && *t >= 0.0)) {
                return Err(format!("`sampling.{field}` is {t}, not ≥ 0"));
            }
        }
        if s.max_frames == Some(0) {
            return Err("`sampling.max_frames` is 0".into());
        }
        if let Some(w) = self.frame_indices.windows(2).find(|w| w[0] >= w[1]) {
            return Err(format!(
                "`frame_indices` are not increasing: {} then {}",
                w[0], w[1]
            ));
        }
        Ok(())
    }
}

/// `vqtokenize info`: what the file holds, where it came from and how it was framed.
impl std::fmt::Display for TokenMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let grids: Vec<String> = self
            .levels
            .iter()
            .map(|l| {
                format!(
                    "{} [{}, {}, {}] (f{}, {} codes)",
                    l.tensor,
                    self.frames(),
                    l.height,
                    l.width,
                    l.factor,
                    l.codebook_size
                )
            })
            .collect();
        let (g, src, s) = (&self.geometry, &self.source, &self.sampling);
        writeln!(
            f,
            "  model     {} {} ({})",
            self.model_family, self.model_type, self.model_sha256
        )?;
        writeln!(
            f,
            "  tokens    {} as {:?}",
            grids.join(", "),
            self.index_dtype
        )?;
        writeln!(f, "  encoder   {} {}", self.engine, self.precision)?;
        writeln!(
            f,
            "  frames    {} at {}×{}, {:.3} fps (slots {}…{} of a {:.3} fps grid, stride {})",
            self.frames(),
            g.out_width,
            g.out_height,
            s.fps(),
            self.frame_indices.first().copied().unwrap_or(0),
            self.frame_indices.last().copied().unwrap_or(0),
            s.slot_fps,
            s.stride
        )?;
        writeln!(
            f,
            "  source    {} ({}×{}, {:.3} fps, {} bytes, {})",
            src.path,
            src.width,
            src.height,
            src.fps,
            src.bytes,
            src.duration_s
                .map_or_else(|| "duration unknown".into(), |d| format!("{d:.2} s"))
        )?;
        writeln!(
            f,
            "  framing   size {}, fit {:?}: scaled to {}×{}, offset ({}, {})",
            self.size, self.fit, g.scaled_width, g.scaled_height, g.offset_x, g.offset_y
        )?;
        write!(f, "  vqtok     {}", self.vqtok_version)
    }
}

/// The first index that is not a code of a codebook of `codebook_size` (a model's
/// output is checked before it is written, a file's before it is decoded).
pub fn outside_codebook<T: Copy + Into<i64>>(indices: &[T], codebook_size: usize) -> Option<i64> {
    indices
        .iter()
        .map(|&v| v.into())
        .find(|&v| v < 0 || v as usize >= codebook_size)
}

/// Where `vqtokenize decode` writes the video of `tokens` by default:
/// `NAME.recon.mp4` beside `NAME.vqt.safetensors`.
pub fn recon_path(tokens: &Path) -> std::path::PathBuf {
    let name = tokens
        .file_name()
        .map_or_else(|| "tokens".into(), |n| n.to_string_lossy().into_owned());
    let stem = name
        .strip_suffix(TOKEN_SUFFIX)
        .or_else(|| name.strip_suffix(".safetensors"))
        .unwrap_or(&name);
    tokens.with_file_name(format!("{stem}.recon.mp4"))
}

/// A token file's metadata exactly as stored (string values, structured ones as JSON
/// text), for `vqtokenize info --json`.
pub fn stored_metadata(path: &Path) -> Result<HashMap<String, String>> {
    let bytes = std::fs::read(path).map_err(|e| InferError::io(path, e))?;
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| {
        InferError::bad_input(path, format!("not a complete safetensors file: {e}"))
    })?;
    Ok(meta.metadata().clone().unwrap_or_default())
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("metadata values are plain data")
}

/// One level's indices, `[frames, height, width]`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelTokens {
    pub tensor: String,
    pub shape: [usize; 3],
    pub data: Vec<i32>,
}

impl LevelTokens {
    /// Indices of frames `start … start + n - 1`.
    pub fn frames(&self, start: usize, n: usize) -> &[i32] {
        let per = self.shape[1] * self.shape[2];
        &self.data[start * per..(start + n) * per]
    }
}

/// A token file in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenFile {
    pub meta: TokenMeta,
    /// In the order of `meta.levels`.
    pub levels: Vec<LevelTokens>,
}

/// The length prefix and JSON header of a token file whose tensors (in this order, data
/// contiguous) have `shapes`. Written here rather than by `safetensors::serialize`,
/// whose metadata comes from a `HashMap` in random order: the same tokens must give the
/// same bytes (reproducible datasets, content hashes).
pub(crate) fn header(meta: &TokenMeta, shapes: &[(String, [usize; 3])]) -> Vec<u8> {
    let (dtype, width) = match meta.index_dtype {
        IndexDtype::I16 => ("I16", 2),
        IndexDtype::I32 => ("I32", 4),
    };
    let mut header = serde_json::Map::new();
    let sorted: std::collections::BTreeMap<String, String> = meta.to_map().into_iter().collect();
    header.insert("__metadata__".into(), serde_json::json!(sorted));
    let mut offset = 0;
    for (name, shape) in shapes {
        let len = shape.iter().product::<usize>() * width;
        header.insert(
            name.clone(),
            serde_json::json!({
                "dtype": dtype,
                "shape": shape,
                "data_offsets": [offset, offset + len],
            }),
        );
        offset += len;
    }
    let mut text = serde_json::Value::Object(header).to_string().into_bytes();
    // The format pads the header with spaces to a multiple of 8 bytes.
    text.resize(text.len().div_ceil(8) * 8, b' ');
    let mut out = Vec::with_capacity(8 + text.len() + offset);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out
}

/// Little-endian bytes of indices at the file's width.
pub(crate) fn encode_indices(data: &[i32], dtype: IndexDtype) -> Vec<u8> {
    match dtype {
        IndexDtype::I16 => data
            .iter()
            .flat_map(|&v| (v as i16).to_le_bytes())
            .collect(),
        IndexDtype::I32 => data.iter().flat_map(|&v| v.to_le_bytes()).collect(),
    }
}

impl TokenFile {
    /// Checks that the tensors agree with the metadata (shapes, index range).
    fn validate(&self, path: &Path) -> Result<()> {
        let bad = |m: String| InferError::bad_input(path, m);
        if !self.meta.complete {
            return Err(bad("token file is marked incomplete".into()));
        }
        self.meta.validate().map_err(bad)?;
        if self.meta.levels.len() != self.levels.len() {
            return Err(bad(format!(
                "metadata lists {} levels, the file has {} index tensors",
                self.meta.levels.len(),
                self.levels.len()
            )));
        }
        let t = self.meta.frames();
        for (info, level) in self.meta.levels.iter().zip(&self.levels) {
            let want = [t, info.height, info.width];
            if level.tensor != info.tensor || level.shape != want {
                return Err(bad(format!(
                    "tensor `{}` has shape {:?}; the metadata says `{}` is {want:?}",
                    level.tensor, level.shape, info.tensor
                )));
            }
            if let Some(v) = outside_codebook(&level.data, info.codebook_size) {
                return Err(bad(format!(
                    "tensor `{}` holds index {v}, outside the codebook of {}",
                    level.tensor, info.codebook_size
                )));
            }
        }
        Ok(())
    }

    /// The file's bytes (see [`header`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let shapes: Vec<(String, [usize; 3])> = self
            .levels
            .iter()
            .map(|l| (l.tensor.clone(), l.shape))
            .collect();
        let mut out = header(&self.meta, &shapes);
        for l in &self.levels {
            out.extend(encode_indices(&l.data, self.meta.index_dtype));
        }
        out
    }

    /// Writes `path` atomically (`vqtok_core::fs::write_atomic`).
    pub fn save(&self, path: &Path) -> Result<()> {
        self.validate(path)?;
        create_parent(path)?;
        vqtok_core::fs::write_atomic(path, &self.to_bytes()).map_err(|e| InferError::io(path, e))
    }

    /// Reads and checks a token file (format, completeness, shapes, index range).
    pub fn open(path: &Path) -> Result<TokenFile> {
        let buffer = std::fs::read(path).map_err(|e| InferError::io(path, e))?;
        TokenFile::from_bytes(&buffer, path)
    }

    /// [`TokenFile::open`] on bytes already read; `path` names the file in errors.
    pub fn from_bytes(buffer: &[u8], path: &Path) -> Result<TokenFile> {
        let st = SafeTensors::deserialize(buffer).map_err(|e| {
            InferError::bad_input(path, format!("not a complete safetensors file: {e}"))
        })?;
        let (_, header) = SafeTensors::read_metadata(buffer)
            .map_err(|e| InferError::bad_input(path, format!("safetensors header: {e}")))?;
        let map = header.metadata().as_ref().ok_or_else(|| {
            InferError::bad_input(path, "no __metadata__: not a vqtok token file")
        })?;
        let meta = TokenMeta::from_map(path, map)?;
        let mut levels = Vec::with_capacity(meta.levels.len());
        for info in &meta.levels {
            let view = st
                .tensor(&info.tensor)
                .map_err(|_| InferError::bad_input(path, format!("no tensor `{}`", info.tensor)))?;
            let raw = view.data();
            let data: Vec<i32> = match (view.dtype(), meta.index_dtype) {
                (Dtype::I16, IndexDtype::I16) => raw
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]) as i32)
                    .collect(),
                (Dtype::I32, IndexDtype::I32) => raw
                    .chunks_exact(4)
                    .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                (other, want) => {
                    return Err(InferError::bad_input(
                        path,
                        format!(
                            "tensor `{}` has dtype {other:?}, but `index_dtype` says {want:?}",
                            info.tensor
                        ),
                    ));
                }
            };
            let shape: [usize; 3] = view.shape().try_into().map_err(|_| {
                InferError::bad_input(
                    path,
                    format!(
                        "tensor `{}` has shape {:?}, expected [T, h, w]",
                        info.tensor,
                        view.shape()
                    ),
                )
            })?;
            levels.push(LevelTokens {
                tensor: info.tensor.clone(),
                shape,
                data,
            });
        }
        let file = TokenFile { meta, levels };
        file.validate(path)?;
        Ok(file)
    }
}

/// Creates the folder `path` will be written into.
pub(crate) fn create_parent(path: &Path) -> Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir).map_err(|e| InferError::io(dir, e)),
        None => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use vqtok_core::exit::Blame;

    use super::*;

    pub(crate) fn sample(dtype: IndexDtype, codebook: usize) -> TokenFile {
        let geometry = Geometry::fit(64, 48, 32, 32, Fit::Crop).unwrap();
        let meta = TokenMeta {
            vqtok_version: "0.1.0".into(),
            model_sha256: "ab".repeat(32),
            model_family: "vqvae2".into(),
            model_type: "vqvae2".into(),
            model_config_hash: "cd".repeat(32),
            index_dtype: dtype,
            levels: vec![
                LevelGrid {
                    tensor: "indices_t".into(),
                    factor: 8,
                    codebook_size: codebook,
                    height: 4,
                    width: 4,
                },
                LevelGrid {
                    tensor: "indices_b".into(),
                    factor: 4,
                    codebook_size: codebook,
                    height: 8,
                    width: 8,
                },
            ],
            source: SourceInfo {
                path: "/videos/a.mp4".into(),
                bytes: 1234,
                mtime_unix_s: 1_764_000_000.123_456_7,
                width: 64,
                height: 48,
                fps: 25.0,
                duration_s: Some(0.12),
                frame_count: 3,
                codec: "h264".into(),
            },
            sampling: Sampling {
                slot_fps: 25.0,
                start_s: 0.0,
                duration_s: None,
                stride: 2,
                max_frames: None,
            },
            frame_indices: vec![0, 2, 4],
            fit: Fit::Crop,
            size: "32".into(),
            geometry,
            engine: EngineKind::Torch,
            precision: Precision::Bf16,
            complete: true,
        };
        let level = |tensor: &str, h: usize, w: usize| LevelTokens {
            tensor: tensor.into(),
            shape: [3, h, w],
            data: (0..3 * h * w)
                .map(|i| (i * 7919 % codebook) as i32)
                .collect(),
        };
        TokenFile {
            meta,
            levels: vec![level("indices_t", 4, 4), level("indices_b", 8, 8)],
        }
    }

    #[test]
    fn round_trips_both_index_widths_exactly() {
        let dir = tempfile::tempdir().unwrap();
        for (dtype, k) in [(IndexDtype::I16, 32768), (IndexDtype::I32, 70_000)] {
            let file = sample(dtype, k);
            let path = dir.path().join("a.vqt.safetensors");
            file.save(&path).unwrap();
            let back = TokenFile::open(&path).unwrap();
            assert_eq!(back, file);
            // Byte-reproducible (metadata keys sorted), and valid for the reference parser.
            assert!(std::fs::read(&path).unwrap() == file.to_bytes());
            assert!(SafeTensors::deserialize(&file.to_bytes()).is_ok());
            // Stored width: header + 2 or 4 bytes per index.
            let n: usize = file.levels.iter().map(|l| l.data.len()).sum();
            let len = std::fs::metadata(&path).unwrap().len() as usize;
            let width = if dtype == IndexDtype::I16 { 2 } else { 4 };
            assert!(len > n * width && len < n * width + 8192, "{len}");
        }
        // No partial file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    /// Resume compares the stored source mtime with the file's for equality, so every f64
    /// must read back exactly. serde_json's default float parser may be 1 ulp off (it was
    /// for 1796005583.3384945, a real mtime: that file was re-encoded on every run); the
    /// workspace enables its `float_roundtrip` feature.
    #[test]
    fn every_mtime_reads_back_exactly() {
        let mut file = sample(IndexDtype::I16, 64);
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let mut mtimes = vec![1_796_005_583.338_494_5, 1_764_492_961.771_074_5];
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Any instant within ±30 years of 2026, at nanosecond resolution.
            mtimes.push(1.0e9 + (x % 1_900_000_000_000_000_000) as f64 / 1e9);
        }
        for mtime in mtimes {
            file.meta.source.mtime_unix_s = mtime;
            let back = TokenFile::from_bytes(&file.to_bytes(), Path::new("t")).unwrap();
            assert_eq!(
                back.meta.source.mtime_unix_s.to_bits(),
                mtime.to_bits(),
                "{mtime}"
            );
        }
    }

    #[test]
    fn rejects_truncated_incomplete_and_out_of_range_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.vqt.safetensors");
        sample(IndexDtype::I16, 512).save(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        let e = TokenFile::open(&path).unwrap_err();
        assert!(
            e.is_user_error() && e.to_string().contains("safetensors"),
            "{e}"
        );

        let mut f = sample(IndexDtype::I16, 512);
        f.meta.complete = false;
        assert!(
            f.save(&path)
                .unwrap_err()
                .to_string()
                .contains("incomplete")
        );

        let mut f = sample(IndexDtype::I16, 512);
        f.levels[1].data[5] = 512;
        let e = f.save(&path).unwrap_err().to_string();
        assert!(e.contains("index 512") && e.contains("indices_b"), "{e}");

        let mut f = sample(IndexDtype::I16, 512);
        f.levels[0].shape = [2, 4, 4];
        assert!(f.save(&path).unwrap_err().to_string().contains("shape"));
    }

    /// Files from before the torch engine have no `engine`/`precision`: they were made by
    /// ONNX Runtime in fp32 and must still open as such; a wrong value names the key.
    #[test]
    fn engine_and_precision_default_for_old_files_and_are_checked() {
        let file = sample(IndexDtype::I16, 512);
        let mut map = file.meta.to_map();
        let path = Path::new("a.vqt.safetensors");
        let back = TokenMeta::from_map(path, &map).unwrap();
        assert_eq!(
            (back.engine, back.precision),
            (EngineKind::Torch, Precision::Bf16)
        );
        map.remove("engine");
        map.remove("precision");
        let old = TokenMeta::from_map(path, &map).unwrap();
        assert_eq!(
            (old.engine, old.precision),
            (EngineKind::Ort, Precision::Fp32)
        );
        map.insert("precision".into(), "fp8".into());
        let e = TokenMeta::from_map(path, &map).unwrap_err();
        assert!(
            e.is_user_error() && e.to_string().contains("`precision`"),
            "{e}"
        );
        assert!(file.meta.to_string().contains("encoder   torch bf16"));
    }

    /// Issue 14: every field a reader computes with is checked on open, with its name.
    #[test]
    fn crafted_metadata_is_refused_with_the_field() {
        type Edit = fn(&mut TokenFile);
        let cases: [(Edit, &str); 14] = [
            // Was an endless resize (`--size source` divides by it) that aborted.
            (|f| f.meta.geometry.scaled_width = 0, "`geometry`"),
            // Was an overflow negating it.
            (|f| f.meta.geometry.offset_x = i64::MIN, "`geometry`"),
            (
                |f| f.meta.geometry.out_width = 0,
                "`geometry.out_width` is 0",
            ),
            (
                |f| f.meta.geometry.src_height = 1 << 40,
                "`geometry.src_height`",
            ),
            (|f| f.meta.geometry.flip = true, "`geometry`"),
            (|f| f.meta.source.width = 65, "`source` is 65×48"),
            (|f| f.meta.levels[0].factor = 0, "`levels[0].factor` is 0"),
            (|f| f.meta.levels[1].height = 9, "`levels[1].height`"),
            (
                |f| f.meta.levels[1].tensor = "indices_t".into(),
                "`levels[1].tensor`",
            ),
            (
                |f| f.meta.levels[0].codebook_size = 0,
                "`levels[0].codebook_size` is 0",
            ),
            (|f| f.meta.index_dtype = IndexDtype::I32, "`index_dtype`"),
            (|f| f.meta.sampling.stride = 0, "`sampling.stride` is 0"),
            (|f| f.meta.sampling.slot_fps = -25.0, "`sampling.slot_fps`"),
            (|f| f.meta.frame_indices = vec![0, 4, 2], "`frame_indices`"),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.vqt.safetensors");
        for (edit, want) in cases {
            let mut f = sample(IndexDtype::I16, 512);
            edit(&mut f);
            std::fs::write(&path, f.to_bytes()).unwrap();
            let e = TokenFile::open(&path).unwrap_err();
            let text = e.to_string();
            assert!(e.is_user_error() && text.contains(want), "{want}: {text}");
            assert!(text.contains("a.vqt.safetensors"), "{text}");
            // Writing refuses the same metadata.
            assert!(f.save(&path).is_err(), "{want}");
        }
    }

    #[test]
    fn index_dtype_switches_exactly_past_int16() {
        assert_eq!(IndexDtype::for_codebook(1024), IndexDtype::I16);
        assert_eq!(IndexDtype::for_codebook(32768), IndexDtype::I16);
        assert_eq!(IndexDtype::for_codebook(32769), IndexDtype::I32);
    }
}
