//! VQ-VAE-2 (docs/models.md, "VQ-VAE-2"): a bottom encoder at f4 and a top encoder at
//! f8, each with its own codebook; the bottom level is conditioned on the decoded top
//! codes, and the decoder sees both.

use vqtok_config::VqVae2Args;

use super::{ClassicDecoder, ClassicEncoder};
use crate::error::Result;
use crate::model::{Codebook, Conv2d, ConvTranspose2d};
use crate::onnx::{Attr, GraphBuilder};

/// Returns `[top, bottom]` index grids.
pub fn encode(g: &mut GraphBuilder, a: &VqVae2Args, x: &str) -> Result<Vec<String>> {
    let (c, rh, nr) = (a.channel, a.n_res_channel, a.n_res_block);
    let [top, bottom] = a.levels();
    let d = top.dim;
    let enc_b = ClassicEncoder::new(g, "enc_b", a.in_channels, c, 2, rh, nr)?;
    let enc_t = ClassicEncoder::new(g, "enc_t", c, c, 1, rh, nr)?;
    let conv_t = Conv2d::new(g, "quantize_conv_t", c, d, 1, 1, 0)?;
    let cb_t = Codebook::new(g, &top)?;
    let dec_t = ClassicDecoder::new(g, "dec_t", d, d, c, 1, rh, nr)?;
    let conv_b = Conv2d::new(g, "quantize_conv_b", d + c, d, 1, 1, 0)?;
    let cb_b = Codebook::new(g, &bottom)?;
    let b = enc_b.forward(g, x);
    let t = enc_t.forward(g, &b);
    let zt = conv_t.forward(g, &t);
    let it = cb_t.nearest(g, &zt);
    // The bottom level is conditioned on the top codes as the decoder will see
    // them: codebook rows (the straight-through value equals them up to rounding).
    let qt = cb_t.lookup(g, &it);
    let dt = dec_t.forward(g, &qt);
    let cat = g.op("Concat", &[&dt, &b], vec![Attr::Int("axis", 1)]);
    let zb = conv_b.forward(g, &cat);
    let ib = cb_b.nearest(g, &zb);
    Ok(vec![it, ib])
}

/// `[top, bottom]` index grids → normalised images.
pub fn decode(g: &mut GraphBuilder, a: &VqVae2Args, indices: &[String]) -> Result<String> {
    let (c, rh, nr) = (a.channel, a.n_res_channel, a.n_res_block);
    let [top, bottom] = a.levels();
    let d = top.dim;
    let cb_t = Codebook::new(g, &top)?;
    let cb_b = Codebook::new(g, &bottom)?;
    let upsample_t = ConvTranspose2d::new(g, "upsample_t", d, d)?;
    let dec = ClassicDecoder::new(g, "dec", 2 * d, a.in_channels, c, 2, rh, nr)?;
    let qt = cb_t.lookup(g, &indices[0]);
    let qb = cb_b.lookup(g, &indices[1]);
    let ut = upsample_t.forward(g, &qt);
    let cat = g.op("Concat", &[&ut, &qb], vec![Attr::Int("axis", 1)]);
    Ok(dec.forward(g, &cat))
}
