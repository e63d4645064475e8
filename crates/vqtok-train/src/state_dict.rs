//! State dicts as safetensors files with PyTorch's key names, for any `VarStore`
//! (autoencoder, discriminator, …).
//!
//! Loading is strict by default: every variable of the store must come from the file and
//! every selected key of the file must land in the store, and the error lists every
//! missing key, unexpected key and shape conflict at once, naming the file. Values are
//! converted to the store's dtype (an f32 checkpoint loads into an f64 store) and device.
//! taming's `init_from_ckpt` is the non-strict form with `ignore_prefixes`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use tch::nn::VarStore;
use tch::{Device, Tensor};

/// How the keys of a file are matched to a store's variables.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// File keys starting with any of these are dropped first (taming's `ignore_keys`,
    /// e.g. `loss.` to load only the autoencoder from a full checkpoint).
    pub ignore_prefixes: Vec<String>,
    /// Only file keys starting with this take part (e.g. `loss.discriminator.`).
    pub select_prefix: Option<String>,
    /// Remove `select_prefix` from the selected keys before matching, for a store whose
    /// names start below it.
    pub strip_prefix: bool,
    /// Missing and unexpected keys are errors. Without, they are only reported. Shape and
    /// dtype conflicts are always errors.
    pub strict: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            ignore_prefixes: Vec::new(),
            select_prefix: None,
            strip_prefix: false,
            strict: true,
        }
    }
}

/// What a load did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// Variables written.
    pub loaded: usize,
    /// Store variables the file lacked (non-strict loads only; they keep their values).
    pub missing: Vec<String>,
    /// Selected file keys the store lacks (non-strict loads only).
    pub unexpected: Vec<String>,
    /// File keys dropped by `ignore_prefixes` or outside `select_prefix`.
    pub skipped: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum StateDictError {
    #[error("cannot read state dict {}: {message}", file.display())]
    Read { file: PathBuf, message: String },
    #[error("cannot write state dict {}: {message}", file.display())]
    Write { file: PathBuf, message: String },
    #[error("{}", mismatch_message(file, missing, unexpected, conflicts))]
    Mismatch {
        file: PathBuf,
        missing: Vec<String>,
        unexpected: Vec<String>,
        /// `key: what differs`.
        conflicts: Vec<String>,
    },
    #[error("cannot write state dict {}: key `{key}` appears twice", file.display())]
    DuplicateKey { file: PathBuf, key: String },
}

/// Loads `path` (safetensors) into `vs`; see [`LoadOptions`].
pub fn load_state_dict(
    vs: &VarStore,
    path: impl AsRef<Path>,
    opts: &LoadOptions,
) -> Result<LoadReport, StateDictError> {
    let path = path.as_ref();
    if !path.is_file() {
        return Err(StateDictError::Read {
            file: path.to_path_buf(),
            message: "no such file".into(),
        });
    }
    let tensors = Tensor::read_safetensors(path).map_err(|e| StateDictError::Read {
        file: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let named: HashMap<String, Tensor> = tensors.into_iter().collect();
    load_named(vs, &named, path, opts)
}

/// Loads named tensors already in memory (a checkpoint read once for several stores)
/// into `vs`, with the same matching and checks as [`load_state_dict`]; `source` names
/// the file they came from in errors.
pub fn load_named(
    vs: &VarStore,
    tensors: &HashMap<String, Tensor>,
    source: &Path,
    opts: &LoadOptions,
) -> Result<LoadReport, StateDictError> {
    let read_err = |message: String| StateDictError::Read {
        file: source.to_path_buf(),
        message,
    };
    let mut skipped = 0;
    let mut file: HashMap<&str, &Tensor> = HashMap::with_capacity(tensors.len());
    for (name, tensor) in tensors {
        if opts
            .ignore_prefixes
            .iter()
            .any(|p| name.starts_with(p.as_str()))
        {
            skipped += 1;
            continue;
        }
        let key = match &opts.select_prefix {
            None => name.as_str(),
            Some(prefix) => match name.strip_prefix(prefix.as_str()) {
                Some(rest) if opts.strip_prefix => rest,
                Some(_) => name.as_str(),
                None => {
                    skipped += 1;
                    continue;
                }
            },
        };
        file.insert(key, tensor);
    }

    let vars = vs.variables();
    let mut missing: Vec<String> = vars
        .keys()
        .filter(|k| !file.contains_key(k.as_str()))
        .cloned()
        .collect();
    let mut unexpected: Vec<String> = file
        .keys()
        .filter(|k| !vars.contains_key(**k))
        .map(|k| k.to_string())
        .collect();
    let mut conflicts = Vec::new();
    for (name, var) in &vars {
        let Some(src) = file.get(name.as_str()) else {
            continue;
        };
        if src.size() != var.size() {
            conflicts.push(format!(
                "{name}: shape {:?} in the file, {:?} in the model",
                src.size(),
                var.size()
            ));
        } else if src.is_floating_point() != var.is_floating_point() {
            conflicts.push(format!(
                "{name}: {:?} in the file, {:?} in the model",
                src.kind(),
                var.kind()
            ));
        }
    }
    missing.sort();
    unexpected.sort();
    conflicts.sort();
    if !conflicts.is_empty() || (opts.strict && !(missing.is_empty() && unexpected.is_empty())) {
        return Err(StateDictError::Mismatch {
            file: source.to_path_buf(),
            missing,
            unexpected,
            conflicts,
        });
    }

    let mut loaded = 0;
    tch::no_grad(|| -> Result<(), StateDictError> {
        for (name, var) in &vars {
            if let Some(src) = file.get(name.as_str()) {
                var.shallow_clone()
                    .f_copy_(src)
                    .map_err(|e| read_err(format!("{name}: {e}")))?;
                loaded += 1;
            }
        }
        Ok(())
    })?;
    Ok(LoadReport {
        loaded,
        missing,
        unexpected,
        skipped,
    })
}

/// Writes the variables of every `(prefix, store)` as one safetensors file, keys
/// `prefix + name` (e.g. `("", &autoencoder)`, `("loss.discriminator.", &disc)` gives
/// taming's layout). Tensors are written as stored (dtype included), from the host, and
/// the file is published atomically and fsynced with its folder (`vqtok_core::fs`), so
/// a crash never leaves half a checkpoint. Returns the number of tensors.
pub fn save_state_dict(
    path: impl AsRef<Path>,
    parts: &[(&str, &VarStore)],
) -> Result<usize, StateDictError> {
    let path = path.as_ref();
    let write_err = |message: String| StateDictError::Write {
        file: path.to_path_buf(),
        message,
    };
    let mut named: BTreeMap<String, Tensor> = BTreeMap::new();
    for (prefix, vs) in parts {
        for (name, var) in vs.variables() {
            let key = format!("{prefix}{name}");
            if named.contains_key(&key) {
                return Err(StateDictError::DuplicateKey {
                    file: path.to_path_buf(),
                    key,
                });
            }
            let host = var.detach().to_device(Device::Cpu).contiguous();
            named.insert(key, host);
        }
    }
    // libtorch's writer opens the file by name (truncating, not replacing it), so the
    // partial file made and locked here is the one written; it stays open, and locked,
    // until it is published.
    let (tmp, _locked) =
        vqtok_core::fs::create_partial(path, "").map_err(|e| write_err(e.to_string()))?;
    let list: Vec<(&String, &Tensor)> = named.iter().collect();
    if let Err(e) = Tensor::write_safetensors(&list, &tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(write_err(e.to_string()));
    }
    vqtok_core::fs::publish(&tmp, path).map_err(|e| write_err(e.to_string()))?;
    Ok(named.len())
}

/// At most this many keys of each kind are listed in an error.
const LIST_LIMIT: usize = 12;

fn mismatch_message(
    file: &Path,
    missing: &[String],
    unexpected: &[String],
    conflicts: &[String],
) -> String {
    let list = |what: &str, keys: &[String]| -> Option<String> {
        if keys.is_empty() {
            return None;
        }
        let shown: Vec<&str> = keys.iter().take(LIST_LIMIT).map(String::as_str).collect();
        let more = keys.len().saturating_sub(LIST_LIMIT);
        let tail = if more > 0 {
            format!(", … and {more} more")
        } else {
            String::new()
        };
        Some(format!("{} {what}: {}{tail}", keys.len(), shown.join(", ")))
    };
    let parts: Vec<String> = [
        list("missing key(s)", missing),
        list("unexpected key(s)", unexpected),
        list("conflicting tensor(s)", conflicts),
    ]
    .into_iter()
    .flatten()
    .collect();
    format!(
        "state dict {} does not match the model: {}",
        file.display(),
        parts.join("; ")
    )
}
