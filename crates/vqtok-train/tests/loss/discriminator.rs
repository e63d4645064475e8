//! NLayerDiscriminator: names and shapes against the spec's Appendix A/C and the
//! taming fixture, parameter counts of spec §0.1, output sizes, taming's init, and
//! the BatchNorm / ActNorm state.

use std::collections::BTreeMap;

use crate::support::{fixtures, read_tensors, taming_tiny, var_copies};
use tch::{Device, Kind, Tensor};
use vqtok_config::DiscLoss;
use vqtok_train::loss::{Discriminator, DiscriminatorConfig, DiscriminatorSpec, LossOptions};
use vqtok_train::optim::AdamConfig;

fn disc(in_channels: usize, ndf: usize, n_layers: usize, use_actnorm: bool) -> Discriminator {
    let spec = DiscriminatorSpec {
        net: DiscriminatorConfig {
            in_channels,
            ndf,
            n_layers,
            use_actnorm,
        },
        loss: DiscLoss::Hinge,
        start: 0,
        every: 1,
        factor: 1.0,
        adam: AdamConfig::default(),
    };
    Discriminator::new(&spec, &LossOptions::new(Device::Cpu)).unwrap()
}

fn shapes(d: &Discriminator) -> BTreeMap<String, Vec<i64>> {
    d.var_store()
        .variables()
        .into_iter()
        .map(|(k, v)| (k, v.size()))
        .collect()
}

fn param_count(d: &Discriminator) -> usize {
    d.var_store()
        .trainable_variables()
        .iter()
        .map(Tensor::numel)
        .sum()
}

#[test]
fn keys_and_shapes_match_the_seed_state_dict() {
    // The seed config's state-dict list (tests/fixtures/taming_f16_1024_state_dict.tsv,
    // from taming's own VQModel) with its `loss.discriminator.*` rows.
    let tsv = std::fs::read_to_string(fixtures().join("taming_f16_1024_state_dict.tsv")).unwrap();
    let want: BTreeMap<String, Vec<i64>> = tsv
        .lines()
        .filter(|l| l.starts_with("loss.discriminator."))
        .map(|l| {
            let mut cols = l.split('\t');
            let key = cols.next().unwrap().to_string();
            let dims = cols
                .next()
                .unwrap()
                .trim_matches(|c| c == '[' || c == ']')
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.trim().parse().unwrap())
                .collect();
            (key, dims)
        })
        .collect();
    assert_eq!(want.len(), 22, "13 params + 9 BatchNorm buffers");
    assert_eq!(shapes(&disc(3, 64, 3, false)), want);
}

#[test]
fn parameter_counts_match_spec_section_0_1() {
    assert_eq!(param_count(&disc(3, 64, 3, false)), 2_765_633);
    assert_eq!(param_count(&disc(3, 64, 2, false)), 663_361);
    assert_eq!(param_count(&disc(3, 64, 1, false)), 136_513);
}

#[test]
fn loads_the_taming_fixture_discriminator_by_name() {
    let mut d = disc(3, 16, 2, false);
    let file = read_tensors(&taming_tiny("model.safetensors"));
    let theirs: BTreeMap<String, Vec<i64>> = file
        .iter()
        .filter(|(k, _)| k.starts_with("loss.discriminator."))
        .map(|(k, v)| (k.clone(), v.size()))
        .collect();
    assert_eq!(shapes(&d), theirs);
    d.load(&file, None, std::path::Path::new("model.safetensors"))
        .unwrap();
    for (k, v) in d.var_store().variables() {
        assert!(v.equal(&file[&k]), "{k} not loaded");
    }
}

#[test]
fn actnorm_variant_has_conv_biases_and_actnorm_state() {
    let keys: Vec<String> = shapes(&disc(3, 64, 2, true)).into_keys().collect();
    let want = [
        "main.0.bias",
        "main.0.weight",
        "main.2.bias",
        "main.2.weight",
        "main.3.initialized",
        "main.3.loc",
        "main.3.scale",
        "main.5.bias",
        "main.5.weight",
        "main.6.initialized",
        "main.6.loc",
        "main.6.scale",
        "main.8.bias",
        "main.8.weight",
    ]
    .map(|k| format!("loss.discriminator.{k}"));
    assert_eq!(keys, want);
}

#[test]
fn patch_outputs_are_30x30_and_62x62_for_256_inputs() {
    let x = Tensor::randn([1, 3, 256, 256], (Kind::Float, Device::Cpu));
    assert_eq!(
        disc(3, 8, 3, false).logits(&x, false).size(),
        [1, 1, 30, 30]
    );
    assert_eq!(
        disc(3, 8, 2, false).logits(&x, false).size(),
        [1, 1, 62, 62]
    );
}

#[test]
fn initialisation_follows_taming_weights_init() {
    let _rng = crate::support::seeded(0);
    let d = disc(3, 64, 3, false);
    let v = d.var_store().variables();
    // main.8.weight has 2,097,152 samples of N(0, 0.02): the sample std is within
    // 1% of 0.02 and the mean within 1e-4 of 0 with overwhelming probability.
    let w = &v["loss.discriminator.main.8.weight"];
    let (mean, std) = (
        w.mean(Kind::Float).double_value(&[]),
        w.std(true).double_value(&[]),
    );
    assert!(
        mean.abs() < 1e-4 && (std - 0.02).abs() < 2e-4,
        "{mean} {std}"
    );
    // BatchNorm weight N(1, 0.02) (512 samples: mean within 0.005), bias 0.
    let bn = &v["loss.discriminator.main.9.weight"];
    assert!((bn.mean(Kind::Float).double_value(&[]) - 1.0).abs() < 5e-3);
    assert_eq!(
        v["loss.discriminator.main.9.bias"]
            .abs()
            .max()
            .double_value(&[]),
        0.0
    );
    // First conv bias keeps PyTorch's U(±1/√(3·16)).
    let b = &v["loss.discriminator.main.0.bias"];
    let bound = 1.0 / 48f64.sqrt();
    let max = b.abs().max().double_value(&[]);
    assert!(max <= bound && max > bound / 2.0, "{max}");
    // Running stats start at 0 / 1, counter 0.
    assert_eq!(
        v["loss.discriminator.main.3.running_var"]
            .sum(Kind::Float)
            .double_value(&[]),
        128.0
    );
    assert_eq!(
        v["loss.discriminator.main.3.num_batches_tracked"].int64_value(&[]),
        0
    );
}

#[test]
fn train_mode_updates_running_stats_and_counters_eval_mode_does_not() {
    let d = disc(3, 8, 2, false);
    let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu)) * 3.0 + 1.0;
    let before = var_copies(d.var_store());
    let _ = d.logits(&x, false);
    for ((k, a), (_, b)) in before.iter().zip(var_copies(d.var_store())) {
        assert!(a.equal(&b), "eval forward changed {k}");
    }
    let _ = d.logits(&x, true);
    let _ = d.logits(&x, true);
    let v = d.var_store().variables();
    assert_eq!(
        v["loss.discriminator.main.3.num_batches_tracked"].int64_value(&[]),
        2
    );
    assert_eq!(
        v["loss.discriminator.main.6.num_batches_tracked"].int64_value(&[]),
        2
    );
    assert!(
        !v["loss.discriminator.main.3.running_mean"]
            .equal(&Tensor::zeros([16], (Kind::Float, Device::Cpu)))
    );
}

#[test]
fn actnorm_initialises_from_the_first_training_batch_only() {
    let d = disc(3, 8, 1, true);
    let x = Tensor::randn([4, 3, 32, 32], (Kind::Float, Device::Cpu)) * 2.0 + 0.5;
    let v = d.var_store().variables();
    let flag = &v["loss.discriminator.main.3.initialized"];
    assert_eq!(flag.kind(), Kind::Uint8);
    let _ = d.logits(&x, false);
    assert_eq!(flag.int64_value(&[]), 0, "eval mode must not initialise");
    let _ = d.logits(&x, true);
    assert_eq!(flag.int64_value(&[]), 1);
    let loc = v["loss.discriminator.main.3.loc"].copy();
    let scale = v["loss.discriminator.main.3.scale"].copy();
    // loc = −mean, scale = 1/(std + 1e-6) of main.2's output: recompute that output
    // with the loaded conv and check the normalised activations per channel.
    let conv = |h: &Tensor, layer: usize, stride: i64| {
        let param = |p: &str| &v[&format!("loss.discriminator.main.{layer}.{p}")];
        h.conv2d(
            param("weight"),
            Some(param("bias")),
            [stride, stride],
            [1, 1],
            [1, 1],
            1,
        )
    };
    let h = conv(&x, 0, 2);
    let h = h.maximum(&(&h * 0.2));
    let h = conv(&h, 2, 1);
    let y = &scale * (h + &loc);
    let flat = y.transpose(0, 1).reshape([16, -1]);
    // f32 statistics over 4·15·15 values per channel: 1e-4 absolute.
    assert!(
        flat.mean_dim(1, false, Kind::Float)
            .abs()
            .max()
            .double_value(&[])
            < 1e-4
    );
    assert!(
        (flat.std_dim(1, true, false) - 1.0)
            .abs()
            .max()
            .double_value(&[])
            < 1e-4
    );
    // A second training batch leaves loc/scale alone.
    let _ = d.logits(&(x * 5.0), true);
    assert!(v["loss.discriminator.main.3.loc"].equal(&loc));
}
