//! taming's AttnBlock: single-head self-attention over the H·W positions with
//! C^-½ scaling (C = all channels), residual on the un-normalised input (spec §2.1).

use crate::error::Result;
use crate::model::{Conv2d, GroupNorm};
use crate::onnx::{Attr, GraphBuilder};

pub struct AttnBlock {
    channels: usize,
    norm: GroupNorm,
    q: Conv2d,
    k: Conv2d,
    v: Conv2d,
    proj_out: Conv2d,
}

impl AttnBlock {
    pub fn new(g: &mut GraphBuilder, prefix: &str, c: usize) -> Result<Self> {
        Ok(AttnBlock {
            channels: c,
            norm: GroupNorm::new(g, &format!("{prefix}.norm"), c)?,
            // The softmax scale is folded into q's weights: one multiply fewer per score.
            q: Conv2d::scaled_1x1(g, &format!("{prefix}.q"), c, c, (c as f64).powf(-0.5))?,
            k: Conv2d::new(g, &format!("{prefix}.k"), c, c, 1, 1, 0)?,
            v: Conv2d::new(g, &format!("{prefix}.v"), c, c, 1, 1, 0)?,
            proj_out: Conv2d::new(g, &format!("{prefix}.proj_out"), c, c, 1, 1, 0)?,
        })
    }

    pub fn forward(&self, g: &mut GraphBuilder, x: &str) -> String {
        let n = self.norm.forward(g, x);
        let q = self.q.forward(g, &n);
        let k = self.k.forward(g, &n);
        let v = self.v.forward(g, &n);
        let flat = g.const_i64(&[0, self.channels as i64, -1]);
        let q = g.op("Reshape", &[&q, &flat], vec![]);
        let k = g.op("Reshape", &[&k, &flat], vec![]);
        let v = g.op("Reshape", &[&v, &flat], vec![]);
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
