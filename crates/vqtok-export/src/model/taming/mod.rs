//! The taming-transformers family: VQModel and EMAVQ (spec §1–3). Both export the same
//! graphs: the EMA codebook is a plain codebook at inference.

mod attention;
mod decoder;
mod encoder;
mod mid;
mod resample;
mod resnet;

use attention::AttnBlock;
use decoder::Decoder;
use encoder::Encoder;
use mid::Mid;
use resample::{Downsample, Upsample};
use resnet::{NormSwishConv, ResnetBlock};

use vqtok_config::TamingArgs;

use super::{Codebook, Conv2d};
use crate::error::Result;
use crate::onnx::GraphBuilder;

/// x → encoder → quant_conv → nearest code.
pub fn encode(g: &mut GraphBuilder, a: &TamingArgs, x: &str) -> Result<Vec<String>> {
    let d = &a.ddconfig;
    let level = a.level();
    let encoder = Encoder::new(g, "encoder", d)?;
    let quant_conv = Conv2d::new(g, "quant_conv", d.z_channels, level.dim, 1, 1, 0)?;
    let codebook = Codebook::new(g, &level)?;
    let h = encoder.forward(g, x);
    let z = quant_conv.forward(g, &h);
    Ok(vec![codebook.nearest(g, &z)])
}

/// indices → codebook rows → post_quant_conv → decoder.
pub fn decode(g: &mut GraphBuilder, a: &TamingArgs, indices: &[String]) -> Result<String> {
    let d = &a.ddconfig;
    let level = a.level();
    let codebook = Codebook::new(g, &level)?;
    let post = Conv2d::new(g, "post_quant_conv", level.dim, d.z_channels, 1, 1, 0)?;
    let decoder = Decoder::new(g, "decoder", d)?;
    let q = codebook.lookup(g, &indices[0]);
    let z = post.forward(g, &q);
    Ok(decoder.forward(g, &z))
}

/// One resolution level of the encoder (`down.{i}`) or decoder (`up.{i}`): res blocks,
/// each followed by attention where the level's resolution is listed.
struct Level {
    blocks: Vec<(ResnetBlock, Option<AttnBlock>)>,
}

impl Level {
    /// `{prefix}.block.{j}` / `{prefix}.attn.{j}` for j < `n_blocks`; the first block
    /// maps `cin` to `cout`.
    fn new(
        g: &mut GraphBuilder,
        prefix: &str,
        cin: usize,
        cout: usize,
        n_blocks: usize,
        with_attn: bool,
    ) -> Result<Self> {
        let mut blocks = Vec::with_capacity(n_blocks);
        for j in 0..n_blocks {
            let c = if j == 0 { cin } else { cout };
            let block = ResnetBlock::new(g, &format!("{prefix}.block.{j}"), c, cout)?;
            let attn = if with_attn {
                Some(AttnBlock::new(g, &format!("{prefix}.attn.{j}"), cout)?)
            } else {
                None
            };
            blocks.push((block, attn));
        }
        Ok(Level { blocks })
    }

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
