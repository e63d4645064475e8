//! taming's ResnetBlock (no timestep embedding: the autoencoder passes temb_channels 0).

use tch::Tensor;

use crate::model::conv::Conv2d;
use crate::model::norm::GroupNorm;
use crate::model::vars::Vars;

/// norm1 → swish → conv1 → norm2 → swish → dropout → conv2, plus the input (through a
/// 1×1 `nin_shortcut` when the channel count changes).
#[derive(Debug)]
pub struct ResnetBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    norm2: GroupNorm,
    conv2: Conv2d,
    nin_shortcut: Option<Conv2d>,
    dropout: f64,
}

impl ResnetBlock {
    pub fn new(vs: &Vars, cin: i64, cout: i64, dropout: f64) -> Self {
        ResnetBlock {
            norm1: GroupNorm::new(&vs.sub("norm1"), cin),
            conv1: Conv2d::new(&vs.sub("conv1"), cin, cout, 3, 1, 1),
            norm2: GroupNorm::new(&vs.sub("norm2"), cout),
            conv2: Conv2d::new(&vs.sub("conv2"), cout, cout, 3, 1, 1),
            nin_shortcut: (cin != cout)
                .then(|| Conv2d::new(&vs.sub("nin_shortcut"), cin, cout, 1, 1, 0)),
            dropout,
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let h = self.conv1.forward(&self.norm1.forward(x).silu());
        let mut h = self.norm2.forward(&h).silu();
        if self.dropout > 0.0 {
            h = h.dropout(self.dropout, train);
        }
        let h = self.conv2.forward(&h);
        match &self.nin_shortcut {
            Some(conv) => conv.forward(x) + h,
            None => x + h,
        }
    }
}
