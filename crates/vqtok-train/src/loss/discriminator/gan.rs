//! The adversarial pieces shared by the taming loss and the traditional path:
//! the warm-up switch and the two discriminator losses of taming (spec §4.3–4.4).

use tch::{Kind, Tensor};
use vqtok_config::DiscLoss;

/// taming's `adopt_weight`: `weight` from `global_step >= threshold` on, 0 before.
pub fn adopt_weight(weight: f64, global_step: u64, threshold: u64) -> f64 {
    if global_step < threshold { 0.0 } else { weight }
}

/// Hinge loss: ½·(mean(relu(1 − real)) + mean(relu(1 + fake))). ≈1 when the
/// discriminator outputs ≈0 on both, i.e. learns nothing.
pub fn hinge_d_loss(logits_real: &Tensor, logits_fake: &Tensor) -> Tensor {
    let real = (1f64 - logits_real).relu().mean(logits_real.kind());
    let fake = (1f64 + logits_fake).relu().mean(logits_fake.kind());
    (real + fake) * 0.5
}

/// Non-saturating (vanilla) GAN loss: ½·(mean(softplus(−real)) + mean(softplus(fake))).
pub fn vanilla_d_loss(logits_real: &Tensor, logits_fake: &Tensor) -> Tensor {
    let real = (-logits_real).softplus().mean(logits_real.kind());
    let fake = logits_fake.softplus().mean(logits_fake.kind());
    (real + fake) * 0.5
}

/// The discriminator loss the config selects.
pub fn d_loss(kind: DiscLoss, logits_real: &Tensor, logits_fake: &Tensor) -> Tensor {
    match kind {
        DiscLoss::Hinge => hinge_d_loss(logits_real, logits_fake),
        DiscLoss::Vanilla => vanilla_d_loss(logits_real, logits_fake),
    }
}

/// The generator's adversarial loss, −mean(logits of the reconstruction), in `kind`.
pub fn g_loss(logits_fake: &Tensor, kind: Kind) -> Tensor {
    -logits_fake.to_kind(kind).mean(kind)
}
