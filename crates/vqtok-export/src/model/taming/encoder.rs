//! taming's Encoder (spec §2.2), built from `ddconfig`.

use vqtok_config::DdConfig;

use super::{Downsample, Level, Mid, NormSwishConv};
use crate::error::Result;
use crate::model::Conv2d;
use crate::onnx::GraphBuilder;

/// x `[N, in_channels, H, W]` → `[N, z_channels, H/f, W/f]`: conv_in → levels (with a
/// downsample on every level but the last) → mid → GroupNorm → swish → conv_out.
pub struct Encoder {
    conv_in: Conv2d,
    down: Vec<(Level, Option<Downsample>)>,
    mid: Mid,
    /// norm_out → swish → conv_out.
    out: NormSwishConv,
}

impl Encoder {
    pub fn new(g: &mut GraphBuilder, prefix: &str, d: &DdConfig) -> Result<Self> {
        let p = |s: &str| format!("{prefix}.{s}");
        let conv_in = Conv2d::new(g, &p("conv_in"), d.in_channels, d.ch, 3, 1, 1)?;
        let levels = d.ch_mult.len();
        let mut down = Vec::with_capacity(levels);
        let mut curr_res = d.resolution;
        let mut block_in = d.ch;
        for (i, &mult) in d.ch_mult.iter().enumerate() {
            let block_out = d.ch * mult;
            let attn_here = d.attn_resolutions.contains(&curr_res);
            let level = Level::new(
                g,
                &p(&format!("down.{i}")),
                block_in,
                block_out,
                d.num_res_blocks,
                attn_here,
            )?;
            block_in = block_out;
            let downsample = if i + 1 != levels {
                curr_res /= 2;
                let name = p(&format!("down.{i}.downsample"));
                Some(Downsample::new(g, &name, block_out, d.resamp_with_conv)?)
            } else {
                None
            };
            down.push((level, downsample));
        }
        Ok(Encoder {
            conv_in,
            down,
            mid: Mid::new(g, prefix, block_in)?,
            out: NormSwishConv::new(g, (&p("norm_out"), &p("conv_out")), block_in, d.z_channels)?,
        })
    }

    pub fn forward(&self, g: &mut GraphBuilder, x: &str) -> String {
        let mut h = self.conv_in.forward(g, x);
        for (level, downsample) in &self.down {
            h = level.forward(g, &h);
            if let Some(ds) = downsample {
                h = ds.forward(g, &h);
            }
        }
        let h = self.mid.forward(g, &h);
        self.out.forward(g, &h)
    }
}
