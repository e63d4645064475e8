//! The codebook statistics of the current log interval: per level, how often each code
//! was chosen and the sum of batch perplexities, over the interval's completed steps.
//! They are part of a checkpoint, so a resumed run logs the same usage and perplexity
//! as an uninterrupted one even when it stopped in the middle of an interval.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};
use vqtok_config::CodebookLevel;

use crate::model::CodebookUsage;

pub struct CodeWindow {
    usage: Vec<CodebookUsage>,
    /// Device scalars (f64), so adding a step's perplexity never waits on the device.
    perplexity_sum: Vec<Tensor>,
    /// Completed steps, a device scalar (f64) for the same reason.
    steps: Tensor,
}

/// What a checkpoint stores of a [`CodeWindow`] (in `train_state.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CodeWindowState {
    pub steps: u64,
    pub counts: Vec<Vec<i64>>,
    pub perplexity_sum: Vec<f64>,
}

/// One level's numbers over the interval.
pub struct LevelStats {
    /// Percent of the codebook used at least once.
    pub usage_percent: f64,
    pub dead_codes: usize,
    pub mean_perplexity: f64,
}

impl CodeWindow {
    pub fn new(levels: &[CodebookLevel], device: Device) -> CodeWindow {
        CodeWindow {
            usage: levels
                .iter()
                .map(|l| CodebookUsage::new(l.codebook_size as i64, device))
                .collect(),
            perplexity_sum: levels
                .iter()
                .map(|_| Tensor::zeros([], (Kind::Double, device)))
                .collect(),
            steps: Tensor::zeros([], (Kind::Double, device)),
        }
    }

    /// Adds a step's index grids and perplexities (one per level) if it completed: where
    /// the 0-dim bool `completed` holds, decided on the device.
    pub fn add(&mut self, indices: &[Tensor], perplexity: &[Tensor], completed: &Tensor) {
        for (u, idx) in self.usage.iter_mut().zip(indices) {
            u.update_if(idx, completed);
        }
        let zero = Tensor::zeros([], (Kind::Double, completed.device()));
        for (s, p) in self.perplexity_sum.iter_mut().zip(perplexity) {
            *s += p
                .detach()
                .to_kind(Kind::Double)
                .where_self(completed, &zero);
        }
        self.steps += completed.to_kind(Kind::Double);
    }

    fn completed_steps(&self) -> u64 {
        self.steps.double_value(&[]) as u64
    }

    /// The interval's numbers per level; the window starts over.
    pub fn take(&mut self) -> Vec<LevelStats> {
        let steps = self.completed_steps().max(1) as f64;
        let stats = self
            .usage
            .iter()
            .zip(&self.perplexity_sum)
            .map(|(u, p)| LevelStats {
                usage_percent: 100.0 * u.usage(),
                dead_codes: u.dead_codes(1),
                mean_perplexity: p.double_value(&[]) / steps,
            })
            .collect();
        for u in &mut self.usage {
            u.reset();
        }
        for p in &mut self.perplexity_sum {
            let _ = p.zero_();
        }
        let _ = self.steps.zero_();
        stats
    }

    pub fn state(&self) -> CodeWindowState {
        CodeWindowState {
            steps: self.completed_steps(),
            counts: self.usage.iter().map(CodebookUsage::counts).collect(),
            perplexity_sum: self
                .perplexity_sum
                .iter()
                .map(|p| p.double_value(&[]))
                .collect(),
        }
    }

    /// Continues from a checkpoint's window; an error says what does not fit.
    pub fn restore(&mut self, s: &CodeWindowState) -> Result<(), String> {
        if s.counts.len() != self.usage.len() || s.perplexity_sum.len() != self.usage.len() {
            return Err(format!(
                "the log window has {} levels, the model {}",
                s.counts.len(),
                self.usage.len()
            ));
        }
        for (u, counts) in self.usage.iter_mut().zip(&s.counts) {
            u.restore(counts)?;
        }
        for (p, &sum) in self.perplexity_sum.iter_mut().zip(&s.perplexity_sum) {
            let _ = p.fill_(sum);
        }
        let _ = self.steps.fill_(s.steps as f64);
        Ok(())
    }
}
