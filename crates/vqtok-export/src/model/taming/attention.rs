//! taming's AttnBlock: single-head self-attention over the H·W positions with
//! C^-½ scaling (C = all channels), residual on the un-normalised input (spec §2.1).

use crate::error::Result;
use crate::model::{Conv2d, GroupNorm};
use crate::onnx::{Attr, GraphBuilder};

pub struct AttnBlock {
    channels: usize,
    norm: GroupNorm,
    /// q, k and v as one conv with 3C outputs (one pass over the normalised input), q's
    /// third carrying the softmax scale C^-½ (one multiply fewer per score).
    qkv: Conv2d,
    proj_out: Conv2d,
}

impl AttnBlock {
    pub fn new(g: &mut GraphBuilder, prefix: &str, c: usize) -> Result<Self> {
        let p = |s: &str| format!("{prefix}.{s}");
        let (q, k, v) = (p("q"), p("k"), p("v"));
        let parts = [(q.as_str(), (c as f64).powf(-0.5)), (&k, 1.0), (&v, 1.0)];
        Ok(AttnBlock {
            channels: c,
            norm: GroupNorm::new(g, &p("norm"), c)?,
            qkv: Conv2d::stacked_1x1(g, &parts, c, c)?,
            proj_out: Conv2d::new(g, &p("proj_out"), c, c, 1, 1, 0)?,
        })
    }

    pub fn forward(&self, g: &mut GraphBuilder, x: &str) -> String {
        let n = self.norm.forward(g, x);
        let qkv = self.qkv.forward(g, &n);
        // [N, 3C, H, W] → [N, 3, C, H·W]; q, k and v `[N, C, H·W]` are its three slices.
        let split = g.const_i64(&[0, 3, self.channels as i64, -1]);
        let qkv = g.op("Reshape", &[&qkv, &split], vec![]);
        let [q, k, v] = [0, 1, 2].map(|i| {
            let index = g.init_i64(&format!("const_i64_scalar[{i}]"), &[], &[i]);
            g.op("Gather", &[&qkv, &index], vec![Attr::Int("axis", 1)])
        });
        // scores[b, i, j] = Σ_c q[b, c, i]·k[b, c, j]
        let qt = g.op("Transpose", &[&q], vec![Attr::Ints("perm", vec![0, 2, 1])]);
        let scores = g.op("MatMul", &[&qt, &k], vec![]);
        let attn = g.op("Softmax", &[&scores], vec![Attr::Int("axis", -1)]);
        // o[b, c, i] = Σ_j v[b, c, j]·attn[b, i, j]
        let attn_t = g.op(
            "Transpose",
            &[&attn],
            vec![Attr::Ints("perm", vec![0, 2, 1])],
        );
        let o = g.op("MatMul", &[&v, &attn_t], vec![]);
        let shape = g.op("Shape", &[x], vec![]);
        let o = g.op("Reshape", &[&o, &shape], vec![]);
        let o = self.proj_out.forward(g, &o);
        g.op("Add", &[x, &o], vec![])
    }
}
