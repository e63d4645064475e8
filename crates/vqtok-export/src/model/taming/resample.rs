//! taming's Downsample and Upsample (spec §2.1), with or without their convolution
//! (`ddconfig.resamp_with_conv`).

use crate::error::Result;
use crate::model::Conv2d;
use crate::onnx::{Attr, GraphBuilder};

/// With conv: zero-pad right and bottom by one, then 3×3 conv with stride 2; the
/// asymmetric pad is the conv's own pads `[0, 0, 1, 1]` (identical result, no Pad
/// node). Without: 2×2 average pooling, stride 2.
pub struct Downsample {
    conv: Option<Conv2d>,
}

impl Downsample {
    pub fn new(g: &mut GraphBuilder, prefix: &str, c: usize, with_conv: bool) -> Result<Self> {
        let conv = if with_conv {
            let conv = Conv2d::new(g, &format!("{prefix}.conv"), c, c, 3, 2, 0)?;
            Some(conv.with_pads([0, 0, 1, 1]))
        } else {
            None
        };
        Ok(Downsample { conv })
    }

    pub fn forward(&self, g: &mut GraphBuilder, x: &str) -> String {
        match &self.conv {
            Some(conv) => conv.forward(g, x),
            None => g.op(
                "AveragePool",
                &[x],
                vec![
                    Attr::Ints("kernel_shape", vec![2, 2]),
                    Attr::Ints("strides", vec![2, 2]),
                ],
            ),
        }
    }
}

/// Nearest-neighbour ×2 (`asymmetric` + `floor` is PyTorch's "nearest"), then, with
/// conv, a 3×3 conv.
pub struct Upsample {
    conv: Option<Conv2d>,
}

impl Upsample {
    pub fn new(g: &mut GraphBuilder, prefix: &str, c: usize, with_conv: bool) -> Result<Self> {
        let conv = if with_conv {
            Some(Conv2d::new(g, &format!("{prefix}.conv"), c, c, 3, 1, 1)?)
        } else {
            None
        };
        Ok(Upsample { conv })
    }

    pub fn forward(&self, g: &mut GraphBuilder, x: &str) -> String {
        let scales = g.init_f32("upsample.scales", &[4], &[1.0, 1.0, 2.0, 2.0]);
        let up = g.op(
            "Resize",
            &[x, "", &scales],
            vec![
                Attr::Str("mode", "nearest"),
                Attr::Str("coordinate_transformation_mode", "asymmetric"),
                Attr::Str("nearest_mode", "floor"),
            ],
        );
        match &self.conv {
            Some(conv) => conv.forward(g, &up),
            None => up,
        }
    }
}
