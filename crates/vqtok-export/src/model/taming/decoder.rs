//! taming's Decoder (spec §2.3), built from `ddconfig`.

use vqtok_config::DdConfig;

use super::{Level, Mid, NormSwishConv, Upsample};
use crate::error::Result;
use crate::model::Conv2d;
use crate::onnx::GraphBuilder;

/// z `[N, z_channels, h, w]` → `[N, out_ch, h·f, w·f]`: conv_in → mid → levels from the
/// lowest resolution up (an upsample on every level but 0) → GroupNorm → swish →
/// conv_out. The output is linear (no tanh, no clamp).
pub struct Decoder {
    conv_in: Conv2d,
    mid: Mid,
    /// Highest level first, in execution order.
    up: Vec<(Level, Option<Upsample>)>,
    /// norm_out → swish → conv_out.
    out: NormSwishConv,
}

impl Decoder {
    pub fn new(g: &mut GraphBuilder, prefix: &str, d: &DdConfig) -> Result<Self> {
        let p = |s: &str| format!("{prefix}.{s}");
        let levels = d.ch_mult.len();
        let mut block_in = d.ch * d.ch_mult[levels - 1];
        let mut curr_res = d.resolution >> (levels - 1);
        let conv_in = Conv2d::new(g, &p("conv_in"), d.z_channels, block_in, 3, 1, 1)?;
        let mid = Mid::new(g, prefix, block_in)?;
        let mut up = Vec::with_capacity(levels);
        for i in (0..levels).rev() {
            let block_out = d.ch * d.ch_mult[i];
            let attn_here = d.attn_resolutions.contains(&curr_res);
            let level = Level::new(
                g,
                &p(&format!("up.{i}")),
                block_in,
                block_out,
                d.num_res_blocks + 1,
                attn_here,
            )?;
            block_in = block_out;
            let upsample = if i != 0 {
                curr_res *= 2;
                let name = p(&format!("up.{i}.upsample"));
                Some(Upsample::new(g, &name, block_out, d.resamp_with_conv)?)
            } else {
                None
            };
            up.push((level, upsample));
        }
        Ok(Decoder {
            conv_in,
            mid,
            up,
            out: NormSwishConv::new(g, (&p("norm_out"), &p("conv_out")), block_in, d.out_ch)?,
        })
    }

    pub fn forward(&self, g: &mut GraphBuilder, z: &str) -> String {
        let h = self.conv_in.forward(g, z);
        let mut h = self.mid.forward(g, &h);
        for (level, upsample) in &self.up {
            h = level.forward(g, &h);
            if let Some(us) = upsample {
                h = us.forward(g, &h);
            }
        }
        self.out.forward(g, &h)
    }
}
