//! VQ-VAE and VQ-VAE-2: docs/models.md's names and shapes, output shapes for several
//! sizes, the adapter's input checks, and that each model can overfit one small batch.

use std::collections::BTreeMap;

use tch::nn::{self, OptimizerConfig, VarStore};
use tch::{Device, Kind, Reduction, Tensor};
use vqtok_config::{EmaArgs, ModelConfig, QuantizerKind, VqVae2Args, VqVaeArgs};
use vqtok_train::model::{ModelError, create_model};

const CPU: (Kind, Device) = (Kind::Float, Device::Cpu);

fn vqvae_args(downsample: usize, quantizer: QuantizerKind) -> VqVaeArgs {
    VqVaeArgs {
        in_channels: 3,
        num_hiddens: 32,
        num_residual_layers: 1,
        num_residual_hiddens: 16,
        embedding_dim: 8,
        num_embeddings: 32,
        commitment_cost: 0.25,
        downsample,
        quantizer,
        ema: EmaArgs::default(),
    }
}

fn vqvae2_args(quantizer: QuantizerKind) -> VqVae2Args {
    VqVae2Args {
        in_channels: 3,
        channel: 32,
        n_res_block: 1,
        n_res_channel: 16,
        embed_dim: 8,
        n_embed: 32,
        commitment_cost: 0.25,
        quantizer,
        ema: EmaArgs::default(),
    }
}

fn shapes(vs: &VarStore) -> BTreeMap<String, Vec<i64>> {
    vs.variables()
        .into_iter()
        .map(|(k, t)| (k, t.size()))
        .collect()
}

/// The exact state dict docs/models.md prescribes for VQ-VAE (n = 2, one residual layer).
#[test]
fn vqvae_state_dict_follows_docs() {
    let vs = VarStore::new(Device::Cpu);
    let model = create_model(
        &ModelConfig::VqVae(vqvae_args(4, QuantizerKind::Vq)),
        &vs.root(),
    )
    .expect("builds");
    let (h, rh, d, k) = (32, 16, 8, 32);
    let conv = |o: i64, i: i64, s: i64| vec![o, i, s, s];
    let mut want: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut add = |name: &str, w: Vec<i64>| {
        want.insert(
            format!("{name}.bias"),
            vec![if name.contains(".up.") { w[1] } else { w[0] }],
        );
        want.insert(format!("{name}.weight"), w);
    };
    add("encoder.down.0", conv(h / 2, 3, 4));
    add("encoder.down.1", conv(h, h / 2, 4));
    add("encoder.conv", conv(h, h, 3));
    add("encoder.res.0.conv1", conv(rh, h, 3));
    add("encoder.res.0.conv2", conv(h, rh, 1));
    add("quant_conv", conv(d, h, 1));
    add("decoder.conv_in", conv(h, d, 3));
    add("decoder.res.0.conv1", conv(rh, h, 3));
    add("decoder.res.0.conv2", conv(h, rh, 1));
    add("decoder.up.0", vec![h, h / 2, 4, 4]);
    add("decoder.up.1", vec![h / 2, 3, 4, 4]);
    want.insert("quantize.embedding.weight".into(), vec![k, d]);
    assert_eq!(shapes(&vs), want);
    assert_eq!(model.trainable_vars().len(), want.len());
    assert_eq!(model.last_layer().size(), vec![h / 2, 3, 4, 4]);

    // PyTorch's ConvTranspose2d init: fan_in = weight.size(1)·k·k = out·16.
    let up0 = &vs.variables()["decoder.up.0.weight"];
    let bound = 1.0 / ((h / 2 * 16) as f64).sqrt();
    let max = up0.abs().max().double_value(&[]);
    assert!(
        max <= bound && max > 0.95 * bound,
        "max |w| {max}, bound {bound}"
    );
}

#[test]
fn vqvae_shapes_for_several_sizes() {
    for (downsample, (hgt, wid)) in [(2, (16, 16)), (4, (32, 48)), (8, (64, 32))] {
        for quantizer in [QuantizerKind::Vq, QuantizerKind::Ema] {
            let vs = VarStore::new(Device::Cpu);
            let model = create_model(
                &ModelConfig::VqVae(vqvae_args(downsample, quantizer)),
                &vs.root(),
            )
            .expect("builds");
            let x = Tensor::rand([2, 3, hgt, wid], CPU) * 2.0 - 1.0;
            let out = model.forward_t(&x, true).expect("forward");
            let grid = vec![2, hgt / downsample as i64, wid / downsample as i64];
            assert_eq!(out.recon.size(), vec![2, 3, hgt, wid]);
            assert_eq!(out.indices.len(), 1);
            assert_eq!(out.indices[0].size(), grid);
            assert_eq!(out.vq_loss.size(), Vec::<i64>::new());
            assert_eq!(out.perplexity.len(), 1);
            let codes = model.encode(&x).expect("encode");
            assert_eq!(codes[0].size(), grid);
            assert_eq!(
                model.decode_indices(&codes).expect("decode").size(),
                vec![2, 3, hgt, wid]
            );
            let trainable = model.trainable_vars().len();
            let expect = if quantizer == QuantizerKind::Vq {
                vs.len()
            } else {
                vs.len() - 3
            };
            assert_eq!(trainable, expect, "EMA state is not trainable");
        }
    }
}

#[test]
fn vqvae2_state_dict_and_shapes() {
    let vs = VarStore::new(Device::Cpu);
    let model = create_model(
        &ModelConfig::VqVae2(vqvae2_args(QuantizerKind::Ema)),
        &vs.root(),
    )
    .expect("builds");
    let s = shapes(&vs);
    let (c, d) = (32, 8);
    for (name, shape) in [
        ("enc_b.down.0.weight", vec![c / 2, 3, 4, 4]),
        ("enc_b.down.1.weight", vec![c, c / 2, 4, 4]),
        ("enc_t.down.0.weight", vec![c / 2, c, 4, 4]),
        ("enc_t.conv.weight", vec![c, c / 2, 3, 3]),
        ("quantize_conv_t.weight", vec![d, c, 1, 1]),
        ("quantize_t.embedding.weight", vec![32, d]),
        ("quantize_t.embedding.cluster_size", vec![32]),
        ("quantize_t.embedding.embed_avg", vec![32, d]),
        ("dec_t.conv_in.weight", vec![c, d, 3, 3]),
        ("dec_t.up.0.weight", vec![c, d, 4, 4]),
        ("quantize_conv_b.weight", vec![d, d + c, 1, 1]),
        ("quantize_b.embedding.weight", vec![32, d]),
        ("upsample_t.weight", vec![d, d, 4, 4]),
        ("dec.conv_in.weight", vec![c, 2 * d, 3, 3]),
        ("dec.res.0.conv1.weight", vec![16, c, 3, 3]),
        ("dec.up.0.weight", vec![c, c / 2, 4, 4]),
        ("dec.up.1.weight", vec![c / 2, 3, 4, 4]),
    ] {
        assert_eq!(s.get(name), Some(&shape), "{name}");
    }
    assert_eq!(model.last_layer().size(), vec![c / 2, 3, 4, 4]);
    assert_eq!(model.trainable_vars().len(), vs.len() - 6);

    for (hgt, wid) in [(32, 32), (64, 48)] {
        let x = Tensor::rand([3, 3, hgt, wid], CPU) * 2.0 - 1.0;
        let out = model.forward_t(&x, true).expect("forward");
        assert_eq!(out.recon.size(), vec![3, 3, hgt, wid]);
        assert_eq!(out.indices[0].size(), vec![3, hgt / 8, wid / 8], "top");
        assert_eq!(out.indices[1].size(), vec![3, hgt / 4, wid / 4], "bottom");
        assert_eq!(out.perplexity.len(), 2);
        let codes = model.encode(&x).expect("encode");
        assert_eq!(codes.len(), 2);
        let recon = model.decode_indices(&codes).expect("decode");
        assert_eq!(recon.size(), vec![3, 3, hgt, wid]);
        // Eval-mode forward and encode → decode_indices are the same computation.
        let eval = tch::no_grad(|| model.forward_t(&x, false).expect("forward"));
        crate::support::assert_same_ints("top", &eval.indices[0], &codes[0]);
        crate::support::assert_same_ints("bottom", &eval.indices[1], &codes[1]);
        crate::support::assert_close("decode", &recon, &eval.recon, 1e-6);
    }
}

#[test]
fn bad_configs_and_inputs_are_errors() {
    let vs = VarStore::new(Device::Cpu);
    let mut a = vqvae_args(4, QuantizerKind::Vq);
    a.downsample = 6;
    match create_model(&ModelConfig::VqVae(a), &vs.root()) {
        Err(ModelError::Config { field, .. }) => assert_eq!(field, "model_args.downsample"),
        other => panic!("expected a config error, got {:?}", other.err()),
    }
    let model = create_model(
        &ModelConfig::VqVae2(vqvae2_args(QuantizerKind::Vq)),
        &vs.root().sub("m"),
    )
    .expect("builds");
    let bad_inputs = [
        Tensor::zeros([2, 3, 20, 32], CPU), // 20 is not a multiple of 8
        Tensor::zeros([2, 1, 32, 32], CPU), // one channel
        Tensor::zeros([3, 32, 32], CPU),    // no batch axis
        Tensor::zeros([2, 3, 32, 32], (Kind::Int64, Device::Cpu)),
    ];
    for x in &bad_inputs {
        assert!(
            matches!(model.forward_t(x, false), Err(ModelError::Input(_))),
            "{:?}",
            x.size()
        );
        assert!(
            matches!(model.encode(x), Err(ModelError::Input(_))),
            "{:?}",
            x.size()
        );
    }
    let top = Tensor::zeros([1, 4, 4], (Kind::Int64, Device::Cpu));
    let bottom = Tensor::zeros([1, 8, 8], (Kind::Int64, Device::Cpu));
    assert!(
        model
            .decode_indices(&[top.shallow_clone(), bottom.shallow_clone()])
            .is_ok()
    );
    let cases = [
        vec![top.shallow_clone()],                  // one grid for two levels
        vec![top.shallow_clone(), bottom.fill(32)], // code 32 of K = 32
        vec![top.shallow_clone(), bottom.fill(-1)], // negative code
        vec![
            top.shallow_clone(),
            Tensor::zeros([1, 4, 4], (Kind::Int64, Device::Cpu)),
        ], // bottom must be 2× top
        vec![top.to_kind(Kind::Float), bottom.shallow_clone()], // not integers
    ];
    for (i, grids) in cases.iter().enumerate() {
        match model.decode_indices(grids) {
            Err(ModelError::Input(msg)) => assert!(!msg.is_empty()),
            other => panic!(
                "case {i}: expected an input error, got {:?}",
                other.map(|t| t.size())
            ),
        }
    }
}

/// Trains on one fixed batch with Adam and returns (first loss, mean of the last 10).
/// The loss is what the traditional trainer minimises: mse(recon, x) + vq_loss.
fn overfit(cfg: &ModelConfig, hgt: i64, steps: usize, lr: f64) -> (f64, f64) {
    // Tiny convolutions run faster on one thread than split over two busy cores.
    tch::set_num_threads(1);
    let _rng = crate::support::seeded(0);
    let vs = VarStore::new(Device::Cpu);
    let model = create_model(cfg, &vs.root()).expect("builds");
    assert_eq!(model.trainable_vars().len(), vs.trainable_variables().len());
    let mut opt = nn::Adam::default().build(&vs, lr).expect("adam");
    // Two smooth, different images in [-1, 1].
    let t = Tensor::arange(hgt, CPU) / hgt as f64 * 6.0;
    let (yy, xx) = (t.view([1, 1, hgt, 1]), t.view([1, 1, 1, hgt]));
    let phase = Tensor::from_slice(&[0.0f32, 1.0, 2.0]).view([1, 3, 1, 1]);
    let a = ((&yy + &phase).sin() * (&xx * 0.7).cos()) * 0.8;
    let b = ((&xx * 1.3 - &phase).sin() * (&yy * 0.5 + 1.0).cos()) * 0.8;
    let x = Tensor::cat(&[a, b], 0);
    let mut losses = Vec::with_capacity(steps);
    for _ in 0..steps {
        let out = model.forward_t(&x, true).expect("forward");
        let loss = out.recon.mse_loss(&x, Reduction::Mean) + &out.vq_loss;
        opt.backward_step(&loss);
        losses.push(loss.double_value(&[]));
    }
    let tail = &losses[steps - 10..];
    (losses[0], tail.iter().sum::<f64>() / tail.len() as f64)
}

#[test]
fn vqvae_overfits_one_batch() {
    let (first, last) = overfit(
        &ModelConfig::VqVae(vqvae_args(4, QuantizerKind::Vq)),
        16,
        300,
        2e-3,
    );
    eprintln!("VQ-VAE loss {first:.4} → {last:.5} ({:.0}×)", first / last);
    assert!(
        first / last >= 10.0,
        "loss fell only from {first} to {last}"
    );
}

#[test]
fn vqvae2_overfits_one_batch() {
    let (first, last) = overfit(
        &ModelConfig::VqVae2(vqvae2_args(QuantizerKind::Ema)),
        32,
        300,
        2e-3,
    );
    eprintln!(
        "VQ-VAE-2 loss {first:.4} → {last:.5} ({:.0}×)",
        first / last
    );
    assert!(
        first / last >= 10.0,
        "loss fell only from {first} to {last}"
    );
}
