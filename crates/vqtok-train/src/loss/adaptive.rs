//! taming's adaptive GAN weight, shared by both loss paths:
//! `d_weight = clamp(‖∂nll/∂W‖ / (‖∂g/∂W‖ + 1e-4), 0, 1e4) · scale`, W = the decoder's
//! last conv weight. It caps the adversarial gradient reaching the decoder at `scale`
//! times the reconstruction gradient, whatever the discriminator's logit scale, which is
//! what keeps a young autoencoder from being pulled apart when the discriminator starts
//! (issue 12: with a fixed GAN weight the traditional path lost up to 8 dB on some seeds).
//!
//! # Without a second backward through LPIPS and D
//! taming computes both norms with two `autograd.grad` calls that each run back through
//! LPIPS or D, then `total_loss.backward()` runs through both again. Here the
//! reconstruction x̂ is the bottleneck: with `s_nll = ∂nll/∂x̂` and `s_g = ∂g/∂x̂` (one
//! backward through each, both stopping at x̂),
//! * `∂nll/∂W = ∂⟨x̂, s_nll⟩/∂W` and `∂g/∂W = ∂⟨x̂, s_g⟩/∂W`, which only backpropagate
//!   through the last conv;
//! * the autoencoder gradient of `nll + d_weight·factor·g + extra` equals that of the
//!   surrogate `⟨x̂, sg(s_nll + d_weight·factor·s_g)⟩ + extra`, which is what the trainer
//!   calls `backward` on (its value is not the loss).

use tch::Tensor;

use super::error::LossError;

/// Added to ‖∂g/∂W‖ (taming's value; the paper says 1e-6).
const EPS: f64 = 1e-4;
/// Upper clamp of the weight before `scale`.
const MAX: f64 = 1e4;

/// The balanced generator objective of one step.
#[derive(Debug)]
pub struct Balanced {
    /// The adaptive weight times `scale`, detached (what taming logs as `d_weight`).
    pub d_weight: Tensor,
    /// The surrogate to call `backward` on (see the module docs).
    pub backward: Tensor,
}

/// Balances `g` (adversarial loss) against `nll` (reconstruction loss) at `last_layer`;
/// both must have been computed from `xrec` with a graph. `extra` (the codebook term,
/// already weighted) is added to the surrogate as is. `factor` is the warm-up factor
/// (0 before the discriminator starts), applied on top of the weight.
pub fn balance(
    nll: &Tensor,
    g: &Tensor,
    xrec: &Tensor,
    last_layer: &Tensor,
    scale: f64,
    factor: f64,
    extra: &Tensor,
) -> Result<Balanced, LossError> {
    let kind = nll.kind();
    // Gradients at x̂: the only backward through LPIPS and through D. Their graphs are
    // not needed afterwards; the autoencoder's graph is not traversed.
    let seed_nll = first(Tensor::f_run_backward(&[nll], &[xrec], false, false)?);
    let seed_g = first(Tensor::f_run_backward(&[g], &[xrec], false, false)?);
    // Through the last layer only, keeping the autoencoder graph for the surrogate.
    let at_last = |seed: &Tensor| -> Result<Tensor, LossError> {
        let linear = (xrec * seed).sum(kind);
        let grad = first(Tensor::f_run_backward(
            &[linear],
            &[last_layer],
            true,
            false,
        )?);
        if grad.defined() {
            Ok(grad)
        } else {
            Err(LossError::LastLayerUnused)
        }
    };
    let grad_nll = at_last(&seed_nll)?;
    let grad_g = at_last(&seed_g)?;
    let d_weight = (grad_nll.norm() / (grad_g.norm() + EPS))
        .clamp(0.0, MAX)
        .detach()
        .to_kind(kind)
        * scale;
    let seed = seed_nll + &d_weight * factor * seed_g;
    let backward = (xrec * seed).sum(kind) + extra;
    Ok(Balanced { d_weight, backward })
}

/// The single gradient of a one-input `run_backward`.
fn first(mut grads: Vec<Tensor>) -> Tensor {
    grads.swap_remove(0)
}
