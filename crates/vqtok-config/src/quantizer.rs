//! Codebook settings shared by every model family.

use serde::{Deserialize, Serialize};

/// How a codebook is learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum QuantizerKind {
    /// Gradient-trained codebook (VectorQuantizer2): codebook + commitment loss.
    #[default]
    Vq,
    /// Exponential-moving-average codebook: only the commitment loss takes gradients.
    Ema,
}

/// EMA codebook options. The original taming EMA quantizer blows up every code that
/// is unused in its first batch (spec §3.3); the defaults here prevent that with a
/// data-dependent initialisation and dead-code restarts (project decision 4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmaArgs {
    /// EMA decay of cluster sizes and sums (taming: 0.99).
    pub decay: f64,
    /// Laplace smoothing epsilon (taming: 1e-5).
    pub eps: f64,
    /// Initialise the codebook from encoder outputs of the first training batch.
    pub data_init: bool,
    /// A code whose EMA cluster size (assignments per batch, averaged) falls below this
    /// is restarted on a random encoder output of the current batch (its EMA state is
    /// reset with it). 0 disables. The default 1.0 (Jukebox's) restarts a code that
    /// stops being chosen within ~100 steps at decay 0.99; a tiny threshold such as 1e-3
    /// takes ~690 steps, so codes die faster than they come back and the codebook
    /// collapses (issue 12: 20–30 % of the codes in use after 100 steps).
    pub dead_code_threshold: f64,
}

impl Default for EmaArgs {
    fn default() -> Self {
        Self {
            decay: 0.99,
            eps: 1e-5,
            data_init: true,
            dead_code_threshold: 1.0,
        }
    }
}
