//! The EMA codebook (taming's EMAVectorQuantizer / EmbeddingEMA, spec §3.3), shared by
//! EMAVQ, VQ-VAE and VQ-VAE-2, with the project's deviations (decision 4):
//!
//! - One update per training batch (under Lightning the original updates twice).
//! - Unused codes do not blow up: `data_init` initialises the codebook from the first
//!   training batch's encoder outputs, and `dead_code_threshold` restarts codes whose
//!   EMA cluster size fell below it on a random encoder output of the current batch,
//!   resetting their EMA state with them. Both can be switched off, which gives
//!   taming's original update (the fixture's `ema.*` entries).
//!
//! State lives in three non-trainable var-store entries with taming's names,
//! `embedding.weight`, `embedding.cluster_size` and `embedding.embed_avg`, so a real
//! taming EMAVQ state dict loads as is and a checkpoint carries everything: "already
//! initialised" is `Σ cluster_size > 0`, derived from that state, never a saved flag.
//! Restarts read nothing back to the host (they select with `where`). Whether data init
//! is due is read once a process (twice for a fresh run: it inits, then sees the state
//! initialised) and then remembered, so later steps neither wait on the device for it nor
//! draw its random rows; the random stream of every step is the same whether the run
//! started fresh or resumed.

use std::cell::Cell;

use tch::{Device, Kind, Reduction, Tensor};
use vqtok_config::EmaArgs;

use super::QuantOutput;
use super::nearest::{compute_kind, flatten, mm_exact, nearest_codes, straight_through};
use super::stats::perplexity;
use crate::dist;
use crate::model::vars::Vars;

/// The three EMA tensors (`[K, D]`, `[K]`, `[K, D]`).
#[derive(Debug)]
pub struct EmaState {
    pub weight: Tensor,
    pub cluster_size: Tensor,
    pub embed_avg: Tensor,
}

/// taming's EmbeddingEMA update, as a pure function of the state and one batch
/// (`z_flat` `[N, D]`, `indices` `[N]`):
///
/// cluster_size ← decay·cluster_size + (1 − decay)·counts
/// embed_avg ← decay·embed_avg + (1 − decay)·(one_hot(indices)ᵀ z_flat)
/// n = Σ cluster_size; smoothed = (cluster_size + eps) / (n + K·eps) · n
/// weight ← embed_avg / smoothed
pub fn ema_update(
    state: &EmaState,
    z_flat: &Tensor,
    indices: &Tensor,
    decay: f64,
    eps: f64,
) -> EmaState {
    let (counts, sums) = batch_sums(state, z_flat, indices);
    ema_apply(state, &counts, &sums, decay, eps)
}

/// One batch's per-code counts `[K]` and sums of encoder outputs `[K, D]`: what the
/// update averages in, and what the ranks of a data-parallel job add up first.
///
/// The sums use a one-hot GEMM, as taming does: deterministic on CUDA, unlike an atomic
/// index_add, and kept in the state's precision under autocast.
fn batch_sums(state: &EmaState, z_flat: &Tensor, indices: &Tensor) -> (Tensor, Tensor) {
    let kind = state.embed_avg.kind();
    let onehot = indices.one_hot(state.cluster_size.size()[0]).to_kind(kind);
    let counts = onehot.sum_dim_intlist(0, false, kind);
    let sums = mm_exact(&onehot.tr(), &z_flat.to_kind(kind));
    (counts, sums)
}

/// The EMA step of [`ema_update`] from a batch's [`batch_sums`].
fn ema_apply(state: &EmaState, counts: &Tensor, sums: &Tensor, decay: f64, eps: f64) -> EmaState {
    let kind = state.embed_avg.kind();
    let size = state.cluster_size.size()[0];
    let cluster_size = &state.cluster_size * decay + counts * (1.0 - decay);
    let embed_avg = &state.embed_avg * decay + sums * (1.0 - decay);
    let n = cluster_size.sum(kind);
    let smoothed = (&cluster_size + eps) / (&n + size as f64 * eps) * &n;
    let weight = &embed_avg / smoothed.unsqueeze(1);
    EmaState {
        weight,
        cluster_size,
        embed_avg,
    }
}

#[derive(Debug)]
pub struct EmaQuantizer {
    state: EmaState,
    beta: f64,
    args: EmaArgs,
    /// Set once a training forward found the state initialised: from then on data init
    /// is skipped without looking. Process-local (the state itself is the truth, so a
    /// step 0 whose init is undone as a skipped step is simply initialised again).
    initialised: Cell<bool>,
}

impl EmaQuantizer {
    /// State at `vs.embedding.*`, initialised as taming does: weight ~ N(0, 1),
    /// cluster_size 0, embed_avg = weight.
    pub fn new(vs: &Vars, size: i64, dim: i64, beta: f64, args: &EmaArgs) -> Self {
        let e = vs.sub("embedding");
        let w0 = Tensor::randn([size, dim], (vs.kind(), vs.device()));
        let state = EmaState {
            weight: e.buffer("weight", w0.copy()),
            cluster_size: e.buffer(
                "cluster_size",
                Tensor::zeros([size], (vs.kind(), vs.device())),
            ),
            embed_avg: e.buffer("embed_avg", w0),
        };
        EmaQuantizer {
            state,
            beta,
            args: args.clone(),
            initialised: Cell::new(false),
        }
    }

    /// The codebook, `[K, D]`.
    pub fn weight(&self) -> &Tensor {
        &self.state.weight
    }

    /// The live state (views of the var-store entries).
    pub fn state(&self) -> &EmaState {
        &self.state
    }

    /// Quantizes `z` `[B, D, h, w]`; loss β·mean((z − sg(z_q))²), commitment only.
    ///
    /// With `train`: data init first (if enabled and the state is fresh), then z_q is
    /// gathered from the codebook *before* this batch's update (as taming does), then one
    /// EMA update and the dead-code restart.
    pub fn forward_t(&self, z: &Tensor, train: bool) -> QuantOutput {
        let size = z.size();
        let (b, h, w) = (size[0], size[2], size[3]);
        let kind = compute_kind(z.kind(), self.state.weight.kind());
        let (z_bhwd, z_flat) = flatten(z, kind);
        let z_data = z_flat.detach();
        if train && self.args.data_init && !self.initialised.get() {
            self.init_from_data(&z_data);
        }
        let idx = nearest_codes(&z_data, &self.state.weight);
        let zq = self
            .state
            .weight
            .to_kind(kind)
            .index_select(0, &idx)
            .view([b, h, w, -1]);
        let loss = zq.mse_loss(&z_bhwd, Reduction::Mean) * self.beta;
        let out = QuantOutput {
            quantized: straight_through(&z_bhwd, &zq),
            loss,
            perplexity: perplexity(&idx, self.state.cluster_size.size()[0], kind),
            indices: idx.view([b, h, w]),
        };
        if train {
            self.update(&z_data, &idx);
        }
        out
    }

    /// One EMA update on a batch, then the dead-code restart, written into the state.
    ///
    /// In a data-parallel job the batch is every rank's: the counts and sums are added up
    /// over the ranks first (so the update is the one a single process would make on the
    /// whole global batch), and restarts, which draw from this rank's encoder outputs, are
    /// rank 0's, broadcast.
    fn update(&self, z_flat: &Tensor, idx: &Tensor) {
        tch::no_grad(|| {
            let (counts, sums) = batch_sums(&self.state, z_flat, idx);
            dist::sum(&[counts.shallow_clone(), sums.shallow_clone()]);
            let next = ema_apply(&self.state, &counts, &sums, self.args.decay, self.args.eps);
            assign(&self.state, &next);
            if self.args.dead_code_threshold > 0.0 {
                let dead = self.state.cluster_size.lt(self.args.dead_code_threshold);
                self.reset_codes(z_flat, &dead);
                self.broadcast_state();
            }
        });
    }

    /// Rank 0's codebook state on every rank (a no-op in a single process).
    fn broadcast_state(&self) {
        let s = &self.state;
        dist::broadcast_from_root(&[
            s.weight.shallow_clone(),
            s.cluster_size.shallow_clone(),
            s.embed_avg.shallow_clone(),
        ]);
    }

    /// Data-dependent init: on a fresh state (Σ cluster_size = 0) every code becomes an
    /// encoder output of this batch, with the EMA mass of one observation. In a
    /// data-parallel job each rank would draw from its own batch: rank 0's codebook is
    /// everyone's (every rank sees the same state, so all take the same branch).
    fn init_from_data(&self, z_flat: &Tensor) {
        tch::no_grad(|| {
            let kind = self.state.cluster_size.kind();
            let fresh = self.state.cluster_size.sum(kind).double_value(&[]) <= 0.0;
            if !fresh {
                self.initialised.set(true);
                return;
            }
            let all = self.state.cluster_size.ones_like().to_kind(Kind::Bool);
            self.reset_codes(z_flat, &all);
            self.broadcast_state();
        });
    }

    /// Codes where `mask` (`[K]` bool) is set restart on random rows of `z_flat`
    /// (distinct rows while the batch has at least K): weight = embed_avg = that row,
    /// cluster_size = 1.
    fn reset_codes(&self, z_flat: &Tensor, mask: &Tensor) {
        let s = &self.state;
        let size = s.cluster_size.size()[0];
        let rows = sample_rows(z_flat.size()[0], size, z_flat.device());
        let samples = z_flat.index_select(0, &rows).to_kind(s.weight.kind());
        let mask2 = mask.unsqueeze(1);
        let ones = s.cluster_size.ones_like();
        let next = EmaState {
            weight: samples.where_self(&mask2, &s.weight),
            cluster_size: ones.where_self(mask, &s.cluster_size),
            embed_avg: samples.where_self(&mask2, &s.embed_avg),
        };
        assign(s, &next);
    }
}

/// `k` row indices into `n` rows: a random permutation prefix when n ≥ k, otherwise
/// uniform draws with replacement.
fn sample_rows(n: i64, k: i64, device: Device) -> Tensor {
    if n >= k {
        Tensor::randperm(n, (Kind::Int64, device)).narrow(0, 0, k)
    } else {
        Tensor::randint(n, [k], (Kind::Int64, device))
    }
}

/// Copies `src` into the live state tensors in place (the var store keeps its tensors).
fn assign(dst: &EmaState, src: &EmaState) {
    dst.weight.shallow_clone().copy_(&src.weight);
    dst.cluster_size.shallow_clone().copy_(&src.cluster_size);
    dst.embed_avg.shallow_clone().copy_(&src.embed_avg);
}
