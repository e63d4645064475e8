//! The generator pass's adaptive weight and gradients against taming's literal
//! procedure (two `autograd.grad` through LPIPS/D to the last layer, then
//! `total_loss.backward()`), on a toy autoencoder in float64 with the real LPIPS.
//! Tolerance 1e-10 relative: both sides compute the same f64 quantities, only
//! summation order differs.

use crate::support::{assert_close, lpips_weights, reconstruction, scalar};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};
use vqtok_config::{DiscLoss, LossParams};
use vqtok_train::loss::{
    Discriminator, DiscriminatorSpec, LossError, LossOptions, Lpips, Split,
    VqLpipsWithDiscriminator,
};
use vqtok_train::model::{ModelError, ModelOutput, VqModel};
use vqtok_train::optim::AdamConfig;

const DISC_START: u64 = 5;

fn params() -> LossParams {
    LossParams {
        disc_start: DISC_START,
        codebook_weight: 1.3,
        pixelloss_weight: 1.0,
        disc_num_layers: 2,
        disc_in_channels: 3,
        disc_factor: 0.7,
        disc_weight: 0.8,
        perceptual_weight: 0.9,
        use_actnorm: false,
        disc_conditional: false,
        disc_ndf: 8,
        disc_loss: DiscLoss::Hinge,
    }
}

fn discriminator(opts: &LossOptions) -> Discriminator {
    Discriminator::new(
        &DiscriminatorSpec::taming(&params(), 1, AdamConfig::default()),
        opts,
    )
    .unwrap()
}

fn grads(model: &ToyModel) -> Vec<Tensor> {
    model
        .trainable_vars()
        .iter()
        .map(|p| p.grad().copy())
        .collect()
}

fn zero_grads(model: &ToyModel) {
    for mut p in model.trainable_vars() {
        p.zero_grad();
    }
}

/// taming's `VQLPIPSWithDiscriminator.forward(optimizer_idx=0)` written out literally.
fn reference(
    model: &ToyModel,
    disc: &Discriminator,
    lpips: &Lpips,
    x: &Tensor,
    step: u64,
) -> (f64, f64, Vec<Tensor>) {
    let p = params();
    let out = model.forward_t(x, true).unwrap();
    let rec = (x - &out.recon).abs() + lpips.forward(x, &out.recon) * p.perceptual_weight;
    let nll = rec.mean(Kind::Double);
    let logits = disc.logits_frozen(&out.recon, true);
    let g = -logits.mean(Kind::Double);
    let w = model.last_layer();
    let g_nll = Tensor::run_backward(&[&nll], &[&w], true, false).remove(0);
    let g_g = Tensor::run_backward(&[&g], &[&w], true, false).remove(0);
    let d_weight = (g_nll.norm() / (g_g.norm() + 1e-4)).clamp(0.0, 1e4) * p.disc_weight;
    let factor = if step < DISC_START {
        0.0
    } else {
        p.disc_factor
    };
    let total = &nll + &d_weight * factor * &g + out.vq_loss.mean(Kind::Double) * p.codebook_weight;
    zero_grads(model);
    total.backward();
    (scalar(&d_weight), scalar(&total), grads(model))
}

fn compare_at(step: u64) {
    let _rng = crate::support::seeded(7);
    let model = ToyModel::new();
    let opts = LossOptions {
        device: Device::Cpu,
        kind: Kind::Double,
        lpips_weights: Some(lpips_weights()),
    };
    let loss = VqLpipsWithDiscriminator::new(&params(), &opts).unwrap();
    let disc = discriminator(&opts);
    let lpips = Lpips::load(&lpips_weights(), Device::Cpu, Kind::Double).unwrap();
    let x = Tensor::randn([2, 3, 32, 32], (Kind::Double, Device::Cpu)).tanh();

    let out = model.forward_t(&x, true).unwrap();
    let last_layer = model.last_layer();
    let r = reconstruction(&x, &out, &last_layer);
    let ours = loss
        .generator_step(&r, step, Some(&disc), Split::Train)
        .unwrap();
    zero_grads(&model);
    ours.backward_loss
        .as_ref()
        .expect("train pass with a graph")
        .backward();
    let our_grads = grads(&model);

    let (d_weight, total, ref_grads) = reference(&model, &disc, &lpips, &x, step);
    let our_d_weight = scalar(ours.log.get("train/d_weight").unwrap());
    assert!(d_weight > 0.0);
    if step >= DISC_START {
        assert!(
            (our_d_weight - d_weight).abs() <= 1e-10 * d_weight,
            "d_weight {our_d_weight} vs {d_weight}"
        );
    } else {
        // Before disc_start D is not run (taming weighs its term by 0 there).
        assert_eq!(our_d_weight, 0.0);
    }
    let our_total = scalar(&ours.total_loss);
    assert!(
        (our_total - total).abs() <= 1e-10 * total.abs(),
        "total {our_total} vs {total}"
    );
    assert_eq!(scalar(ours.log.get("train/total_loss").unwrap()), our_total);
    for (i, (a, b)) in our_grads.iter().zip(&ref_grads).enumerate() {
        assert_close(&format!("autoencoder grad {i}"), a, b, 1e-10);
    }
    // The generator pass never gives the discriminator a gradient.
    for (k, v) in disc.var_store().variables() {
        let g = v.grad();
        assert!(
            !g.defined() || scalar(&g.abs().sum(Kind::Double)) == 0.0,
            "{k} got a gradient"
        );
    }
}

vqtok_testkit::test_cases! { compare_at;
    equals_taming_after_disc_start: (DISC_START);
    equals_taming_before_disc_start_without_running_the_discriminator: (DISC_START - 1);
}

#[test]
fn a_last_layer_outside_the_graph_is_an_error_not_a_panic() {
    let model = ToyModel::new();
    let opts = LossOptions {
        device: Device::Cpu,
        kind: Kind::Double,
        lpips_weights: None,
    };
    let mut p = params();
    p.perceptual_weight = 0.0;
    let loss = VqLpipsWithDiscriminator::new(&p, &opts).unwrap();
    let disc = discriminator(&opts);
    let x = Tensor::randn([1, 3, 16, 16], (Kind::Double, Device::Cpu));
    let out = model.forward_t(&x, true).unwrap();
    let stranger = Tensor::zeros([3, 8, 3, 3], (Kind::Double, Device::Cpu)).set_requires_grad(true);
    let res = loss.generator_step(
        &reconstruction(&x, &out, &stranger),
        9,
        Some(&disc),
        Split::Train,
    );
    assert!(matches!(res, Err(LossError::LastLayerUnused)), "{res:?}");
}

/// A tiny f64 conv autoencoder with a differentiable stand-in for the quantizer loss,
/// so that every autoencoder gradient can be compared cheaply (the real taming model
/// is checked against the fixture in loss_taming_fixture.rs). Its `last_layer` is the
/// weight of the conv that produces the reconstruction, as in the real models.
struct ToyModel {
    vs: nn::VarStore,
    enc: nn::Conv2D,
    mid: nn::Conv2D,
    out: nn::Conv2D,
}

impl ToyModel {
    fn new() -> ToyModel {
        let mut vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let c = nn::ConvConfig {
            padding: 1,
            ..Default::default()
        };
        let enc = nn::conv2d(root.sub("encoder"), 3, 4, 3, c);
        let mid = nn::conv2d(root.sub("decoder").sub("mid"), 4, 8, 3, c);
        let out = nn::conv2d(root.sub("decoder").sub("conv_out"), 8, 3, 3, c);
        vs.double();
        ToyModel { vs, enc, mid, out }
    }

    fn decode(&self, z: &Tensor) -> Tensor {
        self.out.forward(&self.mid.forward(z).tanh())
    }
}

impl VqModel for ToyModel {
    fn forward_t(&self, images: &Tensor, _train: bool) -> Result<ModelOutput, ModelError> {
        let z = self.enc.forward(images);
        let vq_loss = z.square().mean(z.kind()) * 0.25;
        Ok(ModelOutput {
            vq_loss,
            recon: self.decode(&z),
            perplexity: vec![],
            indices: self.encode(images)?,
        })
    }

    fn encode(&self, images: &Tensor) -> Result<Vec<Tensor>, ModelError> {
        Ok(vec![self.enc.forward(images).argmax(1, false)])
    }

    fn decode_indices(&self, indices: &[Tensor]) -> Result<Tensor, ModelError> {
        let z = indices[0]
            .one_hot(4)
            .permute([0, 3, 1, 2])
            .to_kind(self.out.ws.kind());
        Ok(self.decode(&z))
    }

    fn last_layer(&self) -> Tensor {
        self.out.ws.shallow_clone()
    }

    fn trainable_vars(&self) -> Vec<Tensor> {
        self.vs.trainable_variables()
    }
}
