//! taming's Encoder and Decoder (spec §2.2–2.3), built from `ddconfig`.

use vqtok_config::DdConfig;

use super::{AttnBlock, Conv2d, Downsample, GroupNorm, ResnetBlock, Upsample, swish};
use crate::error::Result;
use crate::onnx::GraphBuilder;

/// One resolution level: res blocks, each optionally followed by attention.
struct Level {
    blocks: Vec<(ResnetBlock, Option<AttnBlock>)>,
}

impl Level {
    fn forward(&self, g: &mut GraphBuilder, x: &str) -> String {
        let mut h = x.to_string();
        for (block, attn) in &self.blocks {
            h = block.forward(g, &h);
            if let Some(a) = attn {
                h = a.forward(g, &h);
            }
        }
        h
    }
}

/// block_1 → attn_1 → block_2 at the lowest resolution.
struct Mid {
    block_1: ResnetBlock,
    attn_1: AttnBlock,
    block_2: ResnetBlock,
}

impl Mid {
    fn new(g: &mut GraphBuilder, prefix: &str, c: usize) -> Result<Self> {
        Ok(Mid {
            block_1: ResnetBlock::new(g, &format!("{prefix}.mid.block_1"), c, c)?,
            attn_1: AttnBlock::new(g, &format!("{prefix}.mid.attn_1"), c)?,
            block_2: ResnetBlock::new(g, &format!("{prefix}.mid.block_2"), c, c)?,
        })
    }

    fn forward(&self, g: &mut GraphBuilder, x: &str) -> String {
        let h = self.block_1.forward(g, x);
        let h = self.attn_1.forward(g, &h);
        self.block_2.forward(g, &h)
    }
}

/// x `[N, in_channels, H, W]` → `[N, z_channels, H/f, W/f]`.
pub struct TamingEncoder {
    conv_in: Conv2d,
    down: Vec<(Level, Option<Downsample>)>,
    mid: Mid,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl TamingEncoder {
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
            let mut blocks = Vec::with_capacity(d.num_res_blocks);
            for j in 0..d.num_res_blocks {
                let cin = if j == 0 { block_in } else { block_out };
                let block =
                    ResnetBlock::new(g, &p(&format!("down.{i}.block.{j}")), cin, block_out)?;
                let attn = if attn_here {
                    Some(AttnBlock::new(
                        g,
                        &p(&format!("down.{i}.attn.{j}")),
                        block_out,
                    )?)
                } else {
                    None
                };
                blocks.push((block, attn));
            }
            block_in = block_out;
            let downsample = if i + 1 != levels {
                curr_res /= 2;
                Some(Downsample::new(
                    g,
                    &p(&format!("down.{i}.downsample")),
                    block_out,
                    d.resamp_with_conv,
                )?)
            } else {
                None
            };
            down.push((Level { blocks }, downsample));
        }
        Ok(TamingEncoder {
            conv_in,
            down,
            mid: Mid::new(g, prefix, block_in)?,
            norm_out: GroupNorm::new(g, &p("norm_out"), block_in)?,
            conv_out: Conv2d::new(g, &p("conv_out"), block_in, d.z_channels, 3, 1, 1)?,
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
        let h = self.norm_out.forward(g, &h);
        let h = swish(g, &h);
        self.conv_out.forward(g, &h)
    }
}

/// z `[N, z_channels, h, w]` → `[N, out_ch, h·f, w·f]` (no output activation).
pub struct TamingDecoder {
    conv_in: Conv2d,
    mid: Mid,
    /// Highest level first, in execution order.
    up: Vec<(Level, Option<Upsample>)>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl TamingDecoder {
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
            let mut blocks = Vec::with_capacity(d.num_res_blocks + 1);
            for j in 0..=d.num_res_blocks {
                let block =
                    ResnetBlock::new(g, &p(&format!("up.{i}.block.{j}")), block_in, block_out)?;
                block_in = block_out;
                let attn = if attn_here {
                    Some(AttnBlock::new(
                        g,
                        &p(&format!("up.{i}.attn.{j}")),
                        block_out,
                    )?)
                } else {
                    None
                };
                blocks.push((block, attn));
            }
            let upsample = if i != 0 {
                curr_res *= 2;
                Some(Upsample::new(
                    g,
                    &p(&format!("up.{i}.upsample")),
                    block_out,
                    d.resamp_with_conv,
                )?)
            } else {
                None
            };
            up.push((Level { blocks }, upsample));
        }
        Ok(TamingDecoder {
            conv_in,
            mid,
            up,
            norm_out: GroupNorm::new(g, &p("norm_out"), block_in)?,
            conv_out: Conv2d::new(g, &p("conv_out"), block_in, d.out_ch, 3, 1, 1)?,
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
        let h = self.norm_out.forward(g, &h);
        let h = swish(g, &h);
        self.conv_out.forward(g, &h)
    }
}
