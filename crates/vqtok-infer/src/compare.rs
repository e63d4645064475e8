//! How many tokens two token files of the same frames share: the torch engine against
//! the ORT engine, bf16 against fp32, one machine against another (`vqtokenize compare`,
//! `cargo xtask verify`).

use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::error::{InferError, Result};
use crate::tokens::TokenFile;

/// Token agreement of two files over every level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Agreement {
    pub tokens: u64,
    pub differ: u64,
}

impl Agreement {
    /// Fraction of equal tokens (1 for two empty files).
    pub fn fraction(&self) -> f64 {
        if self.tokens == 0 {
            1.0
        } else {
            1.0 - self.differ as f64 / self.tokens as f64
        }
    }
}

impl fmt::Display for Agreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.4} % of {} tokens agree ({} differ)",
            100.0 * self.fraction(),
            self.tokens,
            self.differ
        )
    }
}

/// Compares `a` and `b` (`b_path` names `b` in errors): both must hold the same grids
/// (names and shapes) of the same model, else the comparison means nothing.
pub fn agreement(a: &TokenFile, b: &TokenFile, b_path: &Path) -> Result<Agreement> {
    let mismatch = |what: String| InferError::bad_input(b_path, what);
    if a.meta.model_sha256 != b.meta.model_sha256 {
        return Err(mismatch(format!(
            "made by model {}, the first file by {}",
            b.meta.model_sha256, a.meta.model_sha256
        )));
    }
    let shapes = |f: &TokenFile| {
        f.levels
            .iter()
            .map(|l| (l.tensor.clone(), l.shape))
            .collect::<Vec<_>>()
    };
    if shapes(a) != shapes(b) {
        return Err(mismatch(format!(
            "grids {:?} differ from the first file's {:?}",
            shapes(b),
            shapes(a)
        )));
    }
    let mut out = Agreement {
        tokens: 0,
        differ: 0,
    };
    for (x, y) in a.levels.iter().zip(&b.levels) {
        out.tokens += x.data.len() as u64;
        out.differ += x.data.iter().zip(&y.data).filter(|(p, q)| p != q).count() as u64;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::IndexDtype;
    use crate::tokens::tests::sample;
    use vqtok_core::exit::Blame;

    #[test]
    fn counts_differing_tokens_over_all_levels_and_refuses_other_grids() {
        let a = sample(IndexDtype::I16, 512);
        let mut b = a.clone();
        let path = Path::new("b.vqt.safetensors");
        assert_eq!(
            agreement(&a, &b, path).unwrap(),
            Agreement {
                tokens: 3 * (16 + 64),
                differ: 0
            }
        );
        b.levels[0].data[3] += 1;
        b.levels[1].data[70] += 1;
        let got = agreement(&a, &b, path).unwrap();
        assert_eq!(got.differ, 2);
        assert!((got.fraction() - (1.0 - 2.0 / 240.0)).abs() < 1e-12);
        assert!(got.to_string().contains("(2 differ)"), "{got}");
        b.levels[1].shape = [3, 4, 16];
        let e = agreement(&a, &b, path).unwrap_err();
        assert!(e.is_user_error() && e.to_string().contains("grids"), "{e}");
        b.meta.model_sha256 = "ef".repeat(32);
        assert!(
            agreement(&a, &b, path)
                .unwrap_err()
                .to_string()
                .contains("model")
        );
    }
}
