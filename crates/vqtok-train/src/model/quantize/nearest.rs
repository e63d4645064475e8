//! What every codebook shares: the (B,D,h,w) ↔ (N,D) layout, nearest-code search in
//! matmul form, and the straight-through estimator.

use tch::{Kind, Tensor};

/// The precision codebook distances are computed in: f64 when either side is f64,
/// otherwise f32 — never lower, so near-ties do not flip under bf16/fp16 activations.
pub fn compute_kind(a: Kind, b: Kind) -> Kind {
    if a == Kind::Double || b == Kind::Double {
        Kind::Double
    } else {
        Kind::Float
    }
}

/// Latents `[B, D, h, w]` as `[B, h, w, D]` (a view) and `[N, D]` rows in row-major
/// (b, h, w) order, both in `kind`.
pub fn flatten(z: &Tensor, kind: Kind) -> (Tensor, Tensor) {
    let d = z.size()[1];
    let z_bhwd = z.to_kind(kind).permute([0, 2, 3, 1]);
    let z_flat = z_bhwd.reshape([-1, d]);
    (z_bhwd, z_flat)
}

/// Index of the nearest codebook row for every row of `z_flat` (`[N]` int64; the first
/// minimum on ties, as torch's argmin).
///
/// Distances are ‖z‖² + ‖e‖² − 2 z·eᵀ, the expression and operation order of taming's
/// VectorQuantizer2 (bit-level parity), and the form that maps to one GEMM (a cdist-style
/// graph is ~10× slower in ONNX Runtime). No gradient flows through argmin, so the
/// distance matrix is built without autograd, and its GEMM is [`mm_exact`], so it stays
/// in f32 or wider under autocast.
pub fn nearest_codes(z_flat: &Tensor, codebook: &Tensor) -> Tensor {
    tch::no_grad(|| {
        let kind = compute_kind(z_flat.kind(), codebook.kind());
        let z = z_flat.to_kind(kind);
        let e = codebook.to_kind(kind);
        let z2 = z.square().sum_dim_intlist(1, true, kind);
        let e2 = e.square().sum_dim_intlist(1, false, kind);
        let d = (z2 + e2) - mm_exact(&z, &e.tr()) * 2.0;
        d.argmin(1, false)
    })
}

/// `a @ b` (2-D) in the inputs' own dtype even inside an autocast region: autocast
/// rewrites only the functional `mm`, never an `out=` variant. Used where precision
/// matters more than speed (codebook distances, EMA sums), without toggling autocast
/// (tch's toggle uses deprecated libtorch calls that warn on every use).
pub fn mm_exact(a: &Tensor, b: &Tensor) -> Tensor {
    let out = Tensor::empty([a.size()[0], b.size()[1]], (a.kind(), a.device()));
    a.mm_out(&out, b)
}

/// z + sg(z_q − z), permuted back to `[B, D, h, w]`: the value of z_q with the identity
/// gradient into z.
pub fn straight_through(z_bhwd: &Tensor, zq_bhwd: &Tensor) -> Tensor {
    let st = z_bhwd + (zq_bhwd - z_bhwd).detach();
    st.permute([0, 3, 1, 2]).contiguous()
}
