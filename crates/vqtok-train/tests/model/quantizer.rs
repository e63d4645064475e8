//! Quantizers and codebook statistics against hand-computed values, and the EMA
//! codebook's behaviour over many updates.

use crate::support::{assert_close, assert_same_ints};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use vqtok_config::EmaArgs;
use vqtok_train::model::{
    CodebookUsage, EmaQuantizer, Vars, VectorQuantizer, batch_stats, dead_codes, perplexity,
};

const F64: (Kind, Device) = (Kind::Double, Device::Cpu);

fn f64_store() -> VarStore {
    let mut vs = VarStore::new(Device::Cpu);
    vs.set_kind(Kind::Double);
    vs
}

/// Codebook e0 = (0, 0), e1 = (1, 0), e2 = (0, 2); latents (0.9, 0.1) and (0.1, 1.5)
/// as a 1×2×1×2 grid. Nearest: e1 (d² 0.02 vs 0.82) and e2 (0.26 vs 2.26).
fn hand_quantizer(vs: &VarStore, legacy: bool) -> (VectorQuantizer, Tensor) {
    let q = VectorQuantizer::new(&Vars::new(&vs.root().sub("quantize")), 3, 2, 0.25, legacy);
    let e = Tensor::from_slice(&[0.0, 0.0, 1.0, 0.0, 0.0, 2.0]).view([3, 2]);
    tch::no_grad(|| q.weight.shallow_clone().copy_(&e));
    // [B=1, D=2, h=1, w=2]: channel 0 holds the x coordinates, channel 1 the y.
    let z = Tensor::from_slice(&[0.9, 0.1, 0.1, 1.5])
        .view([1, 2, 1, 2])
        .set_requires_grad(true);
    (q, z)
}

#[test]
fn vq_codes_loss_and_straight_through_match_hand_values() {
    for legacy in [true, false] {
        let vs = f64_store();
        let (q, z) = hand_quantizer(&vs, legacy);
        let out = q.forward(&z);
        assert_same_ints(
            "indices",
            &out.indices,
            &Tensor::from_slice(&[1i64, 2]).view([1, 1, 2]),
        );
        let zq = Tensor::from_slice(&[1.0, 0.0, 0.0, 2.0]).view([1, 2, 1, 2]);
        assert_close("z_q", &out.quantized, &zq, 1e-15);
        // (z_q − z)² = 0.01, 0.01, 0.01, 0.25: mean 0.07 for both terms, so the loss is
        // 0.07·(1 + β) either way; the flag moves β between the gradients.
        assert!((out.loss.double_value(&[]) - 0.0875).abs() < 1e-15);
        // Perplexity of two distinct codes in two positions: 2.
        assert!((out.perplexity.double_value(&[]) - 2.0).abs() < 1e-9);

        let grads = Tensor::run_backward(&[&out.loss], &[&z, &q.weight], false, false);
        let (commit_w, code_w) = if legacy { (1.0, 0.25) } else { (0.25, 1.0) };
        // d/dz of w·mean((sg(z_q) − z)²) = w·2(z − z_q)/4.
        let want_z = (&z.detach() - &zq) * (commit_w * 0.5);
        assert_close("dL/dz", &grads[0], &want_z, 1e-14);
        // d/de_k of w·mean((e_k − sg(z))²) over the positions that chose k.
        let want_e =
            Tensor::from_slice(&[0.0, 0.0, 0.1, -0.1, -0.1, 0.5]).view([3, 2]) * (code_w * 0.5);
        assert_close("dL/dE", &grads[1], &want_e, 1e-14);

        // Straight-through: the output's gradient reaches z unchanged.
        let (q2, z2) = hand_quantizer(&f64_store(), legacy);
        let s = q2.forward(&z2).quantized.sum(Kind::Double);
        let g = Tensor::run_backward(&[&s], &[&z2], false, false);
        assert_close("straight-through", &g[0], &z2.ones_like(), 0.0);
    }
}

#[test]
fn ties_pick_the_first_code() {
    let vs = f64_store();
    let q = VectorQuantizer::new(&Vars::new(&vs.root()), 3, 1, 0.25, true);
    let e = Tensor::from_slice(&[5.0, -1.0, 1.0]).view([3, 1]);
    tch::no_grad(|| q.weight.shallow_clone().copy_(&e));
    let z = Tensor::zeros([1, 1, 1, 1], F64); // equidistant from e1 and e2
    assert_eq!(q.forward(&z).indices.int64_value(&[0, 0, 0]), 1);
}

/// Distances stay in f32 for bf16 latents: the codes equal those of the same values in f32.
#[test]
fn low_precision_latents_are_quantized_in_f32() {
    let _rng = crate::support::seeded(1);
    let vs = VarStore::new(Device::Cpu);
    let q = VectorQuantizer::new(&Vars::new(&vs.root()), 64, 8, 0.25, true);
    let z = Tensor::randn([2, 8, 4, 4], (Kind::Float, Device::Cpu)).to_kind(Kind::BFloat16) * 0.02;
    let out = q.forward(&z);
    assert_eq!(out.loss.kind(), Kind::Float);
    let reference = q.forward(&z.to_kind(Kind::Float));
    assert_same_ints("codes", &out.indices, &reference.indices);
}

#[test]
fn batch_statistics_match_hand_values() {
    // Codes 0, 0, 1, 3 of K = 4: three used; p = (½, ¼, 0, ¼),
    // entropy = ½ln2 + 2·¼ln4 = 1.5 ln 2, perplexity = 2^1.5 = 2√2.
    let idx = Tensor::from_slice(&[0i64, 0, 1, 3]).view([1, 2, 2]);
    let s = batch_stats(&idx, 4);
    assert_eq!(s.used, 3);
    assert!((s.usage - 0.75).abs() < 1e-15);
    let want = 2.0 * 2f64.sqrt();
    assert!(
        (s.perplexity - want).abs() < 1e-8,
        "perplexity {}",
        s.perplexity
    );
    let p = perplexity(&idx, 4, Kind::Double).double_value(&[]);
    assert!((p - want).abs() < 1e-8, "tensor perplexity {p}");
    // One code only: perplexity 1; every code once: K.
    let one = Tensor::zeros([1, 3, 3], (Kind::Int64, Device::Cpu));
    assert!((batch_stats(&one, 16).perplexity - 1.0).abs() < 1e-8);
    let all = Tensor::arange(16, (Kind::Int64, Device::Cpu)).view([1, 4, 4]);
    assert!((batch_stats(&all, 16).perplexity - 16.0).abs() < 1e-6);
}

#[test]
fn cumulative_usage_counts_and_dead_codes() {
    let mut usage = CodebookUsage::new(5, Device::Cpu);
    usage.update(&Tensor::from_slice(&[0i64, 0, 1, 3]).view([1, 2, 2]));
    usage.update(&Tensor::from_slice(&[3i64, 2]).view([1, 1, 2]));
    assert_eq!(usage.counts(), vec![2, 1, 1, 2, 0]);
    assert_eq!(usage.dead_codes(1), 1); // code 4 never used
    assert_eq!(usage.dead_codes(2), 3); // codes 1, 2 and 4 used fewer than twice
    assert!((usage.usage() - 0.8).abs() < 1e-15);
    assert_eq!(dead_codes(&[0, 5, 0], 1), 2);
    usage.reset();
    assert_eq!(usage.counts(), vec![0; 5]);
}

/// Codes alive after 50 training updates on fresh N(0, 1) batches (512 latents of
/// dimension 16, K = 256): distinct codes the last 10 batches used.
fn alive_after_50_updates(args: &EmaArgs) -> usize {
    let _rng = crate::support::seeded(7);
    let vs = f64_store();
    let q = EmaQuantizer::new(&Vars::new(&vs.root()), 256, 16, 0.25, args);
    let mut usage = CodebookUsage::new(256, Device::Cpu);
    for step in 0..50 {
        let out = q.forward_t(&Tensor::randn([8, 16, 8, 8], F64), true);
        if step >= 40 {
            usage.update(&out.indices);
        }
    }
    256 - usage.dead_codes(1)
}

#[test]
fn ema_keeps_codes_alive_where_taming_collapses() {
    let ours = alive_after_50_updates(&EmaArgs::default());
    eprintln!("codes alive after 50 updates: {ours}/256 (data init + restarts)");
    assert!(
        ours >= 128,
        "only {ours}/256 codes alive with data init + restarts"
    );
    let taming = alive_after_50_updates(&EmaArgs {
        data_init: false,
        dead_code_threshold: 0.0,
        ..EmaArgs::default()
    });
    eprintln!("codes alive after 50 updates: {taming}/256 (taming's update)");
    assert!(
        taming <= 4,
        "taming's update should collapse, kept {taming}"
    );
}

/// A code no batch selects decays below the threshold and restarts on an encoder output
/// with fresh EMA state (cluster size 1, embed_avg = weight).
#[test]
fn dead_codes_restart_on_batch_latents() {
    let _rng = crate::support::seeded(3);
    let vs = f64_store();
    let args = EmaArgs {
        decay: 0.5,
        eps: 1e-5,
        data_init: false,
        dead_code_threshold: 0.3,
    };
    let q = EmaQuantizer::new(&Vars::new(&vs.root()), 4, 2, 0.25, &args);
    let far = Tensor::from_slice(&[0.0, 0.0, 1.0, 1.0, -1.0, 1.0, 1000.0, 1000.0]).view([4, 2]);
    tch::no_grad(|| {
        let s = q.state();
        s.weight.shallow_clone().copy_(&far);
        s.embed_avg.shallow_clone().copy_(&far);
        let _ = s.cluster_size.shallow_clone().fill_(1.0);
    });
    // One update: code 3 unused, cluster size 1 → 0.5 (above 0.3): not restarted yet.
    let batch = || Tensor::randn([2, 2, 4, 4], F64) * 0.5;
    let _ = q.forward_t(&batch(), true);
    assert!(q.state().weight.double_value(&[3, 0]) > 900.0);
    // Second update: 0.5 → 0.25 < 0.3: restarted on a latent of this batch.
    let z = batch();
    let _ = q.forward_t(&z, true);
    let s = q.state();
    let w3 = s.weight.get(3);
    let rows = z.permute([0, 2, 3, 1]).reshape([-1, 2]);
    let nearest = (&rows - &w3)
        .square()
        .sum_dim_intlist(1, false, Kind::Double)
        .min();
    assert_eq!(
        nearest.double_value(&[]),
        0.0,
        "restarted code is a batch latent"
    );
    assert_eq!(s.cluster_size.double_value(&[3]), 1.0);
    assert_close(
        "embed_avg of the restarted code",
        &s.embed_avg.get(3),
        &w3,
        0.0,
    );
}

/// A 64-code, 4-dim EMA quantizer with the default EMA settings, as `quantize` in its own
/// f64 store.
fn default_ema_quantizer() -> (VarStore, EmaQuantizer) {
    let vs = f64_store();
    let q = EmaQuantizer::new(
        &Vars::new(&vs.root().sub("quantize")),
        64,
        4,
        0.25,
        &EmaArgs::default(),
    );
    (vs, q)
}

/// Data init happens once, on a fresh state, and "initialised" is read from the saved
/// state: a quantizer restored from a checkpoint continues exactly like the original.
#[test]
fn data_init_is_derived_from_state_so_resume_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ema.safetensors");
    let _rng = crate::support::seeded(11);
    let (vs_a, a) = default_ema_quantizer();
    assert_eq!(
        a.state().cluster_size.sum(Kind::Double).double_value(&[]),
        0.0
    );
    let first = Tensor::randn([4, 4, 8, 8], F64);
    let out = a.forward_t(&first, true);
    // Every code started on a latent of the first batch, so (nearly) all are used at once.
    assert!(batch_stats(&out.indices, 64).used >= 48);
    assert!(a.state().cluster_size.sum(Kind::Double).double_value(&[]) > 0.0);
    vqtok_train::state_dict::save_state_dict(&path, &[("", &vs_a)]).expect("save");

    tch::manual_seed(12);
    let (vs_b, b) = default_ema_quantizer();
    vqtok_train::state_dict::load_state_dict(&vs_b, &path, &Default::default()).expect("load");
    let second = Tensor::randn([4, 4, 8, 8], F64);
    tch::manual_seed(13);
    let _ = a.forward_t(&second, true);
    tch::manual_seed(13);
    let _ = b.forward_t(&second, true);
    assert_close("weight", &b.state().weight, &a.state().weight, 0.0);
    assert_close(
        "cluster_size",
        &b.state().cluster_size,
        &a.state().cluster_size,
        0.0,
    );
    assert_close("embed_avg", &b.state().embed_avg, &a.state().embed_avg, 0.0);
}

/// Once initialised, a training forward neither re-checks data init on the device nor
/// draws its random rows: with restarts off, it consumes no random numbers at all (it
/// used to draw a permutation of the batch every step for an init that never happened).
#[test]
fn an_initialised_codebook_draws_nothing_for_data_init() {
    let _rng = crate::support::seeded(5);
    let vs = f64_store();
    let args = EmaArgs {
        dead_code_threshold: 0.0,
        ..EmaArgs::default()
    };
    let q = EmaQuantizer::new(&Vars::new(&vs.root().sub("quantize")), 64, 4, 0.25, &args);
    let _ = q.forward_t(&Tensor::randn([4, 4, 8, 8], F64), true);
    let batch = Tensor::randn([4, 4, 8, 8], F64);
    tch::manual_seed(21);
    let untouched = Tensor::rand([1], F64).double_value(&[0]);
    tch::manual_seed(21);
    let _ = q.forward_t(&batch, true);
    let after = Tensor::rand([1], F64).double_value(&[0]);
    assert_eq!(after, untouched, "the forward drew random numbers");
}
