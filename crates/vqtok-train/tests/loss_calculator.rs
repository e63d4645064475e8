//! The seed's LossCalculator: path selection, the traditional path on a real VQ-VAE
//! (the discriminator moves exactly on its steps) and its checkpoint round trip.

mod loss_support;

use std::collections::HashMap;

use loss_support::{lpips_weights, taming_tiny};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use vqtok_config::Config;
use vqtok_train::loss::{LossCalculator, LossError, LossOptions, Split, TraditionalCalculator};
use vqtok_train::model::{VqModel, create_model};
use vqtok_train::optim::{Adam, AdamConfig};

const VQVAE: &str = r#"{
  "model_type": "VqVae",
  "model_args": { "num_hiddens": 16, "num_residual_layers": 1, "num_residual_hiddens": 8,
                  "embedding_dim": 4, "num_embeddings": 16 },
  "train_args": {
    "lr": 1e-3, "disc_update_every": 2,
    "traditional_loss": { "recon_loss": "mse", "gan_weight": 0.5, "disc_start": 2,
                          "disc_num_layers": 2, "disc_ndf": 8 }
  }
}"#;

fn opts() -> LossOptions {
    LossOptions::new(Device::Cpu)
}

/// The model a config describes, in its own var store (kept alive with it).
fn build(config: &Config) -> (VarStore, Box<dyn VqModel>) {
    let vs = VarStore::new(Device::Cpu);
    let model = create_model(&config.model, &vs.root()).unwrap();
    (vs, model)
}

fn traditional(config: &Config, model: &dyn VqModel) -> TraditionalCalculator {
    match LossCalculator::new(config, model, &opts()).unwrap() {
        LossCalculator::Traditional(t) => t,
        LossCalculator::Taming { .. } => panic!("a VqVae config must take the traditional path"),
    }
}

fn disc_state(t: &TraditionalCalculator) -> Vec<(String, Tensor)> {
    t.discriminator().unwrap().state()
}

fn same(a: &[(String, Tensor)], b: &[(String, Tensor)]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ka, va), (kb, vb))| ka == kb && va.equal(vb))
}

fn batch() -> Tensor {
    Tensor::rand([2, 3, 16, 16], (Kind::Float, Device::Cpu)) * 2.0 - 1.0
}

/// One training step as the trainer runs it; returns whether D was updated.
fn train_step(
    t: &mut TraditionalCalculator,
    model: &dyn VqModel,
    opt: &mut Adam,
    x: &Tensor,
    step: u64,
) -> bool {
    let out = model.forward_t(x, true).unwrap();
    let loss = t
        .compute_total_loss(
            x,
            &out.recon,
            &out.vq_loss,
            &model.last_layer(),
            step,
            Split::Train,
        )
        .unwrap();
    opt.zero_grad();
    loss.backward_loss.as_ref().unwrap().backward();
    opt.step();
    t.step_discriminator(&loss, step).unwrap().is_some()
}

#[test]
fn discriminator_moves_exactly_on_its_steps() {
    tch::manual_seed(1);
    let config = Config::parse(VQVAE).unwrap();
    let (_vs, model) = build(&config);
    let mut t = traditional(&config, model.as_ref());
    let mut opt = Adam::new(
        model.trainable_vars(),
        AdamConfig::from_train_args(&config.train),
    );
    let x = batch();
    // disc_start 2, every 2 steps: D updates at 2, 4, 6.
    for step in 0..7u64 {
        let before = disc_state(&t);
        let stepped = train_step(&mut t, model.as_ref(), &mut opt, &x, step);
        let expected = step >= 2 && step % 2 == 0;
        assert_eq!(stepped, expected, "step {step}");
        assert_eq!(t.is_disc_step(step), expected);
        let after = disc_state(&t);
        // Parameters move only on D steps. From disc_start on the generator pass runs
        // D in train mode, so BatchNorm running stats move on every step; before it D
        // is not run at all.
        let is_param = |k: &str| k.ends_with("weight") || k.ends_with("bias");
        let params_moved = before
            .iter()
            .zip(&after)
            .filter(|((k, _), _)| is_param(k))
            .any(|((_, a), (_, b))| !a.equal(b));
        assert_eq!(params_moved, expected, "step {step}: D parameters moved");
        if step < 2 {
            assert!(
                same(&before, &after),
                "step {step}: D ran before disc_start"
            );
        }
    }
}

#[test]
fn loss_dict_adds_up_and_the_gan_term_waits_for_disc_start() {
    let config = Config::parse(VQVAE).unwrap();
    let (_vs, model) = build(&config);
    let t = traditional(&config, model.as_ref());
    let x = batch();
    let out = model.forward_t(&x, true).unwrap();
    let last = model.last_layer();
    let early = t
        .compute_total_loss(&x, &out.recon, &out.vq_loss, &last, 1, Split::Train)
        .unwrap();
    assert_eq!(early.g_loss.double_value(&[]), 0.0);
    assert_eq!(early.d_weight.double_value(&[]), 0.0);
    let mse = (&x - &out.recon)
        .square()
        .mean(Kind::Float)
        .double_value(&[]);
    // f32 mean over 1536 values computed the same way: 1e-7.
    assert!((early.recon_loss.double_value(&[]) - mse).abs() < 1e-7);
    let late = t
        .compute_total_loss(&x, &out.recon, &out.vq_loss, &last, 2, Split::Train)
        .unwrap();
    let d_weight = late.d_weight.double_value(&[]);
    assert!(d_weight > 0.0);
    let parts = late.recon_loss.double_value(&[])
        + d_weight * late.g_loss.double_value(&[])
        + late.vq_loss.double_value(&[]);
    // f32 sum of three terms of order 1: 1e-6.
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
            "train/d_weight",
            "train/vq_loss"
        ]
    );
}

#[test]
fn the_gan_term_is_balanced_by_taming_s_adaptive_weight() {
    // In f64 so the two ways of computing the gradients agree to rounding.
    let config = Config::parse(VQVAE).unwrap();
    let mut vs = VarStore::new(Device::Cpu);
    let model = create_model(&config.model, &vs.root()).unwrap();
    vs.double();
    let mut o = opts();
    o.kind = Kind::Double;
    let t = match LossCalculator::new(&config, model.as_ref(), &o).unwrap() {
        LossCalculator::Traditional(t) => t,
        LossCalculator::Taming { .. } => unreachable!(),
    };
    let x = batch().to_kind(Kind::Double);
    let out = model.forward_t(&x, true).unwrap();
    let last = model.last_layer();
    let loss = t
        .compute_total_loss(&x, &out.recon, &out.vq_loss, &last, 2, Split::Train)
        .unwrap();
    // taming's formula with plain autograd: ‖∂nll/∂W‖ / (‖∂g/∂W‖ + 1e-4) · gan_weight.
    let nll = (&x - &out.recon).square().mean(Kind::Double);
    let logits = t.discriminator().unwrap().logits_frozen(&out.recon, true);
    let g = -logits.mean(Kind::Double);
    let grad = |l: &Tensor| Tensor::run_backward(&[l], &[&last], true, false).remove(0);
    let want = grad(&nll).norm().double_value(&[]) / (grad(&g).norm().double_value(&[]) + 1e-4)
        * config.train.traditional_loss.gan_weight;
    let got = loss.d_weight.double_value(&[]);
    // f64, the same quantities through two graphs: 1e-9 relative.
    assert!((got - want).abs() <= 1e-9 * want, "{got} vs {want}");

    // The surrogate's gradients are those of recon + d_weight·g + vq.
    let params = model.trainable_vars();
    let direct = &nll + &g * got + out.vq_loss.mean(Kind::Double);
    let want_grads = Tensor::run_backward(&[&direct], &params, true, false);
    let got_grads = Tensor::run_backward(
        &[loss.backward_loss.as_ref().unwrap()],
        &params,
        true,
        false,
    );
    for (a, b) in want_grads.iter().zip(&got_grads) {
        let scale = a.abs().max().double_value(&[]).max(1e-12);
        let diff = (a - b).abs().max().double_value(&[]);
        assert!(
            diff <= 1e-9 * scale,
            "gradient differs by {diff} (scale {scale})"
        );
    }
}

#[test]
fn checkpoint_state_round_trips_weights_and_optimizer_moments() {
    tch::manual_seed(2);
    let config = Config::parse(VQVAE).unwrap();
    let (_vs, model) = build(&config);
    let mut a = traditional(&config, model.as_ref());
    let mut opt = Adam::new(
        model.trainable_vars(),
        AdamConfig::from_train_args(&config.train),
    );
    let x = batch();
    for step in 0..5 {
        train_step(&mut a, model.as_ref(), &mut opt, &x, step);
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
    let mut b = traditional(&config, model.as_ref());
    assert!(!same(&disc_state(&a), &disc_state(&b)));
    let named: HashMap<String, Tensor> = saved.into_iter().collect();
    b.load_checkpoint_state(&named, "ckpt").unwrap();
    assert!(same(&a.get_checkpoint_state(), &b.get_checkpoint_state()));

    // Same inputs from here: both discriminators take bit-identical steps, which
    // needs the Adam moments restored, not just the weights.
    let out = model.forward_t(&x, true).unwrap();
    for t in [&mut a, &mut b] {
        let loss = t
            .compute_total_loss(
                &x,
                &out.recon,
                &out.vq_loss,
                &model.last_layer(),
                6,
                Split::Train,
            )
            .unwrap();
        assert!(t.step_discriminator(&loss, 6).unwrap().is_some());
    }
    assert!(same(&a.get_checkpoint_state(), &b.get_checkpoint_state()));

    // A state with a missing tensor names the checkpoint.
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
    let (_vs, model) = build(&config);
    let mut t = traditional(&config, model.as_ref());
    assert!(t.discriminator().is_none());
    assert!(t.get_checkpoint_state().is_empty());
    let x = batch();
    let out = model.forward_t(&x, true).unwrap();
    let loss = t
        .compute_total_loss(
            &x,
            &out.recon,
            &out.vq_loss,
            &model.last_layer(),
            10,
            Split::Train,
        )
        .unwrap();
    assert!(t.step_discriminator(&loss, 10).unwrap().is_none());
}

#[test]
fn taming_model_gets_the_taming_loss_and_two_optimizers() {
    let config = Config::from_path(taming_tiny("param.json")).unwrap();
    let (_vs, model) = build(&config);
    let mut o = opts();
    o.lpips_weights = Some(lpips_weights());
    let calc = LossCalculator::new(&config, model.as_ref(), &o).unwrap();
    assert!(calc.use_taming_loss());
    let (ae, disc) = calc.get_taming_optimizers(model.as_ref()).unwrap();
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
    let (_vs, model) = build(&config);
    let calc = LossCalculator::new(&config, model.as_ref(), &opts()).unwrap();
    assert!(!calc.use_taming_loss());
    assert!(calc.get_taming_optimizers(model.as_ref()).is_none());
}

#[test]
fn use_taming_loss_true_with_a_non_taming_model_is_a_config_error() {
    // Config validation already rejects this in a file; the calculator checks the
    // model it is given as well.
    let mut config = Config::parse(VQVAE).unwrap();
    config.train.use_taming_loss = Some(true);
    let (_vs, model) = build(&config);
    match LossCalculator::new(&config, model.as_ref(), &opts()) {
        Err(LossError::Config { path, .. }) => assert_eq!(path, "train_args.use_taming_loss"),
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn perceptual_loss_without_weights_is_one_clear_error() {
    let mut config = Config::parse(VQVAE).unwrap();
    config.train.traditional_loss.perceptual_weight = 0.1;
    let (_vs, model) = build(&config);
    let mut o = opts();
    o.lpips_weights = Some("/nonexistent/lpips.safetensors".into());
    let err = LossCalculator::new(&config, model.as_ref(), &o).unwrap_err();
    assert!(matches!(err, LossError::LpipsWeightsMissing(_)), "{err:?}");
}
