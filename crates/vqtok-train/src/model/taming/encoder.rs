//! taming's Encoder (spec §2.2).

use tch::Tensor;
use vqtok_config::DdConfig;

use super::Level;
use super::mid::Mid;
use super::resample::Downsample;
use crate::model::conv::Conv2d;
use crate::model::norm::GroupNorm;
use crate::model::vars::Vars;

/// conv_in → levels (ResnetBlocks, attention where the resolution is listed, downsample)
/// → mid → GroupNorm → swish → conv_out to z_channels (2·z_channels with double_z).
#[derive(Debug)]
pub struct Encoder {
    conv_in: Conv2d,
    /// `down.{i}`: a level, then `down.{i}.downsample` on every level but the last.
    down: Vec<(Level, Option<Downsample>)>,
    mid: Mid,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl Encoder {
    pub fn new(vs: &Vars, dd: &DdConfig) -> Self {
        let ch = dd.ch as i64;
        let levels = dd.ch_mult.len();
        let conv_in = Conv2d::new(&vs.sub("conv_in"), dd.in_channels as i64, ch, 3, 1, 1);
        let mut curr_res = dd.resolution;
        let mut block_in = ch;
        let mut down = Vec::with_capacity(levels);
        for (i, &mult) in dd.ch_mult.iter().enumerate() {
            let lv = vs.sub("down").sub(i);
            let block_out = ch * mult as i64;
            let with_attn = dd.attn_resolutions.contains(&curr_res);
            let n = dd.num_res_blocks;
            let level = Level::new(&lv, block_in, block_out, n, with_attn, dd.dropout);
            block_in = block_out;
            let downsample = (i + 1 != levels).then(|| {
                curr_res /= 2;
                Downsample::new(&lv.sub("downsample"), block_in, dd.resamp_with_conv)
            });
            down.push((level, downsample));
        }
        let z_out = if dd.double_z { 2 } else { 1 } * dd.z_channels as i64;
        Encoder {
            conv_in,
            down,
            mid: Mid::new(&vs.sub("mid"), block_in, dd.dropout),
            norm_out: GroupNorm::new(&vs.sub("norm_out"), block_in),
            conv_out: Conv2d::new(&vs.sub("conv_out"), block_in, z_out, 3, 1, 1),
        }
    }

    /// Images `[B, in_channels, H, W]` → `[B, z_channels, H/f, W/f]`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = self.conv_in.forward(x);
        for (level, downsample) in &self.down {
            h = level.forward_t(&h, train);
            if let Some(down) = downsample {
                h = down.forward(&h);
            }
        }
        let h = self.mid.forward_t(&h, train);
        self.conv_out.forward(&self.norm_out.forward(&h).silu())
    }
}
