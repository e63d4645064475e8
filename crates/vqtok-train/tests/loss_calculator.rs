//! The seed's LossCalculator: path selection, the traditional path's discriminator
//! schedule and its checkpoint round trip. The model is a toy behind the `VqModel`
//! trait (the same code path as VQ-VAE; the real VQ-VAE lives on the models branch).

mod loss_support;

use std::collections::HashMap;

use loss_support::{ToyModel, taming_tiny};
use tch::{Device, Kind, Tensor};
use vqtok_config::Config;
use vqtok_train::loss::{LossCalculator, LossError, LossOptions, Split, TraditionalCalculator};
use vqtok_train::model::VqModel;
use vqtok_train::optim::Adam;

const VQVAE: &str = r#"{
  "model_type": "VqVae",
  "model_args": { "num_hiddens": 16, "num_residual_hiddens": 8, "embedding_dim": 4,
                  "num_embeddings": 16 },
  "train_args": {
    "lr": 1e-3, "disc_update_every": 2,
    "traditional_loss": { "recon_loss": "mse", "gan_weight": 0.5, "disc_start": 2,
                          "disc_num_layers": 2, "disc_ndf": 8 }
  }
}"#;

fn opts() -> LossOptions {
    LossOptions::new(Device::Cpu)
}

fn traditional(config: &Config, model: &ToyModel) -> TraditionalCalculator {
    match LossCalculator::new(config, model, &opts()).unwrap() {
        LossCalculator::Traditional(t) => t,
        LossCalculator::Taming { .. } => panic!("a VqVae config must take the traditional path"),
    }
}

fn disc_weights(t: &TraditionalCalculator) -> Vec<(String, Tensor)> {
    t.discriminator().unwrap().state()
}

fn same(a: &[(String, Tensor)], b: &[(String, Tensor)]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ka, va), (kb, vb))| ka == kb && va.equal(vb))
}

/// One training step as the trainer runs it; returns whether D was updated.
fn train_step(
    t: &mut TraditionalCalculator,
    model: &ToyModel,
    opt: &mut Adam,
    x: &Tensor,
    step: u64,
) -> bool {
    let out = model.forward_t(x, true).unwrap();
    let loss = t.compute_total_loss(x, &out.recon, &out.vq_loss, step, Split::Train);
    opt.zero_grad();
    loss.total_loss.backward();
    opt.step();
    t.step_discriminator(&loss, step).unwrap().is_some()
}

#[test]
fn discriminator_moves_exactly_on_its_steps() {
    tch::manual_seed(1);
    let config = Config::parse(VQVAE).unwrap();
    let model = ToyModel::new(Kind::Float, false);
    let mut t = traditional(&config, &model);
    let mut opt = Adam::new(model.trainable_vars(), Default::default());
    let x = Tensor::rand([2, 3, 16, 16], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    // disc_start 2, every 2 steps: D updates at 2, 4, 6.
    for step in 0..7u64 {
        let before = disc_weights(&t);
        let stepped = train_step(&mut t, &model, &mut opt, &x, step);
        let expected = step >= 2 && step % 2 == 0;
        assert_eq!(stepped, expected, "step {step}");
        assert_eq!(t.is_disc_step(step), expected);
        let moved = !same(&before, &disc_weights(&t));
        // Before disc_start D is not even run; on other steps the generator pass
        // (train-mode BN) may move running stats but never the weights.
        let weights_moved = before
            .iter()
            .zip(disc_weights(&t))
            .filter(|(k, _)| k.0.ends_with("weight") || k.0.ends_with("bias"))
            .any(|((_, a), (_, b))| !a.equal(&b));
        assert_eq!(
            weights_moved, expected,
            "step {step}: D weights moved = {weights_moved}"
        );
        if step < 2 {
            assert!(!moved, "step {step}: D must not run before disc_start");
        }
    }
}

#[test]
fn loss_dict_adds_up_and_the_gan_term_waits_for_disc_start() {
    let config = Config::parse(VQVAE).unwrap();
    let model = ToyModel::new(Kind::Float, false);
    let t = traditional(&config, &model);
    let x = Tensor::rand([2, 3, 16, 16], (Kind::Float, Device::Cpu));
    let out = model.forward_t(&x, true).unwrap();
    let early = t.compute_total_loss(&x, &out.recon, &out.vq_loss, 1, Split::Train);
    assert_eq!(early.g_loss.double_value(&[]), 0.0);
    let mse = (&x - &out.recon)
        .square()
        .mean(Kind::Float)
        .double_value(&[]);
    assert!((early.recon_loss.double_value(&[]) - mse).abs() < 1e-7);
    let late = t.compute_total_loss(&x, &out.recon, &out.vq_loss, 2, Split::Train);
    let parts = late.recon_loss.double_value(&[])
        + 0.5 * late.g_loss.double_value(&[])
        + late.vq_loss.double_value(&[]);
    // f32 sums of four terms of order 1: 1e-6.
    assert!((late.total_loss.double_value(&[]) - parts).abs() < 1e-6);
    assert_ne!(late.g_loss.double_value(&[]), 0.0);
    let keys: Vec<&str> = late.log.keys().collect();
    assert_eq!(
        keys,
        [
            "train/total_loss",
            "train/recon_loss",
            "train/p_loss",
            "train/g_loss",
            "train/vq_loss"
        ]
    );
}

#[test]
fn checkpoint_state_round_trips_weights_and_optimizer_moments() {
    tch::manual_seed(2);
    let config = Config::parse(VQVAE).unwrap();
    let model = ToyModel::new(Kind::Float, false);
    let mut a = traditional(&config, &model);
    let mut opt = Adam::new(model.trainable_vars(), Default::default());
    let x = Tensor::rand([2, 3, 16, 16], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    for step in 0..5 {
        train_step(&mut a, &model, &mut opt, &x, step);
    }
    let saved = a.get_checkpoint_state();
    assert!(
        saved
            .iter()
            .any(|(k, _)| k == "loss.discriminator.main.3.running_var")
    );
    assert!(
        saved
            .iter()
            .any(|(k, _)| k == "optimizer_disc.0.exp_avg_sq")
    );
    let step_of = |state: &[(String, Tensor)]| {
        state
            .iter()
            .find(|(k, _)| k == "optimizer_disc.0.step")
            .map(|(_, v)| v.int64_value(&[]))
    };
    assert_eq!(step_of(&saved), Some(2), "D stepped at 2 and 4");

    // A fresh calculator (different random D) restored from the state.
    let mut b = traditional(&config, &model);
    assert!(!same(&disc_weights(&a), &disc_weights(&b)));
    let named: HashMap<String, Tensor> = saved.into_iter().collect();
    b.load_checkpoint_state(&named, "ckpt").unwrap();
    assert!(same(&a.get_checkpoint_state(), &b.get_checkpoint_state()));

    // Same inputs from here: both discriminators take bit-identical steps, which
    // needs the Adam moments restored, not just the weights.
    let out = model.forward_t(&x, true).unwrap();
    for t in [&mut a, &mut b] {
        let loss = t.compute_total_loss(&x, &out.recon, &out.vq_loss, 6, Split::Train);
        assert!(t.step_discriminator(&loss, 6).unwrap().is_some());
    }
    assert!(same(&a.get_checkpoint_state(), &b.get_checkpoint_state()));

    // A state with a missing tensor names it.
    let mut partial = named;
    partial.remove("optimizer_disc.3.exp_avg");
    let err = b
        .load_checkpoint_state(&partial, "ckpt.safetensors")
        .unwrap_err()
        .to_string();
    assert!(err.contains("ckpt.safetensors"), "{err}");
}

#[test]
fn no_gan_means_no_discriminator_and_empty_state() {
    let mut config = Config::parse(VQVAE).unwrap();
    config.train.traditional_loss.gan_weight = 0.0;
    let model = ToyModel::new(Kind::Float, false);
    let mut t = traditional(&config, &model);
    assert!(t.discriminator().is_none());
    assert!(t.get_checkpoint_state().is_empty());
    let x = Tensor::rand([1, 3, 8, 8], (Kind::Float, Device::Cpu));
    let out = model.forward_t(&x, true).unwrap();
    let loss = t.compute_total_loss(&x, &out.recon, &out.vq_loss, 10, Split::Train);
    assert!(t.step_discriminator(&loss, 10).unwrap().is_none());
}

#[test]
fn taming_model_gets_the_taming_loss_and_two_optimizers() {
    let config = Config::from_path(taming_tiny("param.json")).unwrap();
    let model = ToyModel::new(Kind::Float, true);
    let mut o = opts();
    o.lpips_weights = Some(loss_support::lpips_weights());
    let calc = LossCalculator::new(&config, &model, &o).unwrap();
    assert!(calc.use_taming_loss());
    let (ae, disc) = calc.get_taming_optimizers(&model).unwrap();
    assert_eq!(ae.config().lr, 1e-3);
    assert_eq!(ae.config().betas, (0.5, 0.9));
    assert_eq!(ae.state_dict().len(), 3 * model.trainable_vars().len());
    // disc_num_layers 2: main.0 w+b, main.2 w, main.3 w+b, main.5 w, main.6 w+b,
    // main.8 w+b = 10 trainable tensors.
    assert_eq!(disc.state_dict().len(), 3 * 10);
}

#[test]
fn use_taming_loss_false_sends_a_taming_model_down_the_traditional_path() {
    let mut config = Config::from_path(taming_tiny("param.json")).unwrap();
    config.train.use_taming_loss = Some(false);
    let model = ToyModel::new(Kind::Float, true);
    let calc = LossCalculator::new(&config, &model, &opts()).unwrap();
    assert!(!calc.use_taming_loss());
    assert!(calc.get_taming_optimizers(&model).is_none());
}

#[test]
fn use_taming_loss_true_with_a_non_taming_model_is_a_config_error() {
    let mut config = Config::from_path(taming_tiny("param.json")).unwrap();
    config.train.use_taming_loss = Some(true);
    let model = ToyModel::new(Kind::Float, false);
    match LossCalculator::new(&config, &model, &opts()) {
        Err(LossError::Config { path, .. }) => assert_eq!(path, "train_args.use_taming_loss"),
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn perceptual_loss_without_weights_is_one_clear_error() {
    let mut config = Config::parse(VQVAE).unwrap();
    config.train.traditional_loss.perceptual_weight = 0.1;
    let model = ToyModel::new(Kind::Float, false);
    let mut o = opts();
    o.lpips_weights = Some("/nonexistent/lpips.safetensors".into());
    let err = LossCalculator::new(&config, &model, &o).unwrap_err();
    assert!(matches!(err, LossError::LpipsWeightsMissing(_)), "{err:?}");
}
