//! A model folder written by `vqtok-export export`: its manifest, the config inside it, its
//! identity, and checked paths to its graphs.
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

use crate::error::{Result, RuntimeError};
use crate::manifest::{GraphKind, LevelInfo, MANIFEST_FILE, Manifest, file_path};
use crate::session::{Session, SessionOptions};

/// The graphs tokenizing uses (they define the identity).
const IDENTITY_GRAPHS: [GraphKind; 2] = [GraphKind::Encoder, GraphKind::Decoder];

/// Environment variable naming the default model folder.
pub const MODEL_ENV: &str = "VQTOK_MODEL";

/// An opened model folder (sessions are opened separately: encode needs only the encoder).
#[derive(Debug, Clone)]
pub struct ModelFolder {
    dir: PathBuf,
    manifest: Manifest,
    config: Config,
    id: String,
}

impl ModelFolder {
    /// Reads `dir/manifest.json` and the config inside it.
    pub fn open(dir: &Path) -> Result<ModelFolder> {
        if !dir.is_dir() {
            return Err(RuntimeError::bad_input(
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
            RuntimeError::bad_input(&manifest_path, format!("its `config` is invalid: {e}"))
        })?;
        let mut lines = Vec::new();
        for kind in IDENTITY_GRAPHS {
            let key = kind.key();
            let g = manifest.graphs.get(key).ok_or_else(|| {
                RuntimeError::bad_input(&manifest_path, format!("no `{key}` graph listed"))
            })?;
            for file in std::iter::once(&g.file).chain(g.external_data.as_ref()) {
                let info = manifest.files.get(file).ok_or_else(|| {
                    RuntimeError::bad_input(
                        &manifest_path,
                        format!("`{file}` of the {key} graph has no sha256 in `files`"),
                    )
                })?;
                lines.push(format!("{file} {}\n", info.sha256));
            }
        }
        lines.sort();
        let id = sha256_hex(lines.concat().as_bytes());
        Ok(ModelFolder {
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

    /// Tokens per frame of `height × width` over all levels (the manifest's factors are
    /// checked against its config when it is read, so none is zero).
    pub fn tokens_per_frame(&self, height: usize, width: usize) -> usize {
        self.levels()
            .iter()
            .map(|l| (height / l.factor) * (width / l.factor))
            .sum()
    }

    /// Opens graph `kind` after checking its files against the manifest.
    pub fn session(&self, kind: GraphKind, options: SessionOptions) -> Result<Session> {
        let key = kind.key();
        let path = self.manifest.graph_path(&self.dir, key)?;
        let g = &self.manifest.graphs[key];
        for file in std::iter::once(&g.file).chain(g.external_data.as_ref()) {
            self.checked_file(file)?;
        }
        Session::open(&path, options)
    }

    /// The path of the listed file `name` after re-hashing it against manifest.json, so a
    /// file edited after export is refused before anything is loaded from it.
    pub fn checked_file(&self, name: &str) -> Result<PathBuf> {
        let path = file_path(&self.dir, name)?;
        let want = &self
            .manifest
            .files
            .get(name)
            .ok_or_else(|| {
                RuntimeError::bad_input(
                    self.dir.join(MANIFEST_FILE),
                    format!("`{name}` has no sha256 in `files`"),
                )
            })?
            .sha256;
        let sha = sha256_file(&path).map_err(|e| RuntimeError::io(&path, e))?;
        if &sha != want {
            return Err(RuntimeError::bad_input(
                &path,
                format!(
                    "sha256 {sha} differs from manifest.json's {want}: the folder was \
                     modified after export"
                ),
            ));
        }
        Ok(path)
    }

    /// Whether manifest.json lists `name` (folders exported before a file existed lack it).
    pub fn lists_file(&self, name: &str) -> bool {
        self.manifest.files.contains_key(name)
    }
}
