//! Learning-rate schedules (`train_args.lr_decay`). taming itself keeps the lr
//! constant (spec §7.2); the seed trainer has a scheduler, so both are offered.
//!
//! The schedule is a pure function of the step, so "restoring the scheduler" on
//! resume means restoring the step; the checkpoint still records the lr it used so a
//! changed schedule is detected.

use vqtok_config::{LrDecay, LrDecayKind, TrainArgs};

#[derive(Debug, Clone, PartialEq)]
pub struct LrSchedule {
    base: f64,
    decay: Option<LrDecay>,
    num_steps: u64,
}

impl LrSchedule {
    pub fn new(train: &TrainArgs) -> Self {
        LrSchedule {
            base: train.lr,
            decay: train.lr_decay.clone(),
            num_steps: train.num_steps,
        }
    }

    /// The learning rate used for the update of (0-based) `step`.
    pub fn lr_at(&self, step: u64) -> f64 {
        let Some(d) = &self.decay else {
            return self.base;
        };
        if step < d.warmup_steps {
            return self.base * (step + 1) as f64 / d.warmup_steps as f64;
        }
        let t = step - d.warmup_steps;
        match d.kind {
            LrDecayKind::Step => {
                let size = d.step_size.unwrap_or(1).max(1);
                self.base * d.gamma.unwrap_or(1.0).powi((t / size) as i32)
            }
            LrDecayKind::Exponential => self.base * d.gamma.unwrap_or(1.0).powf(t as f64),
            LrDecayKind::Cosine => {
                let span = self.num_steps.saturating_sub(d.warmup_steps).max(1) as f64;
                let progress = (t as f64 / span).min(1.0);
                d.min_lr
                    + 0.5 * (self.base - d.min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }

    /// What the checkpoint records as the scheduler state.
    pub fn state(&self, step: u64) -> serde_json::Value {
        serde_json::json!({ "step": step, "lr": self.lr_at(step), "decay": self.decay })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(decay: serde_json::Value) -> LrSchedule {
        let mut t = TrainArgs {
            lr: 1.0,
            num_steps: 110,
            ..TrainArgs::default()
        };
        t.lr_decay = Some(serde_json::from_value(decay).unwrap());
        LrSchedule::new(&t)
    }

    #[test]
    fn constant_without_decay() {
        let s = LrSchedule::new(&TrainArgs {
            lr: 3e-4,
            ..TrainArgs::default()
        });
        assert_eq!(s.lr_at(0), 3e-4);
        assert_eq!(s.lr_at(1_000_000), 3e-4);
    }

    #[test]
    fn warmup_then_step_decay() {
        let s = schedule(
            serde_json::json!({"type": "step", "warmup_steps": 10, "step_size": 20, "gamma": 0.5}),
        );
        assert_eq!(s.lr_at(0), 0.1);
        assert_eq!(s.lr_at(9), 1.0);
        assert_eq!(s.lr_at(10), 1.0);
        assert_eq!(s.lr_at(29), 1.0);
        assert_eq!(s.lr_at(30), 0.5);
        assert_eq!(s.lr_at(50), 0.25);
    }

    #[test]
    fn exponential_decay() {
        let s = schedule(serde_json::json!({"type": "exponential", "gamma": 0.9}));
        assert!((s.lr_at(2) - 0.81).abs() < 1e-15);
    }

    #[test]
    fn cosine_reaches_min_lr_at_the_end() {
        let s = schedule(serde_json::json!({"type": "cosine", "warmup_steps": 10, "min_lr": 0.1}));
        assert_eq!(s.lr_at(10), 1.0);
        assert!(
            (s.lr_at(60) - 0.55).abs() < 1e-12,
            "half-way is the mean of base and min"
        );
        assert!((s.lr_at(110) - 0.1).abs() < 1e-12);
        assert!(
            (s.lr_at(500) - 0.1).abs() < 1e-12,
            "stays at the floor past num_steps"
        );
    }
}
