//! One optimisation step, the same on both loss paths (the fixture test drives this same
//! function): forward → the calculator's generator loss → backward and the
//! autoencoder's Adam → the calculator's discriminator update on its steps, on the same
//! reconstruction, detached.
//!
//! A step whose loss is not finite changes nothing it did not commit: the forwards update
//! statistics in place (the EMA codebook, the discriminator's BatchNorm) before the losses
//! exist, so those are staged — copied before the step and restored when it is skipped.
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
use crate::model::{ModelOutput, VqModel};
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

/// What a completed step leaves for logging (device tensors, read only when logged).
pub struct StepLog {
    pub losses: Vec<LossLog>,
    pub x: Tensor,
    pub recon: Tensor,
    pub perplexity: Vec<Tensor>,
    pub indices: Vec<Tensor>,
}

impl StepLog {
    fn new(losses: Vec<LossLog>, x: &Tensor, out: ModelOutput) -> StepLog {
        StepLog {
            losses,
            x: x.shallow_clone(),
            recon: out.recon.detach(),
            perplexity: out.perplexity.iter().map(Tensor::detach).collect(),
            indices: out.indices,
        }
    }
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
    /// Both updates that were due happened.
    Done(StepLog),
    /// The generator loss was not finite: no update, every statistic restored.
    Skipped,
    /// The autoencoder was updated; the discriminator's loss was not finite, so its
    /// update was skipped and its statistics restored.
    DiscriminatorSkipped(StepLog),
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

    fn restore(self) {
        tch::no_grad(|| {
            for (mut live, copy) in self.tensors {
                live.copy_(&copy);
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
    let outcome = update(model, statistics, calc, opt_ae, x, step, s)?;
    // The discriminator's BatchNorm statistics: rank 0's on every rank once its forwards
    // ran (DDP broadcasts them at the next forward; here they are equal between steps, so
    // checkpoints and the end-of-run weight check see one value).
    if let Some(d) = calc.discriminator().filter(|d| d.is_on(step)) {
        dist::broadcast_from_root(&d.buffers());
    }
    Ok(outcome)
}

/// [`train_step`]'s updates, on this rank's batch.
fn update(
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
    if !dist::all_finite(&g.total_loss) {
        model_stats.restore();
        disc_stats.restore();
        return Ok(StepOutcome::Skipped);
    }
    let backward = g.backward_loss.as_ref().ok_or_else(|| {
        TrainError::Usage("the generator pass built no graph (is autograd disabled?)".into())
    })?;
    opt_ae.zero_grad();
    backward.f_backward()?;
    dist::average(&opt_ae.grads());
    if let Some(c) = s.grad_clip {
        opt_ae.clip_grad_norm(c);
    }
    opt_ae.set_lr(s.lr);
    opt_ae.step();
    let settings = UpdateSettings {
        lr: s.lr,
        grad_clip: s.grad_clip,
    };
    // Staged again: the generator pass's changes to D's statistics stand, only the
    // discriminator pass's are undone if its loss is not finite.
    drop(disc_stats);
    let disc_stats = Staged::take(
        calc.discriminator()
            .filter(|d| d.updates_at(step))
            .map(|d| d.statistics())
            .unwrap_or_default(),
    );
    let update = {
        let _amp = autocast(s);
        calc.discriminator_step(&r, step, &settings)?
    };
    let mut losses = vec![g.log];
    match update {
        Update::NotDue => {}
        Update::Done(log) => losses.push(log),
        Update::NonFinite => {
            disc_stats.restore();
            return Ok(StepOutcome::DiscriminatorSkipped(StepLog::new(
                losses, x, out,
            )));
        }
    }
    Ok(StepOutcome::Done(StepLog::new(losses, x, out)))
}
