//! Nearest-code search. Distances use the matmul form d = (‖z‖² + ‖e‖²) − 2·z·Eᵀ
//! exactly as VectorQuantizer2 (spec §3.2): a cdist-style graph is ~10× slower in ORT,
//! and the same association order keeps argmin near-ties close to PyTorch's choices.

use super::Codebook;
use crate::onnx::{Attr, GraphBuilder};

impl Codebook {
    /// z `[N, D, h, w]` → int64 indices `[N, h, w]` (first minimum on ties, like torch).
    pub fn nearest(&self, g: &mut GraphBuilder, z: &str) -> String {
        // Initializers are added on first use, so a decoder-only graph carries no
        // distance tables and an encoder-only graph no lookup table.
        let (codebook_size, dim) = (self.codebook_size, self.dim);
        // −2·Eᵀ `[D, K]`: scaling by −2 is exact in floating point, so
        // `z·(−2Eᵀ)` equals `−(2·(z·Eᵀ))` bit for bit.
        let mut neg2_t = vec![0f32; codebook_size * dim];
        for k in 0..codebook_size {
            for d in 0..dim {
                neg2_t[d * codebook_size + k] = -2.0 * self.weight[k * dim + d];
            }
        }
        let neg2_t = g.init_f32(
            &format!("{}:neg2_transposed", self.name),
            &[dim, codebook_size],
            &neg2_t,
        );
        // ‖e_k‖² `[K]`, summed in f32 like `torch.sum(E**2, dim=1)`.
        let sq: Vec<f32> = self
            .weight
            .chunks_exact(dim)
            .map(|row| row.iter().map(|v| v * v).sum())
            .collect();
        let sq_norms = g.init_f32(
            &format!("{}:squared_norms", self.name),
            &[codebook_size],
            &sq,
        );
        let nhwd = g.op(
            "Transpose",
            &[z],
            vec![Attr::Ints("perm", vec![0, 2, 3, 1])],
        );
        let rows = g.const_i64(&[-1, self.dim as i64]);
        let flat = g.op("Reshape", &[&nhwd, &rows], vec![]);
        let zz = g.op(
            "ReduceSumSquare",
            &[&flat],
            vec![Attr::Ints("axes", vec![1]), Attr::Int("keepdims", 1)],
        );
        let norms = g.op("Add", &[&zz, &sq_norms], vec![]);
        let cross = g.op("MatMul", &[&flat, &neg2_t], vec![]);
        let dist = g.op("Add", &[&norms, &cross], vec![]);
        let idx = g.op(
            "ArgMin",
            &[&dist],
            vec![
                Attr::Int("axis", 1),
                Attr::Int("keepdims", 0),
                Attr::Int("select_last_index", 0),
            ],
        );
        let grid = g.op(
            "Shape",
            &[&nhwd],
            vec![Attr::Int("start", 0), Attr::Int("end", 3)],
        );
        g.op("Reshape", &[&idx, &grid], vec![])
    }
}
