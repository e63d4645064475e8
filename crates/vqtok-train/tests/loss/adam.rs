//! Adam against torch.optim.Adam (torch 2.11, float64, foreach=False): the values
//! below were printed by PyTorch for the same parameters and gradients.

use std::collections::HashMap;

use tch::{Kind, Tensor};
use vqtok_train::optim::{Adam, AdamConfig};

const GRADS: [[f64; 3]; 3] = [[0.5, -1.0, 0.0], [0.1, 0.2, -3.0], [-0.3, 0.0, 1e-3]];

fn param() -> Tensor {
    Tensor::from_slice(&[1.0f64, -2.0, 0.5]).set_requires_grad(true)
}

/// Adds `g` to p.grad (backward of ⟨p, g⟩; the optimizer's zero_grad clears it).
fn set_grad(p: &Tensor, g: &[f64; 3]) {
    (p * Tensor::from_slice(g)).sum(Kind::Double).backward();
}

fn values(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(&t.detach()).unwrap()
}

/// One optimizer step with `p`'s gradient set to `g`.
fn step(opt: &mut Adam, p: &Tensor, g: &[f64; 3]) {
    opt.zero_grad();
    set_grad(p, g);
    opt.step();
}

/// Three steps with `GRADS` from `param()`, checking the parameter against PyTorch's after
/// each; returns the optimizer.
fn steps_match_pytorch(cfg: AdamConfig, want: [[f64; 3]; 3]) -> Adam {
    let p = param();
    let mut opt = Adam::new(vec![p.shallow_clone()], cfg);
    for (g, w) in GRADS.iter().zip(want) {
        step(&mut opt, &p, g);
        assert_values(&p, &w);
    }
    opt
}

/// 1e-15 absolute: same float64 formula as PyTorch, at most a few ulps of rounding.
fn assert_values(got: &Tensor, want: &[f64]) {
    for (g, w) in values(got).iter().zip(want) {
        assert!((g - w).abs() < 1e-15, "{:?} vs {want:?}", values(got));
    }
}

#[test]
fn three_steps_match_pytorch() {
    let cfg = AdamConfig {
        lr: 0.1,
        ..Default::default()
    };
    let want = [
        [0.900000002, -1.900000001, 0.5],
        [0.8196959063846518, -1.8488973939904945, 0.5744136820059964],
        [0.7986246117635082, -1.8093949307841701, 0.6319143661705848],
    ];
    let opt = steps_match_pytorch(cfg, want);
    let state: HashMap<String, Tensor> = opt.state_dict().into_iter().collect();
    assert_eq!(state["0.step"].int64_value(&[]), 3);
    assert_values(
        &state["0.exp_avg"],
        &[0.019499999999999997, -0.06299999999999999, -0.2699],
    );
    assert_values(
        &state["0.exp_avg_sq"],
        &[
            0.00034949025000000035,
            0.001037961000000001,
            0.008991001000000007,
        ],
    );
}

#[test]
fn weight_decay_and_taming_betas_match_pytorch() {
    let cfg = AdamConfig {
        lr: 0.01,
        betas: (0.5, 0.9),
        eps: 1e-8,
        weight_decay: 0.1,
    };
    let want = [
        [0.9900000001666667, -1.9900000000833333, 0.4900000019999996],
        [0.9823954497655476, -1.9851648529939236, 0.49911034135157306],
        [0.9816551092278363, -1.980898557587379, 0.50385374748108],
    ];
    steps_match_pytorch(cfg, want);
}

/// A parameter that gets no gradient does not move. On the flat path (one dtype) it has a
/// zero gradient, as after PyTorch's `zero_grad(set_to_none=False)`: Adam of zero moments
/// is zero, and its step count advances with the others'. On the per-parameter path
/// (mixed dtypes) it has none and is skipped, as PyTorch skips a `None` gradient.
#[test]
fn parameters_without_gradient_do_not_move() {
    let (a, b) = (param(), param());
    let mut opt = Adam::new(
        vec![a.shallow_clone(), b.shallow_clone()],
        AdamConfig::default(),
    );
    set_grad(&a, &GRADS[0]);
    opt.step();
    assert!(!a.equal(&param()));
    assert!(b.equal(&param()), "b has no gradient and must not move");
    let state: HashMap<String, Tensor> = opt.state_dict().into_iter().collect();
    assert_eq!(state["0.step"].int64_value(&[]), 1);
    assert_eq!(state["1.step"].int64_value(&[]), 1);

    let (a, b) = (
        param(),
        param()
            .to_kind(Kind::Float)
            .detach()
            .set_requires_grad(true),
    );
    let mut opt = Adam::new(
        vec![a.shallow_clone(), b.shallow_clone()],
        AdamConfig::default(),
    );
    set_grad(&a, &GRADS[0]);
    opt.step();
    assert!(b.equal(&param().to_kind(Kind::Float)), "b must not move");
    let state: HashMap<String, Tensor> = opt.state_dict().into_iter().collect();
    assert_eq!(state["0.step"].int64_value(&[]), 1);
    assert_eq!(state["1.step"].int64_value(&[]), 0);
}

#[test]
fn state_round_trips_and_the_resumed_optimizer_continues_identically() {
    let cfg = AdamConfig {
        lr: 0.05,
        betas: (0.5, 0.9),
        ..Default::default()
    };
    let p = param();
    let mut opt = Adam::new(vec![p.shallow_clone()], cfg);
    for g in &GRADS[..2] {
        step(&mut opt, &p, g);
    }
    let saved: HashMap<String, Tensor> = opt.state_dict().into_iter().collect();

    // A fresh optimizer on a copy of the parameter, loaded from the saved state.
    let q = p.detach().copy().set_requires_grad(true);
    let mut resumed = Adam::new(vec![q.shallow_clone()], cfg);
    resumed.load_state_dict(&saved).unwrap();
    for (o, param) in [(&mut opt, &p), (&mut resumed, &q)] {
        step(o, param, &GRADS[2]);
    }
    // Same state + same gradient → bit-identical parameters.
    assert!(p.equal(&q));
    // The loaded state was copied: the step above did not change `saved`.
    assert_eq!(saved["0.step"].int64_value(&[]), 2);

    // Wrong shape or missing keys are rejected with the key.
    let mut bad: HashMap<String, Tensor> = saved
        .iter()
        .map(|(k, v)| (k.clone(), v.shallow_clone()))
        .collect();
    bad.insert(
        "0.exp_avg".into(),
        Tensor::zeros([4], (Kind::Double, tch::Device::Cpu)),
    );
    let err = resumed.load_state_dict(&bad).unwrap_err().to_string();
    assert!(err.contains("0.exp_avg") && err.contains("[4]"), "{err}");
    let mut missing = saved;
    missing.remove("0.step");
    assert!(resumed.load_state_dict(&missing).is_err());
}
