//! One optimisation step on each path, exactly as the trainer runs it (the fixture
//! test drives these same functions).

use tch::{Device, Kind, Tensor};

use crate::autocast::Autocast;
use crate::loss::{LossLog, Split, TraditionalCalculator, VqLpipsWithDiscriminator};
use crate::model::{ModelOutput, VqModel};
use crate::optim::Adam;
use crate::train::error::TrainError;

/// Per-step settings taken from `train_args`.
#[derive(Debug, Clone, Copy)]
pub struct StepSettings {
    pub lr: f64,
    pub disc_update_every: u64,
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

fn autocast(s: &StepSettings) -> Option<Autocast> {
    s.amp.map(|d| Autocast::enabled(d, Kind::BFloat16))
}

fn update(opt: &mut Adam, loss: &Tensor, s: &StepSettings) -> Result<(), TrainError> {
    opt.zero_grad();
    loss.f_backward()?;
    if let Some(c) = s.grad_clip {
        opt.clip_grad_norm(c);
    }
    opt.set_lr(s.lr);
    opt.step();
    Ok(())
}

/// Taming path at global step `step`: generator loss (optimizer 0) → opt_ae; then,
/// when `step % disc_update_every == 0`, the discriminator loss (optimizer 1) on the
/// same reconstruction, detached → opt_disc. `None` when a loss was not finite: the
/// update it belonged to was skipped.
pub fn taming_step(
    model: &dyn VqModel,
    loss: &VqLpipsWithDiscriminator,
    opt_ae: &mut Adam,
    opt_disc: &mut Adam,
    x: &Tensor,
    step: u64,
    s: &StepSettings,
) -> Result<Option<StepLog>, TrainError> {
    let (out, g) = {
        let _amp = autocast(s);
        let out = model.forward_t(x, true)?;
        let g = loss.generator_step(
            &out.vq_loss,
            x,
            &out.recon,
            step,
            &model.last_layer(),
            Split::Train,
        )?;
        (out, g)
    };
    if !g.total_loss.double_value(&[]).is_finite() {
        return Ok(None);
    }
    let backward = g.backward_loss.as_ref().ok_or_else(|| {
        TrainError::Usage("the generator pass built no graph (is autograd disabled?)".into())
    })?;
    update(opt_ae, backward, s)?;
    let mut losses = vec![g.log];
    if step.is_multiple_of(s.disc_update_every) {
        let d = {
            let _amp = autocast(s);
            loss.discriminator_step(x, &out.recon, step, Split::Train)
        };
        if !d.loss.double_value(&[]).is_finite() {
            return Ok(None);
        }
        update(opt_disc, &d.loss, s)?;
        losses.push(d.log);
    }
    Ok(Some(StepLog::new(losses, x, out)))
}

/// Traditional path: one optimizer over the model, then the calculator's own
/// discriminator update (on its schedule).
pub fn traditional_step(
    model: &dyn VqModel,
    calc: &mut TraditionalCalculator,
    opt: &mut Adam,
    x: &Tensor,
    step: u64,
    s: &StepSettings,
) -> Result<Option<StepLog>, TrainError> {
    let (out, ld) = {
        let _amp = autocast(s);
        let out = model.forward_t(x, true)?;
        let ld = calc.compute_total_loss(
            x,
            &out.recon,
            &out.vq_loss,
            &model.last_layer(),
            step,
            Split::Train,
        )?;
        (out, ld)
    };
    if !ld.total_loss.double_value(&[]).is_finite() {
        return Ok(None);
    }
    let backward = ld.backward_loss.as_ref().ok_or_else(|| {
        TrainError::Usage("the generator pass built no graph (is autograd disabled?)".into())
    })?;
    update(opt, backward, s)?;
    let disc_log = {
        let _amp = autocast(s);
        calc.step_discriminator(&ld, step)?
    };
    let mut losses = vec![ld.log];
    losses.extend(disc_log);
    Ok(Some(StepLog::new(losses, x, out)))
}
