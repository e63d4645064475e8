//! The values a loss step reports, under taming's names (`{split}/total_loss`, …).
//! They stay tensors (detached scalars) so that logging only waits for the device
//! on the steps that are actually written out.

use tch::Tensor;
use vqtok_config::Split;

/// Ordered `(key, detached scalar)` pairs.
#[derive(Debug)]
pub struct LossLog {
    entries: Vec<(String, Tensor)>,
}

impl LossLog {
    pub(crate) fn new() -> LossLog {
        LossLog {
            entries: Vec::new(),
        }
    }

    /// Adds `{split}/{name}` = the mean of `value`, detached.
    pub(crate) fn push(&mut self, split: Split, name: &str, value: &Tensor) {
        let v = value.detach().mean(value.kind());
        self.entries.push((format!("{}/{name}", split.as_str()), v));
    }

    /// The value logged under the full key (e.g. `train/g_loss`).
    pub fn get(&self, key: &str) -> Option<&Tensor> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// Every value as f64 (waits for the device once per value).
    pub fn scalars(&self) -> Vec<(String, f64)> {
        self.entries
            .iter()
            .map(|(k, v)| (k.clone(), v.double_value(&[])))
            .collect()
    }
}
