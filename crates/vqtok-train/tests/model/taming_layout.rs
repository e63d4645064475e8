//! The seed config's autoencoder has exactly taming's state dict (names, shapes,
//! parameter count) and PyTorch's default initialisation.

use std::collections::BTreeMap;

use crate::support::{fixtures, workspace_root};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use vqtok_config::{Config, ModelConfig, ModelVariant, TamingArgs};
use vqtok_train::model::{TamingModel, VqModel, create_model};

fn seed_args() -> TamingArgs {
    let cfg = Config::from_path(workspace_root().join("configs/taming_vqgan_f16_1024.json"))
        .expect("seed config is valid");
    match cfg.model {
        ModelConfig::Taming(a) => a,
        other => panic!("seed config is not taming: {other:?}"),
    }
}

/// Autoencoder rows of the golden TSV (key → shape); `loss.*` belongs to other stores.
fn golden_autoencoder() -> BTreeMap<String, Vec<i64>> {
    let path = fixtures().join("taming_f16_1024_state_dict.tsv");
    let text = std::fs::read_to_string(&path).expect("golden state-dict list");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty() && !l.starts_with("loss."))
        .map(|l| {
            let mut cols = l.split('\t');
            let key = cols.next().expect("key column").to_string();
            let shape = cols
                .next()
                .expect("shape column")
                .trim_matches(|c| c == '[' || c == ']')
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.trim().parse::<i64>().expect("shape entry"))
                .collect();
            (key, shape)
        })
        .collect()
}

fn numel(ts: &[Tensor]) -> i64 {
    ts.iter().map(|t| t.numel() as i64).sum()
}

#[test]
fn seed_state_dict_matches_taming_and_is_initialised_like_pytorch() {
    let _rng = crate::support::seeded(0);
    let vs = VarStore::new(Device::Cpu);
    let model = TamingModel::new(&vs.root(), &seed_args()).expect("seed model builds");
    let ours: BTreeMap<String, Vec<i64>> = vs
        .variables()
        .into_iter()
        .map(|(k, t)| (k, t.size()))
        .collect();
    let golden = golden_autoencoder();
    assert_eq!(golden.len(), 343, "the TSV's autoencoder part");
    let missing: Vec<_> = golden.keys().filter(|k| !ours.contains_key(*k)).collect();
    let extra: Vec<_> = ours.keys().filter(|k| !golden.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    for (k, shape) in &golden {
        assert_eq!(&ours[k], shape, "shape of {k}");
    }
    assert_eq!(numel(&model.trainable_vars()), 72_141_699);
    assert_eq!(model.trainable_vars().len(), 343);
    assert_eq!(model.last_layer().size(), vec![3, 128, 3, 3]);

    let vars = vs.variables();
    // Conv weight and bias ~ U(±1/√fan_in). A uniform sample of n values reaches within
    // (1 − 10/n) of its bound and has mean |w| = bound/2 within a few 1/√n.
    for (name, fan_in) in [
        ("encoder.conv_in.weight", 3 * 9),
        ("decoder.up.4.block.0.conv1.weight", 512 * 9),
        ("encoder.down.4.attn.0.q.weight", 512),
        ("quant_conv.weight", 256),
        ("decoder.conv_in.bias", 256 * 9),
        ("decoder.up.1.block.0.nin_shortcut.bias", 256),
    ] {
        check_uniform(name, &vars[name], 1.0 / (fan_in as f64).sqrt());
    }
    check_uniform(
        "quantize.embedding.weight",
        &vars["quantize.embedding.weight"],
        1.0 / 1024.0,
    );
    for name in ["encoder.norm_out.weight", "decoder.mid.attn_1.norm.weight"] {
        let w = &vars[name];
        assert_eq!(w.eq(1.0).all().int64_value(&[]), 1, "{name} is all ones");
    }
    assert_eq!(
        vars["decoder.up.0.block.1.norm2.bias"]
            .abs()
            .max()
            .double_value(&[]),
        0.0
    );
}

fn check_uniform(name: &str, t: &Tensor, bound: f64) {
    let n = t.numel() as f64;
    let max = t.abs().max().double_value(&[]);
    let mean_abs = t.abs().mean(Kind::Double).double_value(&[]);
    assert!(
        max <= bound * (1.0 + 1e-6),
        "{name}: max |w| {max} > bound {bound}"
    );
    assert!(
        max >= bound * (1.0 - 20.0 / n),
        "{name}: max |w| {max} far below bound {bound}"
    );
    let tol = 6.0 * bound / (12.0 * n).sqrt();
    assert!(
        (mean_abs - bound / 2.0).abs() <= tol,
        "{name}: mean |w| {mean_abs}, expected {} ± {tol}",
        bound / 2.0
    );
}

/// EMAVQ: the same network, the codebook as three non-trainable buffers.
#[test]
fn seed_emavq_keeps_the_codebook_out_of_the_optimizer() {
    let mut args = seed_args();
    args.model_variant = ModelVariant::EMAVQ;
    let vs = VarStore::new(Device::Cpu);
    let model = create_model(&ModelConfig::Taming(args), &vs.root()).expect("builds");
    assert_eq!(vs.len(), 345);
    assert_eq!(model.trainable_vars().len(), 342);
    assert_eq!(numel(&model.trainable_vars()), 72_141_699 - 1024 * 256);
    assert_eq!(
        vs.variables()["quantize.embedding.cluster_size"].size(),
        vec![1024]
    );
}

/// The ddconfig options the seed config leaves at their defaults: attention at two
/// levels, resampling without convs, dropout, other channel counts.
#[test]
fn every_ddconfig_option_shapes_the_network() {
    let mut args = seed_args();
    args.n_embed = 16;
    args.embed_dim = 4;
    args.ddconfig = vqtok_config::DdConfig {
        double_z: false,
        z_channels: 8,
        resolution: 16,
        in_channels: 1,
        out_ch: 2,
        ch: 32,
        ch_mult: vec![1, 2],
        num_res_blocks: 2,
        attn_resolutions: vec![16, 8],
        dropout: 0.5,
        resamp_with_conv: false,
    };
    // The discriminator sees out_ch channels (validated with the rest of the args).
    args.lossconfig.params.disc_in_channels = 2;
    let vs = VarStore::new(Device::Cpu);
    let model = TamingModel::new(&vs.root(), &args).expect("builds");
    let keys: Vec<String> = vs.variables().into_keys().collect();
    assert!(
        !keys.iter().any(|k| k.contains("sample")),
        "no resampling convs"
    );
    for k in [
        "encoder.conv_in.weight",
        "encoder.down.0.attn.1.q.weight",
        "encoder.down.1.attn.1.proj_out.bias",
        "encoder.down.1.block.0.nin_shortcut.weight",
        "decoder.up.0.attn.2.k.weight",
        "decoder.up.1.attn.2.v.weight",
        "decoder.up.0.block.0.nin_shortcut.weight",
    ] {
        assert!(keys.iter().any(|x| x == k), "{k} missing");
    }
    let vars = vs.variables();
    assert_eq!(vars["encoder.conv_in.weight"].size(), vec![32, 1, 3, 3]);
    assert_eq!(vars["encoder.conv_out.weight"].size(), vec![8, 64, 3, 3]);
    assert_eq!(vars["quant_conv.weight"].size(), vec![4, 8, 1, 1]);
    assert_eq!(model.last_layer().size(), vec![2, 32, 3, 3]);

    let x = Tensor::rand([2, 1, 32, 16], (Kind::Float, Device::Cpu));
    let out = model.forward_t(&x, false).expect("forward");
    assert_eq!(out.recon.size(), vec![2, 2, 32, 16]);
    assert_eq!(out.indices[0].size(), vec![2, 16, 8]);
    // Dropout acts in training only.
    let eval2 = model.forward_t(&x, false).expect("forward").recon;
    assert_eq!((&out.recon - &eval2).abs().max().double_value(&[]), 0.0);
    let t1 = model.forward_t(&x, true).expect("forward").recon;
    let t2 = model.forward_t(&x, true).expect("forward").recon;
    assert!((&t1 - &t2).abs().max().double_value(&[]) > 0.0);

    args.ddconfig.double_z = true;
    let err = TamingModel::new(&VarStore::new(Device::Cpu).root(), &args).expect_err("double_z");
    assert!(
        err.to_string().contains("model_args.ddconfig.double_z"),
        "{err}"
    );
}
