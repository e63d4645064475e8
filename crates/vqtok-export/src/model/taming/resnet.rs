//! taming's ResnetBlock without time embedding: norm → swish → conv, twice, plus a
//! 1×1 `nin_shortcut` when the channel count changes (spec §2.1). Dropout is a no-op
//! at inference.

use crate::error::Result;
use crate::model::{Conv2d, GroupNorm, swish};
use crate::onnx::GraphBuilder;

/// GroupNorm → swish → conv: the two halves of a ResnetBlock, and the output head of
/// the Encoder and Decoder (`norm_out` → swish → `conv_out`).
pub struct NormSwishConv {
    norm: GroupNorm,
    conv: Conv2d,
}

impl NormSwishConv {
    /// `norm` and `conv` name the two layers (taming's names differ by place); the conv
    /// is 3×3 with padding 1, `cin` → `cout`.
    pub fn new(
        g: &mut GraphBuilder,
        (norm, conv): (&str, &str),
        cin: usize,
        cout: usize,
    ) -> Result<Self> {
        Ok(NormSwishConv {
            norm: GroupNorm::new(g, norm, cin)?,
            conv: Conv2d::new(g, conv, cin, cout, 3, 1, 1)?,
        })
    }

    pub fn forward(&self, g: &mut GraphBuilder, x: &str) -> String {
        let h = self.norm.forward(g, x);
        let h = swish(g, &h);
        self.conv.forward(g, &h)
    }
}

pub struct ResnetBlock {
    /// (norm1, conv1) and (norm2, conv2); dropout, before conv2 in training, is a no-op
    /// at inference.
    halves: [NormSwishConv; 2],
    nin_shortcut: Option<Conv2d>,
}

impl ResnetBlock {
    pub fn new(g: &mut GraphBuilder, prefix: &str, cin: usize, cout: usize) -> Result<Self> {
        let p = |s: &str| format!("{prefix}.{s}");
        Ok(ResnetBlock {
            halves: [
                NormSwishConv::new(g, (&p("norm1"), &p("conv1")), cin, cout)?,
                NormSwishConv::new(g, (&p("norm2"), &p("conv2")), cout, cout)?,
            ],
            nin_shortcut: if cin != cout {
                Some(Conv2d::new(g, &p("nin_shortcut"), cin, cout, 1, 1, 0)?)
            } else {
                None
            },
        })
    }

    pub fn forward(&self, g: &mut GraphBuilder, x: &str) -> String {
        let [first, second] = &self.halves;
        let h = first.forward(g, x);
        let h = second.forward(g, &h);
        let skip = match &self.nin_shortcut {
            Some(c) => c.forward(g, x),
            None => x.to_string(),
        };
        g.op("Add", &[&skip, &h], vec![])
    }
}
