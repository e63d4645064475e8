//! A codebook `[K, D]` (`<level>.embedding.weight`): nearest-code search for the
//! encoder and row lookup for the decoder.
//!
//! Distances use the matmul form d = (‖z‖² + ‖e‖²) − 2·z·Eᵀ exactly as
//! VectorQuantizer2 (spec §3.2): a cdist-style graph is ~10× slower in ORT, and the
//! same association order keeps argmin near-ties close to PyTorch's choices.

use crate::error::Result;
use crate::onnx::{Attr, GraphBuilder};
use crate::weights::Init;

pub struct Codebook {
    name: String,
    size: usize,
    dim: usize,
    /// `[K, D]` row-major.
    weight: Vec<f32>,
}

impl Codebook {
    pub fn new(g: &mut GraphBuilder, level: &str, size: usize, dim: usize) -> Result<Self> {
        let name = format!("{level}.embedding.weight");
        let weight = g.fetch(&name, &[size, dim], Init::Codebook { size })?;
        Ok(Codebook {
            name,
            size,
            dim,
            weight,
        })
    }

    /// z `[N, D, h, w]` → int64 indices `[N, h, w]` (first minimum on ties, like torch).
    pub fn nearest(&self, g: &mut GraphBuilder, z: &str) -> String {
        // Initializers are added on first use, so a decoder-only graph carries no
        // distance tables and an encoder-only graph no lookup table.
        let (size, dim) = (self.size, self.dim);
        // −2·Eᵀ `[D, K]`: scaling by −2 is exact in floating point, so
        // `z·(−2Eᵀ)` equals `−(2·(z·Eᵀ))` bit for bit.
        let mut neg2_t = vec![0f32; size * dim];
        for k in 0..size {
            for d in 0..dim {
                neg2_t[d * size + k] = -2.0 * self.weight[k * dim + d];
            }
        }
        let neg2_t = g.init_f32(
            &format!("{}:neg2_transposed", self.name),
            &[dim, size],
            &neg2_t,
        );
        // ‖e_k‖² `[K]`, summed in f32 like `torch.sum(E**2, dim=1)`.
        let sq: Vec<f32> = self
            .weight
            .chunks_exact(dim)
            .map(|row| row.iter().map(|v| v * v).sum())
            .collect();
        let sq_norms = g.init_f32(&format!("{}:squared_norms", self.name), &[size], &sq);
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

    /// indices `[N, h, w]` → code vectors `[N, D, h, w]`.
    pub fn lookup(&self, g: &mut GraphBuilder, indices: &str) -> String {
        let table = g.init_f32(&self.name, &[self.size, self.dim], &self.weight);
        let rows = g.op("Gather", &[&table, indices], vec![Attr::Int("axis", 0)]);
        g.op(
            "Transpose",
            &[&rows],
            vec![Attr::Ints("perm", vec![0, 3, 1, 2])],
        )
    }
}
