//! VQLPIPSWithDiscriminator against ../shared/fixtures/taming_tiny, computed by the
//! original Python code in float64. Reconstructions come from the fixture (`xrec`),
//! so these run without the models: LPIPS, the generator pass's values that do not
//! need the decoder's gradient (rec/nll/p/g), the discriminator pass and the
//! BatchNorm running stats after the three discriminator forwards.
//!
//! Tolerances, relative to each tensor's scale: f64 1e-11 — this port reproduces
//! the fixture bit for bit on CPU, and a real deviation such as LPIPS's float32
//! ScalingLayer constants taken as exact decimals shows up at ~1e-8, so 1e-11 keeps
//! only room for summation order; f32 1e-4 (observed ≤ 4e-7).

mod loss_support;

use std::collections::HashMap;

use loss_support::{assert_close, lpips_weights, read_named, taming_tiny};
use tch::{Device, Kind, Tensor};
use vqtok_config::{Config, ModelConfig};
use vqtok_train::loss::{LossOptions, Lpips, Split, VqLpipsWithDiscriminator};

struct Fixture {
    expected: HashMap<String, Tensor>,
    model: HashMap<String, Tensor>,
    loss: VqLpipsWithDiscriminator,
    kind: Kind,
}

fn fixture(kind: Kind) -> Fixture {
    let config = Config::from_path(taming_tiny("param.json")).expect("fixture param.json");
    let ModelConfig::Taming(args) = &config.model else {
        panic!("taming_tiny is a taming model")
    };
    let opts = LossOptions {
        device: Device::Cpu,
        kind,
        lpips_weights: Some(lpips_weights()),
    };
    let loss = VqLpipsWithDiscriminator::new(&args.lossconfig.params, &opts).unwrap();
    let model = read_named(&taming_tiny("model.safetensors"));
    loss.load_discriminator(&model, "model.safetensors")
        .unwrap();
    Fixture {
        expected: read_named(&taming_tiny("expected.safetensors")),
        model,
        loss,
        kind,
    }
}

impl Fixture {
    fn get(&self, key: &str) -> Tensor {
        self.expected[key].to_kind(self.kind)
    }

    fn rtol(&self) -> f64 {
        if self.kind == Kind::Double {
            1e-11
        } else {
            1e-4
        }
    }

    fn check(&self, what: &str, got: &Tensor, key: &str) {
        let want = &self.expected[key];
        assert_close(what, &got.reshape(want.size()), want, self.rtol());
    }
}

fn lpips_x_xrec(kind: Kind) {
    let f = fixture(kind);
    let net = Lpips::load(&lpips_weights(), Device::Cpu, kind).unwrap();
    let d = net.forward(&f.get("x"), &f.get("xrec"));
    f.check("lpips(x, xrec)", &d, "lpips_x_xrec");
}

#[test]
fn lpips_matches_the_fixture_in_f64() {
    lpips_x_xrec(Kind::Double);
}

#[test]
fn lpips_matches_the_fixture_in_f32() {
    lpips_x_xrec(Kind::Float);
}

/// Generator pass at global_step 1 (disc_start 0), then the discriminator pass on
/// the same reconstruction, with D in train mode throughout.
fn both_passes(kind: Kind) {
    let f = fixture(kind);
    let (x, xrec, qloss) = (f.get("x"), f.get("xrec"), f.get("qloss"));
    let unused_last_layer = Tensor::zeros([1], (kind, Device::Cpu));
    let ae = f
        .loss
        .generator_step(&qloss, &x, &xrec, 1, &unused_last_layer, Split::Train)
        .unwrap();
    // The fixture's xrec carries no graph: no adaptive weight, nothing to backprop.
    assert!(ae.backward_loss.is_none());
    for name in ["rec_loss", "nll_loss", "p_loss", "g_loss"] {
        let got = ae.log.get(&format!("train/{name}")).unwrap();
        f.check(name, got, &format!("ae.{name}"));
    }
    f.check(
        "quant_loss",
        ae.log.get("train/quant_loss").unwrap(),
        "qloss",
    );
    assert_eq!(
        ae.log.get("train/disc_factor").unwrap().double_value(&[]),
        1.0
    );

    let d = f.loss.discriminator_step(&x, &xrec, 1, Split::Train);
    f.check("disc_loss", &d.loss, "d.disc_loss");
    for name in ["disc_loss", "logits_real", "logits_fake"] {
        let got = d.log.get(&format!("train/{name}")).unwrap();
        f.check(name, got, &format!("d.{name}"));
    }
    // Running stats after D(xrec), D(x), D(xrec): the discriminator optimizer step
    // does not touch them, so they equal the fixture's after-step values.
    let vars = f.loss.discriminator().var_store().variables();
    let key = "loss.discriminator.main.3.running_mean";
    f.check("BN running_mean", &vars[key], &format!("after_step.{key}"));
    let tracked = vars["loss.discriminator.main.3.num_batches_tracked"].int64_value(&[]);
    let before = f.model["loss.discriminator.main.3.num_batches_tracked"].int64_value(&[]);
    assert_eq!(tracked, before + 3);
}

#[test]
fn generator_and_discriminator_passes_match_the_fixture_in_f64() {
    both_passes(Kind::Double);
}

#[test]
fn generator_and_discriminator_passes_match_the_fixture_in_f32() {
    both_passes(Kind::Float);
}

#[test]
fn validation_uses_running_stats_and_no_adaptive_weight() {
    let f = fixture(Kind::Double);
    let (x, xrec, qloss) = (f.get("x"), f.get("xrec"), f.get("qloss"));
    let unused = Tensor::zeros([1], (Kind::Double, Device::Cpu));
    let before = f.loss.discriminator().state();
    let ae = f
        .loss
        .generator_step(&qloss, &x, &xrec, 1, &unused, Split::Val)
        .unwrap();
    let keys: Vec<&str> = ae.log.keys().collect();
    assert_eq!(
        keys,
        [
            "val/total_loss",
            "val/quant_loss",
            "val/nll_loss",
            "val/rec_loss",
            "val/p_loss",
            "val/d_weight",
            "val/disc_factor",
            "val/g_loss"
        ]
    );
    assert_eq!(ae.log.get("val/d_weight").unwrap().double_value(&[]), 0.0);
    // d_weight 0: total = nll + codebook_weight · qloss (f64, 1e-11 relative as above).
    let want =
        f.expected["ae.nll_loss"].double_value(&[0]) + f.expected["qloss"].double_value(&[0]);
    let got = ae.total_loss.double_value(&[]);
    assert!((got - want).abs() < 1e-11 * want, "{got} vs {want}");
    // Eval-mode D: the logits differ from the train-mode fixture value and no
    // running statistic moves.
    let d = f.loss.discriminator_step(&x, &xrec, 1, Split::Val);
    let keys: Vec<&str> = d.log.keys().collect();
    assert_eq!(
        keys,
        ["val/disc_loss", "val/logits_real", "val/logits_fake"]
    );
    assert!(!d.loss.requires_grad());
    for ((k, a), (_, b)) in before.iter().zip(f.loss.discriminator().state()) {
        assert!(a.equal(&b), "validation changed {k}");
    }
}
