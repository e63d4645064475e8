//! One optimisation step, the same on both loss paths (the fixture test drives this same
//! function): forward → the calculator's generator loss → backward and the
//! autoencoder's Adam → the calculator's discriminator update on its steps, on the same
//! reconstruction, detached.
//!
//! A step whose loss is not finite changes nothing: the forwards update statistics in
//! place (the EMA codebook, the discriminator's BatchNorm) before the losses exist, so
//! those are staged — copied before the step and put back when it is skipped. Whether it
//! is skipped is a device flag applied as a selection (Adam's `step_if`, `Staged::keep_if`),
//! never read back here, so the host runs ahead of the device; the trainer reads the flags
//! when it reports.
//!
//! In a data-parallel job (`dist`) every rank runs this on its own batch: gradients are
//! averaged over the ranks before clipping and Adam, finiteness is decided by all ranks
//! together (all skip or none), and the discriminator's BatchNorm statistics are rank 0's
//! at its end.

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::autocast::Autocast;
use crate::dist;
use crate::loss::{LossCalculator, LossLog, Reconstruction, Split, Update, UpdateSettings};
use crate::model::VqModel;
use crate::optim::Adam;
use crate::train::error::TrainError;

/// Per-step settings taken from `train_args` and the lr schedule.
#[derive(Debug, Clone, Copy)]
pub struct StepSettings {
    pub lr: f64,
    pub grad_clip: Option<f64>,
    /// bf16 autocast on this (CUDA) device around the forwards.
    pub amp: Option<Device>,
}

/// What a step that ran leaves: for logging (device tensors, read only when logged),
/// and whether its updates happened, as device flags the trainer reads when it reports.
pub struct StepLog {
    pub losses: Vec<LossLog>,
    pub x: Tensor,
    pub recon: Tensor,
    pub perplexity: Vec<Tensor>,
    pub indices: Vec<Tensor>,
    /// 0-dim bool: the generator loss was finite on every rank, so the autoencoder was
    /// updated; false: nothing changed (every statistic restored).
    pub updated: Tensor,
    /// 0-dim bool when the discriminator was due: its update was applied (false: its
    /// loss or the generator's was not finite, and its statistics were restored).
    pub disc_updated: Option<Tensor>,
}

/// The non-trainable entries of a model's var store: what its training forward updates
/// in place (the EMA codebook's weight, cluster sizes and sums), as opposed to what its
/// optimizer updates.
pub fn model_statistics(vs: &VarStore) -> Vec<Tensor> {
    vs.variables()
        .into_values()
        .filter(|t| !t.requires_grad())
        .collect()
}

/// What a step did.
pub enum StepOutcome {
    /// It ran; whether its updates were applied is in the log's device flags.
    Done(StepLog),
    /// Skipped before its forward (fault injection only).
    Skipped,
}

/// Copies of tensors that are changed in place, to put back if the step is skipped.
struct Staged {
    /// (live tensor, copy taken before the step)
    tensors: Vec<(Tensor, Tensor)>,
}

impl Staged {
    fn take(tensors: Vec<Tensor>) -> Staged {
        let tensors = tch::no_grad(|| {
            tensors
                .into_iter()
                .map(|t| {
                    let copy = t.copy();
                    (t, copy)
                })
                .collect()
        });
        Staged { tensors }
    }

    /// Keeps the live values where the 0-dim bool `ok` holds, puts the copies back
    /// where it does not: decided on the device, no host read.
    fn keep_if(self, ok: &Tensor) {
        tch::no_grad(|| {
            for (mut live, copy) in self.tensors {
                let kept = live.where_self(ok, &copy);
                live.copy_(&kept);
            }
        });
    }
}

fn autocast(s: &StepSettings) -> Option<Autocast> {
    s.amp.map(|d| Autocast::enabled(d, Kind::BFloat16))
}

/// Trains on batch `x` at global step `step`. `statistics` are the model's tensors a
/// training forward changes in place (its var store's non-trainable entries: the EMA
/// codebook state, see [`model_statistics`]).
pub fn train_step(
    model: &dyn VqModel,
    statistics: &[Tensor],
    calc: &mut LossCalculator,
    opt_ae: &mut Adam,
    x: &Tensor,
    step: u64,
    s: &StepSettings,
) -> Result<StepOutcome, TrainError> {
    let model_stats = Staged::take(statistics.iter().map(Tensor::shallow_clone).collect());
    let disc_stats = Staged::take(
        calc.discriminator()
            .filter(|d| d.is_on(step))
            .map(|d| d.statistics())
            .unwrap_or_default(),
    );
    let last_layer = model.last_layer();
    let out = {
        let _amp = autocast(s);
        model.forward_t(x, true)?
    };
    let r = Reconstruction {
        inputs: x,
        recon: &out.recon,
        vq_loss: &out.vq_loss,
        last_layer: &last_layer,
    };
    let g = {
        let _amp = autocast(s);
        calc.generator_step(&r, step, Split::Train)?
    };
    // Decided on the device and applied as a selection: the step never waits for the
    // host (a non-finite loss still runs backward; its update is then not applied).
    let ok = dist::finite_everywhere(&g.total_loss);
    let backward = g.backward_loss.as_ref().ok_or_else(|| {
        TrainError::Usage("the generator pass built no graph (is autograd disabled?)".into())
    })?;
    opt_ae.zero_grad();
    backward.f_backward()?;
    dist::average(&opt_ae.grad_buffers());
    if let Some(c) = s.grad_clip {
        let _ = opt_ae.clip_grad_norm(c);
    }
    opt_ae.set_lr(s.lr);
    opt_ae.step_if(&ok);
    model_stats.keep_if(&ok);
    let settings = UpdateSettings {
        lr: s.lr,
        grad_clip: s.grad_clip,
    };
    // Staged again: the generator pass's changes to D's statistics stand when the step
    // does; the discriminator pass's are undone unless its update is applied.
    let disc_pass_stats = Staged::take(
        calc.discriminator()
            .filter(|d| d.updates_at(step))
            .map(|d| d.statistics())
            .unwrap_or_default(),
    );
    let update = {
        let _amp = autocast(s);
        calc.discriminator_step(&r, step, &settings, &ok)?
    };
    let mut losses = vec![g.log];
    let disc_updated = match update {
        Update::NotDue => None,
        Update::Done { log, applied } => {
            losses.push(log);
            disc_pass_stats.keep_if(&applied);
            Some(applied)
        }
    };
    disc_stats.keep_if(&ok);
    // The discriminator's BatchNorm statistics: rank 0's on every rank once its forwards
    // ran (DDP broadcasts them at the next forward; here they are equal between steps, so
    // checkpoints and the end-of-run weight check see one value).
    if let Some(d) = calc.discriminator().filter(|d| d.is_on(step)) {
        dist::broadcast_from_root(&d.buffers());
    }
    Ok(StepOutcome::Done(StepLog {
        losses,
        x: x.shallow_clone(),
        recon: out.recon.detach(),
        perplexity: out.perplexity.iter().map(Tensor::detach).collect(),
        indices: out.indices,
        updated: ok,
        disc_updated,
    }))
}
