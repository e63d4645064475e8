//! A codebook `[K, D]` (`<level>.embedding.weight`): row lookup for the decoder here,
//! nearest-code search for the encoder in nearest.rs. VectorQuantizer2 and the EMA
//! codebook are the same table at inference.

mod nearest;

use vqtok_config::CodebookLevel;

use crate::error::Result;
use crate::onnx::{Attr, GraphBuilder};
use crate::weights::Init;

pub struct Codebook {
    name: String,
    codebook_size: usize,
    dim: usize,
    /// `[K, D]` row-major.
    weight: Vec<f32>,
}

impl Codebook {
    pub fn new(g: &mut GraphBuilder, level: &CodebookLevel) -> Result<Self> {
        let (codebook_size, dim) = (level.codebook_size, level.dim);
        let name = format!("{}.embedding.weight", level.name);
        let init = Init::Codebook {
            size: codebook_size,
        };
        let weight = g.fetch(&name, &[codebook_size, dim], init)?;
        Ok(Codebook {
            name,
            codebook_size,
            dim,
            weight,
        })
    }

    /// indices `[N, h, w]` → code vectors `[N, D, h, w]`.
    pub fn lookup(&self, g: &mut GraphBuilder, indices: &str) -> String {
        let table = g.init_f32(&self.name, &[self.codebook_size, self.dim], &self.weight);
        let rows = g.op("Gather", &[&table, indices], vec![Attr::Int("axis", 0)]);
        g.op(
            "Transpose",
            &[&rows],
            vec![Attr::Ints("perm", vec![0, 3, 1, 2])],
        )
    }
}
