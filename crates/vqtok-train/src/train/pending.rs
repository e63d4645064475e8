//! Step outcomes the host has not read yet. A step leaves whether its updates were
//! applied as device flags (`step.rs`); reading each at once would make the host wait for
//! the device every step. The trainer collects them here and reads them together, in one
//! transfer, when it reports (log lines, checkpoints, validation, the end of a run).

use tch::{Device, Kind, Tensor};

use crate::train::step::StepLog;

/// What a step did, as read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    pub step: u64,
    /// The autoencoder update was applied (false: the step changed nothing).
    pub updated: bool,
    /// Whether the discriminator's update was applied, when it was due.
    pub disc_updated: Option<bool>,
}

#[derive(Default)]
pub struct Pending {
    steps: Vec<(u64, Tensor, Option<Tensor>)>,
}

impl Pending {
    /// Remembers `log`'s flags for step `step`.
    pub fn push(&mut self, step: u64, log: &StepLog) {
        self.steps.push((
            step,
            log.updated.shallow_clone(),
            log.disc_updated.as_ref().map(Tensor::shallow_clone),
        ));
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Every remembered step's outcome, in order (one read from the device).
    pub fn read(&mut self) -> Vec<Settled> {
        if self.steps.is_empty() {
            return Vec::new();
        }
        let device = self.steps[0].1.device();
        let flag = |t: &Tensor| t.to_kind(Kind::Double).reshape([1]);
        // 1/0 per flag; −1 where the discriminator was not due. Joined on the device,
        // then one transfer.
        let parts: Vec<Tensor> = self
            .steps
            .iter()
            .flat_map(|(_, updated, disc)| {
                let disc = disc
                    .as_ref()
                    .map_or_else(|| Tensor::full([1], -1.0, (Kind::Double, device)), flag);
                [flag(updated), disc]
            })
            .collect();
        let values =
            Vec::<f64>::try_from(Tensor::cat(&parts, 0).to_device(Device::Cpu)).expect("f64 flags");
        self.steps
            .drain(..)
            .zip(values.chunks(2))
            .map(|((step, _, _), v)| Settled {
                step,
                updated: v[0] > 0.0,
                disc_updated: (v[1] >= 0.0).then_some(v[1] > 0.0),
            })
            .collect()
    }
}
