//! vqtok's `param.json`: the seed's layout (`model_type`, `model_args`, `train_args`,
//! `data_args`), read with `//` and `/* */` comments, checked key by key (unknown keys
//! are errors with a did-you-mean) and then semantically (will this model build?).
//!
//! This crate has no heavy dependencies: every other crate and the xtask read
//! configs through it.

mod classic;
mod data;
mod error;
mod jsonc;
mod model;
mod quantizer;
mod split;
mod taming;
mod train;
mod validate;

use std::path::Path;

use serde::Deserialize;
use vqtok_core::hash::sha256_hex;

pub use classic::{VqVae2Args, VqVaeArgs};
pub use data::{DataArgs, Normalize, PixelAffine, ShortVideos};
pub use error::{ConfigError, ErrorKind};
pub use model::{CodebookLevel, MODEL_TYPE_ALIASES, ModelConfig, ModelFamily};
pub use quantizer::{EmaArgs, QuantizerKind};
pub use split::Split;
pub use taming::{DdConfig, DiscLoss, LossConfig, LossParams, ModelVariant, TamingArgs};
pub use train::{Amp, LrDecay, LrDecayKind, ReconLoss, TraditionalLoss, TrainArgs};
pub use validate::{MAX_CODEBOOK, MAX_SIDE};

/// A validated param.json.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `model_type` as written (one of [`MODEL_TYPE_ALIASES`]).
    pub model_type: String,
    pub model: ModelConfig,
    pub train: TrainArgs,
    pub data: DataArgs,
}

/// The document before `model_args` is interpreted (it depends on `model_type`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    model_type: String,
    model_args: serde_json::Value,
    #[serde(default)]
    train_args: TrainArgs,
    #[serde(default)]
    data_args: DataArgs,
}

impl Config {
    /// Reads and validates a param.json; errors name the file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(ErrorKind::Io, "", format!("cannot read config: {e}")).in_file(path)
        })?;
        Config::parse(&text).map_err(|e| e.in_file(path))
    }

    /// Parses and validates param.json text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let clean = jsonc::strip_comments(text).map_err(|(line, col)| {
            ConfigError::new(
                ErrorKind::Syntax,
                "",
                format!("unterminated /* comment (line {line}, column {col})"),
            )
        })?;
        let mut de = serde_json::Deserializer::from_str(&clean);
        let raw: RawConfig = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                ConfigError::new(ErrorKind::Syntax, "", format!("not valid JSON: {inner}"))
            } else {
                error::from_serde(if path == "." { String::new() } else { path }, &inner)
            }
        })?;
        de.end()
            .map_err(|e| ConfigError::new(ErrorKind::Syntax, "", format!("not valid JSON: {e}")))?;
        Config::from_raw(raw)
    }

    fn from_raw(raw: RawConfig) -> Result<Config, ConfigError> {
        let family = ModelFamily::from_model_type(&raw.model_type).ok_or_else(|| {
            let names = MODEL_TYPE_ALIASES.iter().map(|(n, _)| *n);
            let hint = error::did_you_mean(&raw.model_type, names.clone())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            let list = names
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ");
            ConfigError::new(
                ErrorKind::Schema,
                "model_type",
                format!(
                    "unknown model type `{}`{hint}; expected one of: {list}",
                    raw.model_type
                ),
            )
        })?;
        let model = match family {
            ModelFamily::Taming => ModelConfig::Taming(model_args(raw.model_args)?),
            ModelFamily::VqVae => ModelConfig::VqVae(model_args(raw.model_args)?),
            ModelFamily::VqVae2 => ModelConfig::VqVae2(model_args(raw.model_args)?),
        };
        validate::model(&model)?;
        validate::train(&raw.train_args, &model)?;
        validate::data(&raw.data_args, &model)?;
        Ok(Config {
            model_type: raw.model_type,
            model,
            train: raw.train_args,
            data: raw.data_args,
        })
    }

    /// The config as JSON in the seed's layout, every default written out.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "model_type": self.model_type,
            "model_args": self.model,
            "train_args": self.train,
            "data_args": self.data,
        })
    }

    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(&self.to_json()).expect("a Config always serialises")
    }

    /// sha256 (hex) of what fixes the weights' meaning: the family and `model_args`.
    /// Two configs with the same hash load each other's checkpoints.
    pub fn model_hash(&self) -> String {
        let canonical =
            serde_json::json!({ "family": self.model.family().as_str(), "model_args": self.model });
        sha256_hex(canonical.to_string().as_bytes())
    }

    /// sha256 (hex) of the whole config as written out (every default included).
    pub fn config_hash(&self) -> String {
        sha256_hex(self.to_json().to_string().as_bytes())
    }

    /// Square crop size the data pipeline produces.
    pub fn data_resolution(&self) -> usize {
        self.data
            .resolution
            .unwrap_or_else(|| self.model.nominal_resolution())
    }

    /// One line for `check-config`.
    pub fn summary(&self) -> String {
        let res = self.data_resolution();
        let grids = self
            .model
            .levels()
            .iter()
            .map(|l| {
                format!(
                    "{} f{} {}×{} ({}×{} codebook)",
                    l.name,
                    l.factor,
                    res / l.factor,
                    res / l.factor,
                    l.codebook_size,
                    l.dim
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let variant = match &self.model {
            ModelConfig::Taming(a) => format!("/{:?}", a.model_variant),
            _ => String::new(),
        };
        let t = &self.train;
        let loss = match &self.model {
            ModelConfig::Taming(a) if t.use_taming_loss != Some(false) => format!(
                "taming loss, disc every {} from step {}",
                t.disc_update_every, a.lossconfig.params.disc_start
            ),
            _ => format!("traditional loss ({:?})", t.traditional_loss.recon_loss).to_lowercase(),
        };
        format!(
            "{}{variant} at {res}²: {grids}; batch {}×{} frames, lr {}, {} steps, {loss}",
            self.model_type, t.batch_size, self.data.sequence_length, t.lr, t.num_steps
        )
    }
}

impl TamingArgs {
    /// The semantic checks `Config::parse` runs, for args built in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate::taming(self)
    }
}

impl VqVaeArgs {
    /// The semantic checks `Config::parse` runs, for args built in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate::vqvae(self)
    }
}

impl VqVae2Args {
    /// The semantic checks `Config::parse` runs, for args built in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate::vqvae2(self)
    }
}

fn model_args<T: for<'de> Deserialize<'de>>(value: serde_json::Value) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let sub = e.path().to_string();
        let path = if sub == "." {
            "model_args".to_string()
        } else {
            format!("model_args.{sub}")
        };
        error::from_serde(path, e.inner())
    })
}

/// Differences between two JSON documents as `path: a → b` lines (for resume checks).
pub fn json_diff(a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
    fn walk(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        use serde_json::Value::Object;
        match (a, b) {
            (Object(x), Object(y)) => {
                let mut keys: Vec<&String> = x
                    .keys()
                    .chain(y.keys().filter(|k| !x.contains_key(*k)))
                    .collect();
                keys.dedup();
                for k in keys {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    let null = serde_json::Value::Null;
                    walk(
                        &p,
                        x.get(k).unwrap_or(&null),
                        y.get(k).unwrap_or(&null),
                        out,
                    );
                }
            }
            _ if a != b => out.push(format!("{path}: {a} → {b}")),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", a, b, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_diff_lists_changed_leaves() {
        let a = serde_json::json!({"m": {"ch": 32, "k": [1, 2]}, "x": 1});
        let b = serde_json::json!({"m": {"ch": 64, "k": [1, 2]}, "y": 2});
        let d = json_diff(&a, &b);
        assert_eq!(d, vec!["m.ch: 32 → 64", "x: 1 → null", "y: null → 2"]);
    }
}
