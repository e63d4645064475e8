//! Codebook statistics for the trainer's logs (project decision 5; taming's
//! VectorQuantizer2 computes none of them).

use tch::{Device, Kind, Tensor};

/// Per-code counts of an index tensor of any shape, `[K]` int64 on its device.
///
/// An integer scatter-add rather than `bincount`, which reads the largest index back
/// to the host on CUDA and would stall every training forward; integer sums are exact
/// in any order.
pub fn code_counts(indices: &Tensor, size: i64) -> Tensor {
    let flat = indices.flatten(0, -1).to_kind(Kind::Int64);
    Tensor::zeros([size], (Kind::Int64, flat.device())).scatter_add(0, &flat, &flat.ones_like())
}

/// exp(entropy) of the batch's code distribution, as taming's EMA quantizer computes it:
/// p = counts / N, perplexity = exp(−Σ p·log(p + 1e-10)). Between 1 (one code) and K
/// (uniform use). A scalar tensor of `kind`; no host sync.
pub fn perplexity(indices: &Tensor, size: i64, kind: Kind) -> Tensor {
    let counts = code_counts(indices, size).to_kind(kind);
    let p = &counts / indices.numel() as f64;
    (-(&p * (&p + 1e-10).log()).sum(kind)).exp()
}

/// One batch's use of one codebook.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchCodeStats {
    /// Distinct codes used.
    pub used: usize,
    /// `used / K`.
    pub usage: f64,
    pub perplexity: f64,
}

/// Usage and perplexity of one `[B, h, w]` index grid (one host sync).
pub fn batch_stats(indices: &Tensor, size: i64) -> BatchCodeStats {
    let counts = host_counts(&code_counts(indices, size));
    let n = indices.numel() as f64;
    let used = counts.iter().filter(|&&c| c > 0).count();
    let entropy: f64 = counts
        .iter()
        .map(|&c| c as f64 / n)
        .map(|p| -p * (p + 1e-10).ln())
        .sum();
    BatchCodeStats {
        used,
        usage: used as f64 / size as f64,
        perplexity: entropy.exp(),
    }
}

/// Cumulative per-code counts over many batches (an epoch, a logging window), to find
/// codes the encoder no longer selects. Kept on the model's device; reading it syncs.
#[derive(Debug)]
pub struct CodebookUsage {
    counts: Tensor,
}

impl CodebookUsage {
    pub fn new(size: i64, device: Device) -> Self {
        CodebookUsage {
            counts: Tensor::zeros([size], (Kind::Int64, device)),
        }
    }

    /// Adds the codes of one index grid.
    pub fn update(&mut self, indices: &Tensor) {
        let size = self.counts.size()[0];
        let batch = code_counts(indices, size).to_device(self.counts.device());
        self.counts += batch;
    }

    /// [`Self::update`] where the 0-dim bool `ok` (on the counts' device) holds, decided
    /// on the device.
    pub fn update_if(&mut self, indices: &Tensor, ok: &Tensor) {
        let size = self.counts.size()[0];
        let batch = code_counts(indices, size).to_device(self.counts.device());
        self.counts += batch * ok.to_kind(Kind::Int64);
    }

    /// Per-code counts since creation or the last reset.
    pub fn counts(&self) -> Vec<i64> {
        host_counts(&self.counts)
    }

    /// Codes used fewer than `min_count` times.
    pub fn dead_codes(&self, min_count: i64) -> usize {
        dead_codes(&self.counts(), min_count)
    }

    /// Fraction of the codebook used at least once.
    pub fn usage(&self) -> f64 {
        let counts = self.counts();
        counts.iter().filter(|&&c| c > 0).count() as f64 / counts.len().max(1) as f64
    }

    pub fn reset(&mut self) {
        let _ = self.counts.zero_();
    }

    /// Continues from saved [`Self::counts`].
    pub fn restore(&mut self, counts: &[i64]) -> Result<(), String> {
        let size = self.counts.size()[0];
        if counts.len() as i64 != size {
            return Err(format!(
                "{} code counts for a codebook of {size}",
                counts.len()
            ));
        }
        self.counts
            .copy_(&Tensor::from_slice(counts).to_device(self.counts.device()));
        Ok(())
    }
}

/// A `[K]` int64 count tensor on the host.
fn host_counts(counts: &Tensor) -> Vec<i64> {
    Vec::<i64>::try_from(counts.to_device(Device::Cpu))
        .expect("bincount yields a 1-D int64 tensor, which always converts")
}

/// Codes whose cumulative count is below `min_count` (1: never used).
pub fn dead_codes(counts: &[i64], min_count: i64) -> usize {
    counts.iter().filter(|&&c| c < min_count).count()
}
