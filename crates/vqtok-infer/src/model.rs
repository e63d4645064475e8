//! A model folder written by `vqtok-export export`: its manifest, its identity, and the
//! ONNX Runtime sessions of its u8 encoder and decoder.
//!
//! Model identity (`model_sha256` in token files): the sha256 of the lines
//! `"<file> <sha256>\n"` for the files of the `encoder` and `decoder` graphs (the `.onnx`
//! files and any external-data files), sorted by name, as listed in manifest.json. It
//! changes with any weight, but not when `vqtok-export verify` rewrites manifest.json with
//! its report, and not with the float variants that tokenizing never uses. When a graph is
//! opened its file is re-hashed against the manifest, so an edited graph cannot hide
//! behind an old identity.

use std::path::{Path, PathBuf};

use vqtok_config::Config;
use vqtok_core::hash::{sha256_file, sha256_hex};
use vqtok_export::runtime::{Session, SessionOptions};
use vqtok_export::{LevelInfo, MANIFEST_FILE, Manifest};

use crate::error::{InferError, Result};

/// The two graphs tokenizing uses.
const GRAPHS: [&str; 2] = ["encoder", "decoder"];

/// Environment variable naming the default model folder.
pub const MODEL_ENV: &str = "VQTOK_MODEL";
/// Model folder used when neither `-m` nor `$VQTOK_MODEL` is given.
pub const DEFAULT_MODEL_DIR: &str = "model";

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

/// An opened model folder (sessions are opened separately: encode needs only the encoder).
#[derive(Debug, Clone)]
pub struct Model {
    dir: PathBuf,
    manifest: Manifest,
    config: Config,
    id: String,
}

impl Model {
    /// Reads `dir/manifest.json` and the config inside it.
    pub fn open(dir: &Path) -> Result<Model> {
        if !dir.is_dir() {
            return Err(InferError::bad_input(
                dir,
                format!(
                    "model folder does not exist (give one with -m or ${MODEL_ENV}; \
                     `vqtok-export export --out DIR` writes one)"
                ),
            ));
        }
        let manifest = Manifest::load(dir)?;
        let manifest_path = dir.join(MANIFEST_FILE);
        let config = Config::parse(&manifest.config.to_string()).map_err(|e| {
            InferError::bad_input(&manifest_path, format!("its `config` is invalid: {e}"))
        })?;
        let mut lines = Vec::new();
        for key in GRAPHS {
            let g = manifest.graphs.get(key).ok_or_else(|| {
                InferError::bad_input(&manifest_path, format!("no `{key}` graph listed"))
            })?;
            for file in std::iter::once(&g.file).chain(g.external_data.as_ref()) {
                let info = manifest.files.get(file).ok_or_else(|| {
                    InferError::bad_input(
                        &manifest_path,
                        format!("`{file}` of the {key} graph has no sha256 in `files`"),
                    )
                })?;
                lines.push(format!("{file} {}\n", info.sha256));
            }
        }
        if manifest.levels.is_empty() {
            return Err(InferError::bad_input(&manifest_path, "no codebook levels"));
        }
        lines.sort();
        let id = sha256_hex(lines.concat().as_bytes());
        Ok(Model {
            dir: dir.to_path_buf(),
            manifest,
            config,
            id,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The model identity written into token files (see the module docs).
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn family(&self) -> &str {
        &self.manifest.family
    }

    /// Code grids in the encoder's output order (VQ-VAE-2: top, then bottom).
    pub fn levels(&self) -> &[LevelInfo] {
        &self.manifest.levels
    }

    /// Frame sides must be multiples of this.
    pub fn size_multiple(&self) -> usize {
        self.manifest.size_multiple
    }

    /// The square size the model was trained on (`data_args.resolution`, else nominal).
    pub fn resolution(&self) -> usize {
        self.config.data_resolution()
    }

    /// Largest codebook over the levels: every index is below it.
    pub fn codebook_size(&self) -> usize {
        self.levels()
            .iter()
            .map(|l| l.codebook_size)
            .max()
            .unwrap_or(0)
    }

    pub fn index_dtype(&self) -> IndexDtype {
        IndexDtype::for_codebook(self.codebook_size())
    }

    /// Tokens per frame of `height × width` over all levels.
    pub fn tokens_per_frame(&self, height: usize, width: usize) -> usize {
        self.levels()
            .iter()
            .map(|l| (height / l.factor) * (width / l.factor))
            .sum()
    }

    /// Opens the `encoder` graph after checking its files against the manifest.
    pub fn encoder(&self, options: SessionOptions) -> Result<Session> {
        self.session("encoder", options)
    }

    /// Opens the `decoder` graph after checking its files against the manifest.
    pub fn decoder(&self, options: SessionOptions) -> Result<Session> {
        self.session("decoder", options)
    }

    fn session(&self, key: &str, options: SessionOptions) -> Result<Session> {
        let g = &self.manifest.graphs[key];
        for file in std::iter::once(&g.file).chain(g.external_data.as_ref()) {
            let path = self.dir.join(file);
            let sha = sha256_file(&path).map_err(|e| InferError::io(&path, e))?;
            if sha != self.manifest.files[file].sha256 {
                return Err(InferError::bad_input(
                    &path,
                    format!(
                        "sha256 {sha} differs from manifest.json's {}: the folder was modified \
                         after export",
                        self.manifest.files[file].sha256
                    ),
                ));
            }
        }
        Ok(Session::open(
            &self.manifest.graph_path(&self.dir, key)?,
            options,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_dtype_switches_exactly_past_int16() {
        assert_eq!(IndexDtype::for_codebook(1024), IndexDtype::I16);
        assert_eq!(IndexDtype::for_codebook(32768), IndexDtype::I16);
        assert_eq!(IndexDtype::for_codebook(32769), IndexDtype::I32);
    }
}
