//! The seed's LossCalculator: path selection, one discriminator owner on both paths (it
//! moves exactly on its steps, with its own Adam), the traditional path's balanced GAN
//! term, and the discriminator's checkpoint round trip.

use std::collections::HashMap;
use std::path::Path;
use std::sync::MutexGuard;

use crate::support::{lpips_weights, reconstruction, taming_tiny, var_copies};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use vqtok_config::Config;
use vqtok_train::loss::{
    GeneratorOutput, LossCalculator, LossError, LossOptions, Split, Update, UpdateSettings,
};
use vqtok_train::model::{ModelOutput, VqModel, create_model};
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

const SETTINGS: UpdateSettings = UpdateSettings {
    lr: 1e-3,
    grad_clip: None,
};

fn opts() -> LossOptions {
    LossOptions::new(Device::Cpu)
}

/// The model a config describes, in its own var store (kept alive with it).
fn build(config: &Config) -> (VarStore, Box<dyn VqModel>) {
    let vs = VarStore::new(Device::Cpu);
    let model = create_model(&config.model, &vs.root()).unwrap();
    (vs, model)
}

/// Copies of every discriminator variable, sorted by name.
fn disc_state(c: &LossCalculator) -> Vec<(String, Tensor)> {
    var_copies(c.discriminator().unwrap().var_store())
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

fn generator(
    c: &LossCalculator,
    model: &dyn VqModel,
    x: &Tensor,
    out: &ModelOutput,
    step: u64,
) -> GeneratorOutput {
    let last = model.last_layer();
    c.generator_step(&reconstruction(x, out, &last), step, Split::Train)
        .unwrap()
}

/// The VQVAE config's model, its calculator and its Adam as the trainer sets them up, and
/// a batch, all drawn with libtorch's generator seeded and held.
struct Trainer {
    _rng: MutexGuard<'static, ()>,
    config: Config,
    _vs: VarStore,
    model: Box<dyn VqModel>,
    calc: LossCalculator,
    opt: Adam,
    x: Tensor,
}

impl Trainer {
    fn seeded(seed: i64) -> Trainer {
        let _rng = crate::support::seeded(seed);
        let config = Config::parse(VQVAE).unwrap();
        let (_vs, model) = build(&config);
        let calc = LossCalculator::new(&config, &opts()).unwrap();
        let opt = Adam::new(
            model.trainable_vars(),
            AdamConfig::from_train_args(&config.train),
        );
        let x = batch();
        Trainer {
            _rng,
            config,
            _vs,
            model,
            calc,
            opt,
            x,
        }
    }

    /// One training step as the trainer runs it; returns what the discriminator did.
    fn step(&mut self, step: u64) -> Update {
        let (c, model, x) = (&mut self.calc, self.model.as_ref(), &self.x);
        let out = model.forward_t(x, true).unwrap();
        let g = generator(c, model, x, &out, step);
        self.opt.zero_grad();
        g.backward_loss.as_ref().unwrap().backward();
        self.opt.step();
        let last = model.last_layer();
        c.discriminator_step(&reconstruction(x, &out, &last), step, &SETTINGS, &ok())
            .unwrap()
    }
}

#[test]
fn discriminator_moves_exactly_on_its_steps() {
    let mut t = Trainer::seeded(1);
    // disc_start 2, every 2 steps: D updates at 2, 4, 6.
    for step in 0..7u64 {
        let before = disc_state(&t.calc);
        let update = t.step(step);
        let expected = step >= 2 && step % 2 == 0;
        assert_eq!(
            matches!(update, Update::Done { .. }),
            expected,
            "step {step}"
        );
        assert_eq!(t.calc.discriminator().unwrap().updates_at(step), expected);
        let after = disc_state(&t.calc);
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
fn the_loss_adds_up_and_the_gan_term_waits_for_disc_start() {
    let config = Config::parse(VQVAE).unwrap();
    let (_vs, model) = build(&config);
    let c = LossCalculator::new(&config, &opts()).unwrap();
    assert!(!c.use_taming_loss());
    let x = batch();
    let out = model.forward_t(&x, true).unwrap();
    let value = |g: &GeneratorOutput, k: &str| g.log.get(k).unwrap().double_value(&[]);
    let early = generator(&c, model.as_ref(), &x, &out, 1);
    assert_eq!(value(&early, "train/g_loss"), 0.0);
    assert_eq!(value(&early, "train/d_weight"), 0.0);
    let mse = (&x - &out.recon)
        .square()
        .mean(Kind::Float)
        .double_value(&[]);
    // f32 mean over 1536 values computed the same way: 1e-7.
    assert!((value(&early, "train/rec_loss") - mse).abs() < 1e-7);
    let late = generator(&c, model.as_ref(), &x, &out, 2);
    let d_weight = value(&late, "train/d_weight");
    assert!(d_weight > 0.0);
    let parts = value(&late, "train/rec_loss")
        + d_weight * value(&late, "train/g_loss")
        + value(&late, "train/vq_loss");
    // f32 sum of three terms of order 1: 1e-6.
    assert!((late.total_loss.double_value(&[]) - parts).abs() < 1e-6);
    assert_ne!(value(&late, "train/g_loss"), 0.0);
    let keys: Vec<&str> = late.log.keys().collect();
    assert_eq!(
        keys,
        [
            "train/total_loss",
            "train/rec_loss",
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
    let c = LossCalculator::new(&config, &o).unwrap();
    let x = batch().to_kind(Kind::Double);
    let out = model.forward_t(&x, true).unwrap();
    let last = model.last_layer();
    let loss = generator(&c, model.as_ref(), &x, &out, 2);
    // taming's formula with plain autograd: ‖∂nll/∂W‖ / (‖∂g/∂W‖ + 1e-4) · gan_weight.
    let nll = (&x - &out.recon).square().mean(Kind::Double);
    let logits = c.discriminator().unwrap().logits_frozen(&out.recon, true);
    let g = -logits.mean(Kind::Double);
    let grad = |l: &Tensor| Tensor::run_backward(&[l], &[&last], true, false).remove(0);
    let want = grad(&nll).norm().double_value(&[]) / (grad(&g).norm().double_value(&[]) + 1e-4)
        * config.train.traditional_loss.gan_weight;
    let got = loss.log.get("train/d_weight").unwrap().double_value(&[]);
    // f64, the same quantities through two graphs: 1e-9 relative.
    assert!((got - want).abs() <= 1e-9 * want, "{got} vs {want}");

    // The surrogate's gradients are those of rec + d_weight·g + vq.
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
    let mut t = Trainer::seeded(2);
    for step in 0..5 {
        t.step(step);
    }
    let state = t.calc.checkpoint_state().unwrap();
    let weights: HashMap<String, Tensor> = var_copies(state.weights).into_iter().collect();
    assert!(weights.contains_key("loss.discriminator.main.3.running_var"));
    let optimizer: HashMap<String, Tensor> = state.optimizer.into_iter().collect();
    assert_eq!(
        optimizer["0.step"].int64_value(&[]),
        2,
        "D stepped at 2 and 4"
    );

    // A fresh calculator (different random D) restored from the state.
    let mut b = LossCalculator::new(&t.config, &opts()).unwrap();
    assert!(!same(&disc_state(&t.calc), &disc_state(&b)));
    let source = Path::new("ckpt");
    b.load_checkpoint_state(&weights, Some(&optimizer), source)
        .unwrap();
    assert!(same(&disc_state(&t.calc), &disc_state(&b)));

    // Same inputs from here: both discriminators take bit-identical steps, which
    // needs the Adam moments restored, not just the weights.
    let out = t.model.forward_t(&t.x, true).unwrap();
    let last = t.model.last_layer();
    let r = reconstruction(&t.x, &out, &last);
    for c in [&mut t.calc, &mut b] {
        assert!(matches!(
            c.discriminator_step(&r, 6, &SETTINGS, &ok()).unwrap(),
            Update::Done { .. }
        ));
    }
    assert!(same(&disc_state(&t.calc), &disc_state(&b)));

    // A state with a missing tensor names the checkpoint.
    let mut partial = optimizer;
    partial.remove("3.exp_avg");
    let err = b
        .load_checkpoint_state(&weights, Some(&partial), Path::new("ckpt.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("ckpt.safetensors"), "{err}");
}

#[test]
fn no_gan_means_no_discriminator_and_no_state() {
    let mut config = Config::parse(VQVAE).unwrap();
    config.train.traditional_loss.gan_weight = 0.0;
    let (_vs, model) = build(&config);
    let mut c = LossCalculator::new(&config, &opts()).unwrap();
    assert!(c.discriminator().is_none());
    assert!(c.checkpoint_state().is_none());
    let x = batch();
    let out = model.forward_t(&x, true).unwrap();
    let last = model.last_layer();
    let r = reconstruction(&x, &out, &last);
    assert!(matches!(
        c.discriminator_step(&r, 10, &SETTINGS, &ok()).unwrap(),
        Update::NotDue
    ));
}

#[test]
fn taming_model_gets_the_taming_loss_and_a_discriminator_with_its_own_adam() {
    let config = Config::from_path(taming_tiny("param.json")).unwrap();
    let mut o = opts();
    o.lpips_weights = Some(lpips_weights());
    let c = LossCalculator::new(&config, &o).unwrap();
    assert!(c.use_taming_loss());
    let d = c.discriminator().unwrap();
    assert_eq!(d.spec().adam.lr, 1e-3);
    assert_eq!(d.spec().adam.betas, (0.5, 0.9));
    // disc_num_layers 2: main.0 w+b, main.2 w, main.3 w+b, main.5 w, main.6 w+b,
    // main.8 w+b = 10 trainable tensors.
    assert_eq!(d.state().optimizer.len(), 3 * 10);
}

#[test]
fn use_taming_loss_false_sends_a_taming_model_down_the_traditional_path() {
    let mut config = Config::from_path(taming_tiny("param.json")).unwrap();
    config.train.use_taming_loss = Some(false);
    let c = LossCalculator::new(&config, &opts()).unwrap();
    assert!(!c.use_taming_loss());
    // traditional_loss.gan_weight defaults to 0: no discriminator.
    assert!(c.discriminator().is_none());
}

#[test]
fn use_taming_loss_true_with_a_non_taming_model_is_a_config_error() {
    // Config validation already rejects this in a file; the calculator checks the
    // model it is given as well.
    let mut config = Config::parse(VQVAE).unwrap();
    config.train.use_taming_loss = Some(true);
    match LossCalculator::new(&config, &opts()) {
        Err(LossError::Config { path, .. }) => assert_eq!(path, "train_args.use_taming_loss"),
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn perceptual_loss_without_weights_is_one_clear_error() {
    let mut config = Config::parse(VQVAE).unwrap();
    config.train.traditional_loss.perceptual_weight = 0.1;
    let mut o = opts();
    o.lpips_weights = Some("/nonexistent/lpips.safetensors".into());
    let err = LossCalculator::new(&config, &o).unwrap_err();
    assert!(matches!(err, LossError::LpipsWeightsMissing(_)), "{err:?}");
}

/// The generator step's flag of a step whose loss was finite.
fn ok() -> tch::Tensor {
    tch::Tensor::from(true)
}
