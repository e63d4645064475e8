//! The report of a model folder's verification against the tch model (computed by
//! `vqtok-export verify`, stored in manifest.json under `verification`).

use serde::{Deserialize, Serialize};

/// The acceptance thresholds (issue 7).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Gates {
    pub min_token_agreement_pct: f64,
    pub max_decoder_abs_diff: f64,
    pub max_psnr_delta_db: f64,
}

impl Default for Gates {
    fn default() -> Self {
        Gates {
            min_token_agreement_pct: 99.9,
            max_decoder_abs_diff: 1e-3,
            max_psnr_delta_db: 0.01,
        }
    }
}

/// Numbers for one input set of the reference file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseReport {
    /// `frames` (u8 graphs) or `images` (float graphs).
    pub input: String,
    /// Batch, height, width.
    pub count: usize,
    pub height: usize,
    pub width: usize,
    pub tokens: u64,
    pub matching_tokens: u64,
    pub token_agreement_pct: f64,
    /// On the [0, 255] scale.
    pub decoder_max_abs_diff: f64,
    pub psnr_reference_db: f64,
    pub psnr_onnx_db: f64,
    pub psnr_delta_db: f64,
}

/// The verification result, as stored in manifest.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// File name and sha256 of the reference file.
    pub reference: String,
    pub reference_sha256: String,
    pub cases: Vec<CaseReport>,
    pub tokens: u64,
    pub matching_tokens: u64,
    pub token_agreement_pct: f64,
    pub decoder_max_abs_diff: f64,
    pub psnr_delta_db: f64,
    pub gates: Gates,
    pub passed: bool,
    /// One line per failed gate, with the numbers.
    pub failures: Vec<String>,
    /// What the check ran on (e.g. noise only, when no held-out clips were available).
    #[serde(default)]
    pub notes: Vec<String>,
}

impl VerifyReport {
    /// One line: the combined numbers and the verdict.
    pub fn summary(&self) -> String {
        format!(
            "token agreement {:.4} % ({}/{}), decoder max |Δ| {:.3e} (0–255 scale), ΔPSNR {:.4} dB: {}",
            self.token_agreement_pct,
            self.matching_tokens,
            self.tokens,
            self.decoder_max_abs_diff,
            self.psnr_delta_db,
            if self.passed {
                "passed".to_string()
            } else {
                format!("FAILED ({})", self.failures.join("; "))
            }
        )
    }
}

/// One line per input set, then [`VerifyReport::summary`].
impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in &self.cases {
            writeln!(
                f,
                "{}: {}×{}×{}: agreement {:.4} % ({}/{}), decoder max |Δ| {:.3e}, PSNR tch {:.3} dB / onnx {:.3} dB",
                c.input,
                c.count,
                c.height,
                c.width,
                c.token_agreement_pct,
                c.matching_tokens,
                c.tokens,
                c.decoder_max_abs_diff,
                c.psnr_reference_db,
                c.psnr_onnx_db
            )?;
        }
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        write!(f, "{}", self.summary())
    }
}
