//! VQ-VAE (docs/models.md, "VQ-VAE"): encoder → quant_conv → one codebook → decoder.

use vqtok_config::VqVaeArgs;

use super::{ClassicDecoder, ClassicEncoder};
use crate::error::Result;
use crate::model::{Codebook, Conv2d};
use crate::onnx::GraphBuilder;

/// log2 of the downsampling factor: the number of stride-2 stages.
fn stages(a: &VqVaeArgs) -> usize {
    a.downsample.trailing_zeros() as usize
}

pub fn encode(g: &mut GraphBuilder, a: &VqVaeArgs, x: &str) -> Result<Vec<String>> {
    let (h, rh, nr) = (a.num_hiddens, a.num_residual_hiddens, a.num_residual_layers);
    let level = a.level();
    let encoder = ClassicEncoder::new(g, "encoder", a.in_channels, h, stages(a), rh, nr)?;
    let quant_conv = Conv2d::new(g, "quant_conv", h, level.dim, 1, 1, 0)?;
    let codebook = Codebook::new(g, &level)?;
    let e = encoder.forward(g, x);
    let z = quant_conv.forward(g, &e);
    Ok(vec![codebook.nearest(g, &z)])
}

pub fn decode(g: &mut GraphBuilder, a: &VqVaeArgs, indices: &[String]) -> Result<String> {
    let (h, rh, nr) = (a.num_hiddens, a.num_residual_hiddens, a.num_residual_layers);
    let level = a.level();
    let codebook = Codebook::new(g, &level)?;
    let decoder =
        ClassicDecoder::new(g, "decoder", level.dim, a.in_channels, h, stages(a), rh, nr)?;
    let q = codebook.lookup(g, &indices[0]);
    Ok(decoder.forward(g, &q))
}
