//! taming's Downsample and Upsample.

use tch::Tensor;

use crate::model::conv::Conv2d;
use crate::model::vars::Vars;

/// With conv: zero-pad right and bottom by one (asymmetric: (0, 1, 0, 1)), then a 3×3
/// stride-2 conv without padding; H → H/2 for even H. Without: 2×2 average pooling.
#[derive(Debug)]
pub struct Downsample {
    conv: Option<Conv2d>,
}

impl Downsample {
    pub fn new(vs: &Vars, channels: i64, with_conv: bool) -> Self {
        Downsample {
            conv: with_conv.then(|| Conv2d::new(&vs.sub("conv"), channels, channels, 3, 2, 0)),
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        match &self.conv {
            Some(conv) => conv.forward(&x.constant_pad_nd([0, 1, 0, 1])),
            None => x.avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None),
        }
    }
}

/// Nearest-neighbour ×2, then (with conv) a 3×3 conv.
#[derive(Debug)]
pub struct Upsample {
    conv: Option<Conv2d>,
}

impl Upsample {
    pub fn new(vs: &Vars, channels: i64, with_conv: bool) -> Self {
        Upsample {
            conv: with_conv.then(|| Conv2d::new(&vs.sub("conv"), channels, channels, 3, 1, 1)),
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let size = x.size();
        let up = x.upsample_nearest2d([size[2] * 2, size[3] * 2], 2.0, 2.0);
        match &self.conv {
            Some(conv) => conv.forward(&up),
            None => up,
        }
    }
}
