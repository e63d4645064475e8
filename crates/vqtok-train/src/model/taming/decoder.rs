//! taming's Decoder (spec §2.3).

use tch::Tensor;
use vqtok_config::DdConfig;

use super::Level;
use super::mid::Mid;
use super::resample::Upsample;
use crate::model::conv::Conv2d;
use crate::model::norm::GroupNorm;
use crate::model::vars::Vars;

/// conv_in → mid → levels from the lowest resolution up → GroupNorm → swish → conv_out.
/// The output is linear (no tanh, no clamp).
#[derive(Debug)]
pub struct Decoder {
    conv_in: Conv2d,
    mid: Mid,
    /// `up.{i}` (`up.0` is the highest resolution; num_res_blocks + 1 blocks each) and
    /// `up.{i}.upsample` on every level but 0. Indexed by level; run from the last to
    /// the first.
    up: Vec<(Level, Option<Upsample>)>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl Decoder {
    pub fn new(vs: &Vars, dd: &DdConfig) -> Self {
        let ch = dd.ch as i64;
        let levels = dd.ch_mult.len();
        let mut block_in = ch * dd.ch_mult[levels - 1] as i64;
        let mut curr_res = dd.resolution >> (levels - 1);
        let conv_in = Conv2d::new(&vs.sub("conv_in"), dd.z_channels as i64, block_in, 3, 1, 1);
        let mid = Mid::new(&vs.sub("mid"), block_in, dd.dropout);
        let mut up = Vec::with_capacity(levels);
        for i in (0..levels).rev() {
            let lv = vs.sub("up").sub(i);
            let block_out = ch * dd.ch_mult[i] as i64;
            let with_attn = dd.attn_resolutions.contains(&curr_res);
            let n = dd.num_res_blocks + 1;
            let level = Level::new(&lv, block_in, block_out, n, with_attn, dd.dropout);
            block_in = block_out;
            let upsample = (i != 0).then(|| {
                curr_res *= 2;
                Upsample::new(&lv.sub("upsample"), block_in, dd.resamp_with_conv)
            });
            up.push((level, upsample));
        }
        up.reverse();
        Decoder {
            conv_in,
            mid,
            up,
            norm_out: GroupNorm::new(&vs.sub("norm_out"), block_in),
            conv_out: Conv2d::new(&vs.sub("conv_out"), block_in, dd.out_ch as i64, 3, 1, 1),
        }
    }

    /// Latents `[B, z_channels, h, w]` → `[B, out_ch, h·f, w·f]`.
    pub fn forward_t(&self, z: &Tensor, train: bool) -> Tensor {
        let mut h = self.conv_in.forward(z);
        h = self.mid.forward_t(&h, train);
        for (level, upsample) in self.up.iter().rev() {
            h = level.forward_t(&h, train);
            if let Some(up) = upsample {
                h = up.forward(&h);
            }
        }
        self.conv_out.forward(&self.norm_out.forward(&h).silu())
    }

    /// `conv_out.weight`, `[out_ch, ch·ch_mult[0], 3, 3]`: taming's `get_last_layer`.
    pub fn last_layer(&self) -> &Tensor {
        &self.conv_out.weight
    }
}
