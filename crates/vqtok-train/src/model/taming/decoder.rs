//! taming's Decoder (spec §2.3).

use tch::Tensor;
use vqtok_config::DdConfig;

use super::attention::AttnBlock;
use super::mid::Mid;
use super::resample::Upsample;
use super::resnet::ResnetBlock;
use crate::model::conv::Conv2d;
use crate::model::norm::GroupNorm;
use crate::model::vars::Vars;

/// One resolution level, `up.{i}` (`up.0` is the highest resolution): num_res_blocks + 1
/// `block.{j}`, `attn.{j}` where the resolution is listed, `upsample` on every level but 0.
#[derive(Debug)]
struct UpLevel {
    blocks: Vec<ResnetBlock>,
    attn: Vec<AttnBlock>,
    upsample: Option<Upsample>,
}

/// conv_in → mid → levels from the lowest resolution up → GroupNorm → swish → conv_out.
/// The output is linear (no tanh, no clamp).
#[derive(Debug)]
pub struct Decoder {
    conv_in: Conv2d,
    mid: Mid,
    /// Indexed by level; run from the last to the first.
    up: Vec<UpLevel>,
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
        let mut up: Vec<UpLevel> = Vec::with_capacity(levels);
        for i in (0..levels).rev() {
            let lv = vs.sub("up").sub(i);
            let block_out = ch * dd.ch_mult[i] as i64;
            let with_attn = dd.attn_resolutions.contains(&curr_res);
            let mut blocks = Vec::new();
            let mut attn = Vec::new();
            for j in 0..=dd.num_res_blocks {
                blocks.push(ResnetBlock::new(
                    &lv.sub("block").sub(j),
                    block_in,
                    block_out,
                    dd.dropout,
                ));
                block_in = block_out;
                if with_attn {
                    attn.push(AttnBlock::new(&lv.sub("attn").sub(j), block_in));
                }
            }
            let upsample = (i != 0).then(|| {
                curr_res *= 2;
                Upsample::new(&lv.sub("upsample"), block_in, dd.resamp_with_conv)
            });
            up.push(UpLevel {
                blocks,
                attn,
                upsample,
            });
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
        for level in self.up.iter().rev() {
            for (j, block) in level.blocks.iter().enumerate() {
                h = block.forward_t(&h, train);
                if let Some(attn) = level.attn.get(j) {
                    h = attn.forward(&h);
                }
            }
            if let Some(up) = &level.upsample {
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
