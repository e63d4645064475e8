//! taming's ResnetBlock without time embedding: norm → swish → conv, twice, plus a
//! 1×1 `nin_shortcut` when the channel count changes (spec §2.1). Dropout is a no-op
//! at inference.

use crate::error::Result;
use crate::model::{Conv2d, GroupNorm, swish};
use crate::onnx::GraphBuilder;

pub struct ResnetBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    norm2: GroupNorm,
    conv2: Conv2d,
    nin_shortcut: Option<Conv2d>,
}

impl ResnetBlock {
    pub fn new(g: &mut GraphBuilder, prefix: &str, cin: usize, cout: usize) -> Result<Self> {
        let p = |s: &str| format!("{prefix}.{s}");
        Ok(ResnetBlock {
            norm1: GroupNorm::new(g, &p("norm1"), cin)?,
            conv1: Conv2d::new(g, &p("conv1"), cin, cout, 3, 1, 1)?,
            norm2: GroupNorm::new(g, &p("norm2"), cout)?,
            conv2: Conv2d::new(g, &p("conv2"), cout, cout, 3, 1, 1)?,
            nin_shortcut: if cin != cout {
                Some(Conv2d::new(g, &p("nin_shortcut"), cin, cout, 1, 1, 0)?)
            } else {
                None
            },
        })
    }

    pub fn forward(&self, g: &mut GraphBuilder, x: &str) -> String {
        let h = self.norm1.forward(g, x);
        let h = swish(g, &h);
        let h = self.conv1.forward(g, &h);
        let h = self.norm2.forward(g, &h);
        let h = swish(g, &h);
        let h = self.conv2.forward(g, &h);
        let skip = match &self.nin_shortcut {
            Some(c) => c.forward(g, x),
            None => x.to_string(),
        };
        g.op("Add", &[&skip, &h], vec![])
    }
}
