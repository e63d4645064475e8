//! One error type for everything that can be wrong with a param.json: it always
//! names the file (when there is one), the JSON path, and what was expected.

use std::fmt;
use std::path::PathBuf;

/// What kind of problem a [`ConfigError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file could not be read.
    Io,
    /// Not JSON (after comments are removed).
    Syntax,
    /// Valid JSON, but a key, type or value does not fit the schema.
    Schema,
    /// Every value is well-formed but the combination cannot work.
    Semantic,
}

/// A param.json problem. `Display` gives `FILE: PATH: message`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ConfigError {
    pub kind: ErrorKind,
    pub file: Option<PathBuf>,
    /// JSON path such as `model_args.ddconfig.ch_mult[2]`; empty for the document root.
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(
        kind: ErrorKind,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            file: None,
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn semantic(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Semantic, path, message)
    }

    pub(crate) fn in_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.file = Some(file.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "`{}`: {}", self.path, self.message)
        }
    }
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::jaro_winkler(&word.to_lowercase(), &c.to_lowercase()),
                c,
            )
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Rewrites serde's messages into ours: unknown keys and variants get a did-you-mean.
pub(crate) fn from_serde(path: String, err: &serde_json::Error) -> ConfigError {
    let msg = err.to_string();
    // serde_json appends " at line L column C" for errors raised while reading text.
    let msg = match msg.rfind(" at line ") {
        Some(i) if err.line() > 0 => format!(
            "{} (line {}, column {})",
            &msg[..i],
            err.line(),
            err.column()
        ),
        _ => msg,
    };
    for (prefix, noun) in [("unknown field `", "key"), ("unknown variant `", "value")] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            let Some(end) = rest.find('`') else { break };
            let word = &rest[..end];
            let expected: Vec<&str> = rest[end + 1..].split('`').skip(1).step_by(2).collect();
            let hint = did_you_mean(word, expected.iter().copied())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            let list = expected
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let list = if list.is_empty() {
                "none".to_string()
            } else {
                list
            };
            return ConfigError::new(
                ErrorKind::Schema,
                path,
                format!("unknown {noun} `{word}`{hint}; expected one of: {list}"),
            );
        }
    }
    ConfigError::new(ErrorKind::Schema, path, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("chmult", ["ch", "ch_mult", "dropout"]),
            Some("ch_mult")
        );
        assert_eq!(did_you_mean("zzzz", ["ch", "ch_mult", "dropout"]), None);
    }

    #[test]
    fn display_names_file_and_path() {
        let e = ConfigError::semantic("train_args.lr", "must be > 0").in_file("a.json");
        assert_eq!(e.to_string(), "a.json: `train_args.lr`: must be > 0");
    }
}
