//! Parity with the ORIGINAL taming-transformers code: tests/fixtures/taming_tiny holds
//! float64 intermediates computed by the Python modules from `model.safetensors`.
//!
//! Tolerances: in f64 the only differences are summation order inside libtorch kernels
//! (conv, GEMM, attention), ~1e-15 per op, so 1e-9 norm-wise relative leaves room for
//! the ~60 layers while still catching any wrong constant (a GroupNorm eps of 1e-5
//! instead of 1e-6 shows up at ~1e-6). In f32 the same chain accumulates ~1e-6–1e-5,
//! hence 1e-4. Indices must match exactly.

use crate::support::{assert_close, assert_same_ints, read_tensors, taming_tiny};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use vqtok_config::{Config, EmaArgs, ModelConfig, ModelVariant, TamingArgs};
use vqtok_train::model::{EmaQuantizer, EmaState, TamingModel, Vars, VqModel, ema_update};
use vqtok_train::state_dict::{LoadOptions, load_state_dict};

fn tiny_args() -> TamingArgs {
    let cfg = Config::from_path(taming_tiny("param.json")).expect("fixture param.json loads as is");
    match cfg.model {
        ModelConfig::Taming(a) => a,
        other => panic!("fixture is not a taming model: {other:?}"),
    }
}

fn load_tiny(kind: Kind) -> (VarStore, TamingModel) {
    let mut vs = VarStore::new(Device::Cpu);
    vs.set_kind(kind);
    let model = TamingModel::new(&vs.root(), &tiny_args()).expect("tiny model builds");
    let opts = LoadOptions {
        ignore_prefixes: vec!["loss.".into()],
        ..LoadOptions::default()
    };
    let report = load_state_dict(&vs, taming_tiny("model.safetensors"), &opts)
        .expect("strict load of the fixture's autoencoder");
    assert_eq!(report.loaded, vs.len());
    assert!(
        report.skipped > 0,
        "the fixture's loss.discriminator.* keys were skipped"
    );
    (vs, model)
}

fn check_parity(kind: Kind, rtol: f64) {
    let _guard = tch::no_grad_guard();
    let (_vs, model) = load_tiny(kind);
    let exp = read_tensors(&taming_tiny("expected.safetensors"));
    let x = exp["x"].to_kind(kind);

    let enc = model.encoder().forward_t(&x, false);
    assert_close("enc_out", &enc, &exp["enc_out"], rtol);
    let z = model.quant_conv(&enc);
    assert_close("z", &z, &exp["z"], rtol);
    let q = model.quantizer().forward_t(&z, false);
    assert_same_ints("indices", &q.indices, &exp["indices"]);
    assert_close("zq", &q.quantized, &exp["zq"], rtol);
    assert_close("qloss", &q.loss.reshape([1]), &exp["qloss"], rtol);
    let xrec = model.decode_t(&q.quantized, false);
    assert_close("xrec", &xrec, &exp["xrec"], rtol);

    // The same through the adapter interface.
    let out = model.forward_t(&x, false).expect("forward");
    assert_close("forward recon", &out.recon, &exp["xrec"], rtol);
    assert_close(
        "forward vq_loss",
        &out.vq_loss.reshape([1]),
        &exp["qloss"],
        rtol,
    );
    assert_same_ints("forward indices", &out.indices[0], &exp["indices"]);
    let codes = model.encode(&x).expect("encode");
    assert_eq!(codes.len(), 1);
    assert_same_ints("encode", &codes[0], &exp["indices"]);
    let dec = model.decode_indices(&codes).expect("decode_indices");
    assert_close(
        "decode_from_indices",
        &dec,
        &exp["decode_from_indices"],
        rtol,
    );
}

vqtok_testkit::test_cases! { check_parity;
    tiny_vqgan_matches_taming_in_f64: (Kind::Double, 1e-9);
    tiny_vqgan_matches_taming_in_f32: (Kind::Float, 1e-4);
}

fn taming_ema_args() -> EmaArgs {
    EmaArgs {
        decay: 0.99,
        eps: 1e-5,
        data_init: false,
        dead_code_threshold: 0.0,
    }
}

/// The fixture's preset state: weight = ema.weight_before, cluster_size = 1, embed_avg = weight.
fn preset_state(exp: &std::collections::HashMap<String, Tensor>) -> EmaState {
    let w = exp["ema.weight_before"].shallow_clone();
    EmaState {
        cluster_size: Tensor::ones([w.size()[0]], (Kind::Double, Device::Cpu)),
        embed_avg: w.copy(),
        weight: w,
    }
}

/// ema_update is taming's EmbeddingEMA update (f64: 1e-12, only summation order differs).
#[test]
fn ema_update_reproduces_taming() {
    let exp = read_tensors(&taming_tiny("expected.safetensors"));
    let z = &exp["z"];
    let z_flat = z.permute([0, 2, 3, 1]).reshape([-1, 8]);
    let idx = exp["ema.indices"].reshape([-1]);
    let next = ema_update(&preset_state(&exp), &z_flat, &idx, 0.99, 1e-5);
    assert_close(
        "cluster_size",
        &next.cluster_size,
        &exp["ema.cluster_size_after"],
        1e-12,
    );
    assert_close(
        "embed_avg",
        &next.embed_avg,
        &exp["ema.embed_avg_after"],
        1e-12,
    );
    assert_close("weight", &next.weight, &exp["ema.weight_after"], 1e-12);
}

/// The EMA quantizer in training mode, with data init and restarts off, is taming's
/// EMAVectorQuantizer: codes and z_q from the pre-update codebook, β·commitment loss,
/// perplexity, then exactly one update of the buffers.
#[test]
fn ema_quantizer_training_step_reproduces_taming() {
    let exp = read_tensors(&taming_tiny("expected.safetensors"));
    let mut vs = VarStore::new(Device::Cpu);
    vs.set_kind(Kind::Double);
    let q = EmaQuantizer::new(
        &Vars::new(&vs.root().sub("quantize")),
        32,
        8,
        0.25,
        &taming_ema_args(),
    );
    let preset = preset_state(&exp);
    tch::no_grad(|| {
        q.state().weight.shallow_clone().copy_(&preset.weight);
        q.state()
            .cluster_size
            .shallow_clone()
            .copy_(&preset.cluster_size);
        q.state().embed_avg.shallow_clone().copy_(&preset.embed_avg);
    });
    let out = q.forward_t(&exp["z"], true);
    assert_same_ints("ema.indices", &out.indices, &exp["ema.indices"]);
    assert_close("ema.zq", &out.quantized, &exp["ema.zq"], 1e-12);
    assert_close("ema.loss", &out.loss.reshape([1]), &exp["ema.loss"], 1e-12);
    assert_close(
        "ema.perplexity",
        &out.perplexity.reshape([1]),
        &exp["ema.perplexity"],
        1e-12,
    );
    let s = q.state();
    assert_close(
        "ema.weight_after",
        &s.weight,
        &exp["ema.weight_after"],
        1e-12,
    );
    assert_close(
        "ema.cluster_size_after",
        &s.cluster_size,
        &exp["ema.cluster_size_after"],
        1e-12,
    );
    assert_close(
        "ema.embed_avg_after",
        &s.embed_avg,
        &exp["ema.embed_avg_after"],
        1e-12,
    );

    // Evaluation mode never touches the state.
    let before = s.weight.copy();
    let _ = q.forward_t(&exp["z"], false);
    assert_close("eval leaves the codebook", &q.state().weight, &before, 0.0);
}

/// EMAVQ keeps taming's three state-dict names, all outside the optimizer, and a taming
/// EMAVQ state dict (autoencoder + EMA state) loads strictly and reproduces the decoder.
#[test]
fn emavq_state_is_buffers_with_taming_names() {
    let mut args = tiny_args();
    args.model_variant = ModelVariant::EMAVQ;
    let mut vs = VarStore::new(Device::Cpu);
    vs.set_kind(Kind::Double);
    let model = TamingModel::new(&vs.root(), &args).expect("EMAVQ builds");
    let vars = vs.variables();
    for key in ["weight", "cluster_size", "embed_avg"] {
        let name = format!("quantize.embedding.{key}");
        let t = vars.get(&name).unwrap_or_else(|| panic!("{name} missing"));
        assert!(!t.requires_grad(), "{name} must not be trainable");
    }
    let quantize_keys = vars.keys().filter(|k| k.starts_with("quantize.")).count();
    assert_eq!(quantize_keys, 3, "no extra EMA keys");
    let trainable = model.trainable_vars();
    assert_eq!(
        trainable.len(),
        vs.len() - 3,
        "everything but the EMA state is trainable"
    );

    // A taming EMAVQ checkpoint: the fixture's autoencoder plus EMA state.
    let dir = tempfile::tempdir().unwrap();
    let exp = read_tensors(&taming_tiny("expected.safetensors"));
    let mut file: Vec<(String, Tensor)> = read_tensors(&taming_tiny("model.safetensors"))
        .into_iter()
        .filter(|(k, _)| !k.starts_with("loss.") && k != "quantize.embedding.weight")
        .collect();
    let preset = preset_state(&exp);
    file.push((
        "quantize.embedding.weight".into(),
        preset.weight.to_kind(Kind::Float),
    ));
    file.push((
        "quantize.embedding.cluster_size".into(),
        preset.cluster_size.to_kind(Kind::Float),
    ));
    file.push((
        "quantize.embedding.embed_avg".into(),
        preset.embed_avg.to_kind(Kind::Float),
    ));
    let path = dir.path().join("emavq.safetensors");
    Tensor::write_safetensors(&file, &path).expect("write");
    load_state_dict(&vs, &path, &LoadOptions::default()).expect("strict EMAVQ load");

    let _guard = tch::no_grad_guard();
    let codes = model.encode(&exp["x"]).expect("encode");
    assert_same_ints(
        "EMAVQ codes from the preset codebook",
        &codes[0],
        &exp["ema.indices"],
    );
}
