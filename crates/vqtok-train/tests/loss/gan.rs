//! adopt_weight boundaries and the two discriminator losses on hand-computed values.

use tch::{Kind, Tensor};
use vqtok_config::DiscLoss;
use vqtok_train::loss::{adopt_weight, d_loss, g_loss, hinge_d_loss, vanilla_d_loss};

fn t(v: &[f64]) -> Tensor {
    Tensor::from_slice(v)
}

fn val(x: &Tensor) -> f64 {
    x.double_value(&[])
}

#[test]
fn adopt_weight_switches_on_at_disc_start_inclusive() {
    assert_eq!(adopt_weight(0.7, 29_999, 30_000), 0.0);
    assert_eq!(adopt_weight(0.7, 30_000, 30_000), 0.7);
    assert_eq!(adopt_weight(0.7, 30_001, 30_000), 0.7);
    assert_eq!(adopt_weight(1.0, 0, 0), 1.0);
}

#[test]
fn hinge_and_vanilla_match_hand_computed_values() {
    let real = t(&[0.5, -2.0]);
    let fake = t(&[-0.5, 3.0]);
    // hinge: real relu(1−r) = [0.5, 3] → 1.75; fake relu(1+f) = [0.5, 4] → 2.25;
    // ½·(1.75 + 2.25) = 2. Exact in binary floating point.
    assert_eq!(val(&hinge_d_loss(&real, &fake)), 2.0);
    assert_eq!(val(&d_loss(DiscLoss::Hinge, &real, &fake)), 2.0);
    // vanilla: softplus(x) = ln(1 + eˣ), computed here in plain f64 (1e-12: f64 libm
    // vs libtorch's softplus on the same doubles).
    let sp = |x: f64| x.exp().ln_1p();
    let want = 0.5 * ((sp(-0.5) + sp(2.0)) / 2.0 + (sp(-0.5) + sp(3.0)) / 2.0);
    assert!((want - 1.530_917).abs() < 1e-6);
    assert!((val(&vanilla_d_loss(&real, &fake)) - want).abs() < 1e-12);
    assert!((val(&d_loss(DiscLoss::Vanilla, &real, &fake)) - want).abs() < 1e-12);
}

#[test]
fn hinge_is_one_when_the_discriminator_outputs_zero() {
    let zeros = Tensor::zeros([2, 1, 4, 4], (Kind::Double, tch::Device::Cpu));
    assert_eq!(val(&hinge_d_loss(&zeros, &zeros)), 1.0);
}

#[test]
fn generator_loss_is_minus_the_mean_logit() {
    assert_eq!(val(&g_loss(&t(&[1.0, -3.0, 0.5, 0.5]), Kind::Double)), 0.25);
}
