//! `manifest.json`: everything a consumer (vqtok-infer, or a user without vqtok)
//! needs to use the folder — family and config, grid rule, normalisation formulas,
//! graph I/O, sha256 of every file — and the verification report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vqtok_core::hash::sha256_file;

use vqtok_config::{CodebookLevel, Config};

use crate::error::{Result, RuntimeError};
use crate::pixels::PixelIo;
use crate::verification::VerifyReport;

pub const MANIFEST_FILE: &str = "manifest.json";
pub const CODEBOOK_FILE: &str = "codebook.safetensors";
/// Every model parameter under taming's state-dict names (f32): what a libtorch runtime
/// (vqtokenize's torch engine) builds the model from, beside the ONNX graphs.
pub const WEIGHTS_FILE: &str = "weights.safetensors";
/// The exported config as a plain param.json (the same as manifest.json's `config`), so
/// the folder alone is a `--weights weights.safetensors --config param.json` model too.
pub const CONFIG_FILE: &str = "param.json";
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
        Manifest::parse(&text, &path)
    }

    /// Parses and checks manifest.json text (`path` only names the file in errors):
    /// the format, the config inside it, and every field a consumer computes with or
    /// opens a file by, so that a crafted manifest is refused here rather than dividing
    /// by zero or reading outside the folder later.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest> {
        let m: Manifest = serde_json::from_str(text)
            .map_err(|e| RuntimeError::bad_input(path, format!("not a vqtok manifest: {e}")))?;
        if m.format != "vqtok-onnx" || m.format_version != FORMAT_VERSION {
            return Err(RuntimeError::bad_input(
                path,
                format!(
                    "format {} v{} is not vqtok-onnx v{FORMAT_VERSION}",
                    m.format, m.format_version
                ),
            ));
        }
        m.validate()
            .map_err(|message| RuntimeError::bad_input(path, message))?;
        Ok(m)
    }

    /// The checks of [`Manifest::parse`] after the format; the message names the field.
    fn validate(&self) -> std::result::Result<(), String> {
        let config = Config::parse(&self.config.to_string())
            .map_err(|e| format!("its `config` is invalid: {e}"))?;
        let family = config.model.family().as_str();
        if self.family != family {
            return Err(format!(
                "`family` is `{}`, but its config is a {family} model",
                self.family
            ));
        }
        let multiple = config.model.size_multiple();
        if self.size_multiple != multiple {
            return Err(format!(
                "`size_multiple` is {}, but its config gives {multiple}",
                self.size_multiple
            ));
        }
        self.validate_levels(&config.model.levels())?;
        self.validate_normalization(config.model.in_channels())?;
        self.validate_file_names()
    }

    /// `levels` must be exactly the config's: every grid size is computed from them
    /// (`factor` divides frame sides, `codebook_size` bounds every index).
    fn validate_levels(&self, want: &[CodebookLevel]) -> std::result::Result<(), String> {
        if self.levels.len() != want.len() {
            return Err(format!(
                "`levels` lists {} codebook levels, but its config has {}",
                self.levels.len(),
                want.len()
            ));
        }
        for (i, (got, want)) in self.levels.iter().zip(want).enumerate() {
            let fields = [
                ("name", got.name.clone(), want.name.to_string()),
                ("indices", got.indices.clone(), indices_name(want)),
                ("factor", got.factor.to_string(), want.factor.to_string()),
                (
                    "codebook_size",
                    got.codebook_size.to_string(),
                    want.codebook_size.to_string(),
                ),
                ("dim", got.dim.to_string(), want.dim.to_string()),
            ];
            for (field, got, want) in fields {
                if got != want {
                    return Err(format!(
                        "`levels[{i}].{field}` is {got}, but its config gives {want}"
                    ));
                }
            }
        }
        Ok(())
    }

    /// One finite constant per channel, no zero divisor or std: verification maps
    /// every channel through them.
    fn validate_normalization(&self, channels: usize) -> std::result::Result<(), String> {
        let p = &self.normalization.pixels;
        for (field, values) in [
            ("divisor", &p.divisor),
            ("offset", &p.offset),
            ("std", &p.std),
        ] {
            if values.len() != channels {
                return Err(format!(
                    "`normalization.{field}` has {} values, the model has {channels} channels",
                    values.len()
                ));
            }
            let zero_ok = field == "offset";
            if let Some(v) = values
                .iter()
                .find(|v| !v.is_finite() || (!zero_ok && **v == 0.0))
            {
                return Err(format!("`normalization.{field}` holds {v}"));
            }
        }
        Ok(())
    }

    /// Every file the manifest names is a plain name inside the folder.
    fn validate_file_names(&self) -> std::result::Result<(), String> {
        let graph_files = self.graphs.iter().flat_map(|(key, g)| {
            let data = g
                .external_data
                .iter()
                .map(move |f| (key, "external_data", f));
            std::iter::once((key, "file", &g.file)).chain(data)
        });
        for (key, field, name) in graph_files {
            check_plain_name(name).map_err(|why| format!("`graphs.{key}.{field}` {why}"))?;
        }
        for (name, info) in &self.files {
            check_plain_name(name).map_err(|why| format!("`files` key {why}"))?;
            if info.sha256.len() != 64 || !info.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "`files.{name}.sha256` is not 64 hex digits: `{}`",
                    info.sha256
                ));
            }
        }
        Ok(())
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
            let path = file_path(model_dir, name)?;
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
        file_path(model_dir, &g.file)
    }
}

/// Why `name` is not a plain file name (no folder part, no `..`, nothing a line of
/// the identity or a path could be forged with), worded to follow `` `field` ``.
fn check_plain_name(name: &str) -> std::result::Result<(), String> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control);
    if plain {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a plain file name in the model folder",
            name.escape_debug()
        ))
    }
}

/// The path of `name` in `model_dir`, refused when the name is not plain or the file is
/// a symlink leading out of the folder (a folder must not make us hash or load any file
/// of the machine). A missing file is returned as is: reading it names it.
pub(crate) fn file_path(model_dir: &Path, name: &str) -> Result<PathBuf> {
    let manifest = || model_dir.join(MANIFEST_FILE);
    check_plain_name(name).map_err(|why| RuntimeError::bad_input(manifest(), why))?;
    let path = model_dir.join(name);
    let Ok(target) = path.canonicalize() else {
        return Ok(path);
    };
    let dir = model_dir
        .canonicalize()
        .map_err(|e| RuntimeError::io(model_dir, e))?;
    if !target.starts_with(&dir) {
        return Err(RuntimeError::bad_input(
            &path,
            format!("links to {}, outside the model folder", target.display()),
        ));
    }
    Ok(path)
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

    /// A valid manifest of a default VQ-VAE whose two graph files exist in `dir`.
    fn sample(dir: &Path) -> Manifest {
        let config = Config::parse(r#"{"model_type": "vqvae", "model_args": {}}"#).unwrap();
        let mut graphs = BTreeMap::new();
        let mut files = BTreeMap::new();
        for key in ["encoder", "decoder"] {
            let file = format!("{key}.onnx");
            std::fs::write(dir.join(&file), key).unwrap();
            let info = FileInfo {
                bytes: key.len() as u64,
                sha256: vqtok_core::hash::sha256_hex(key.as_bytes()),
            };
            files.insert(file.clone(), info);
            let g = GraphInfo {
                file,
                external_data: None,
                inputs: Vec::new(),
                outputs: Vec::new(),
            };
            graphs.insert(key.to_string(), g);
        }
        let levels = config.model.levels();
        Manifest {
            format: "vqtok-onnx".into(),
            format_version: FORMAT_VERSION,
            vqtok_version: "0.1.0".into(),
            family: "vqvae".into(),
            model_type: config.model_type.clone(),
            model_hash: config.model_hash(),
            config: config.to_json(),
            size_multiple: 4,
            grid_rule: "h = H/4".into(),
            levels: vec![LevelInfo {
                name: levels[0].name.into(),
                indices: indices_name(&levels[0]),
                factor: levels[0].factor,
                codebook_size: levels[0].codebook_size,
                dim: levels[0].dim,
                codebook_tensor: "quantize.embedding.weight".into(),
            }],
            normalization: Normalization {
                pixels: PixelIo::new(&config.data.normalize, 3).unwrap(),
                encode: ENCODE_FORMULA.into(),
                decode: DECODE_FORMULA.into(),
            },
            opset: 17,
            ir_version: 8,
            graphs,
            files,
            verification: Verification::NotRun {
                reason: "test".into(),
            },
        }
    }

    /// Writes `m` into `dir` and opens the folder; the error as text.
    fn open_err(dir: &Path, m: &Manifest) -> String {
        m.save(dir).unwrap();
        let e = crate::ModelFolder::open(dir).unwrap_err();
        assert!(vqtok_core::exit::Blame::is_user_error(&e), "{e}");
        e.to_string()
    }

    #[test]
    fn sample_manifest_opens() {
        let dir = tempfile::tempdir().unwrap();
        let m = sample(dir.path());
        m.save(dir.path()).unwrap();
        let folder = crate::ModelFolder::open(dir.path()).unwrap();
        assert_eq!(folder.tokens_per_frame(64, 64), 256);
        m.check_files(dir.path()).unwrap();
    }

    #[test]
    fn crafted_numbers_are_refused_with_the_field() {
        let dir = tempfile::tempdir().unwrap();
        type Edit = fn(&mut Manifest);
        let cases: [(Edit, &str); 7] = [
            // Was a division by zero in `ModelFolder::tokens_per_frame`.
            (|m| m.levels[0].factor = 0, "`levels[0].factor` is 0"),
            (
                |m| m.levels[0].codebook_size = 1 << 40,
                "`levels[0].codebook_size`",
            ),
            (|m| m.levels.clear(), "`levels` lists 0 codebook levels"),
            (|m| m.size_multiple = 0, "`size_multiple` is 0"),
            // `PixelIo::to_pixel_scale` takes `c % channels`.
            (
                |m| m.normalization.pixels.std.clear(),
                "`normalization.std` has 0",
            ),
            (
                |m| m.normalization.pixels.divisor[1] = 0.0,
                "`normalization.divisor` holds 0",
            ),
            (
                |m| m.config["model_args"]["downsample"] = 0.into(),
                "its `config` is invalid",
            ),
        ];
        for (edit, want) in cases {
            let mut m = sample(dir.path());
            edit(&mut m);
            let e = open_err(dir.path(), &m);
            assert!(e.contains(MANIFEST_FILE) && e.contains(want), "{want}: {e}");
        }
    }

    /// A file outside any model folder, `secret`, that a crafted manifest must not reach.
    fn outside_file() -> (tempfile::TempDir, std::path::PathBuf) {
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        std::fs::write(&secret, "secret").unwrap();
        (outside, secret)
    }

    #[test]
    fn file_names_must_be_plain_names_inside_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let (_outside, secret) = outside_file();
        let info = FileInfo {
            bytes: 6,
            sha256: vqtok_core::hash::sha256_hex(b"secret"),
        };
        let secret_name = secret.display().to_string();
        for name in [
            "../secret",
            secret_name.as_str(),
            "a/b",
            "..",
            "",
            "x\nencoder.onnx 00",
        ] {
            let mut m = sample(dir.path());
            m.files.insert(name.to_string(), info.clone());
            let e = open_err(dir.path(), &m);
            assert!(e.contains("not a plain file name"), "{name:?}: {e}");
            let mut m = sample(dir.path());
            m.graphs.get_mut("encoder").unwrap().file = name.to_string();
            let e = open_err(dir.path(), &m);
            assert!(e.contains("`graphs.encoder.file`"), "{name:?}: {e}");
        }
        let mut m = sample(dir.path());
        m.files.get_mut("encoder.onnx").unwrap().sha256 = "zz".into();
        assert!(open_err(dir.path(), &m).contains("not 64 hex digits"));
    }

    #[test]
    fn a_symlink_out_of_the_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_outside, secret) = outside_file();
        let mut m = sample(dir.path());
        std::fs::remove_file(dir.path().join("encoder.onnx")).unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join("encoder.onnx")).unwrap();
        // The manifest even carries the outside file's hash: only the link gives it away.
        m.files.get_mut("encoder.onnx").unwrap().sha256 = vqtok_core::hash::sha256_hex(b"secret");
        m.save(dir.path()).unwrap();
        let e = m.check_files(dir.path()).unwrap_err().to_string();
        assert!(e.contains("outside the model folder"), "{e}");
        let e = m.graph_path(dir.path(), "encoder").unwrap_err().to_string();
        assert!(e.contains("outside the model folder"), "{e}");
        // A link that stays inside is fine.
        std::fs::remove_file(dir.path().join("encoder.onnx")).unwrap();
        std::fs::write(dir.path().join("real.onnx"), "encoder").unwrap();
        std::os::unix::fs::symlink("real.onnx", dir.path().join("encoder.onnx")).unwrap();
        // (`sample` writes through the link, into the folder.)
        sample(dir.path()).check_files(dir.path()).unwrap();
    }
}
