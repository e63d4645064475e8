//! taming's Downsample and Upsample (both `with_conv`, spec §2.1).

use super::Conv2d;
use crate::error::Result;
use crate::onnx::{Attr, GraphBuilder};

/// Zero-pad right and bottom by one, then 3×3 conv with stride 2. The asymmetric pad
/// is expressed as the conv's own pads `[0, 0, 1, 1]`: identical result, no Pad node.
pub struct Downsample {
    conv: Conv2d,
}

impl Downsample {
    pub fn new(g: &mut GraphBuilder, prefix: &str, c: usize) -> Result<Self> {
        Ok(Downsample {
            conv: Conv2d::with_pads(g, &format!("{prefix}.conv"), c, c, 3, 2, [0, 0, 1, 1])?,
        })
    }

    pub fn forward(&self, g: &mut GraphBuilder, x: &str) -> String {
        self.conv.forward(g, x)
    }
}

/// Nearest-neighbour ×2, then 3×3 conv. `asymmetric` + `floor` is PyTorch's "nearest".
pub struct Upsample {
    conv: Conv2d,
}

impl Upsample {
    pub fn new(g: &mut GraphBuilder, prefix: &str, c: usize) -> Result<Self> {
        Ok(Upsample {
            conv: Conv2d::new(g, &format!("{prefix}.conv"), c, c, 3, 1, 1)?,
        })
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
        self.conv.forward(g, &up)
    }
}
