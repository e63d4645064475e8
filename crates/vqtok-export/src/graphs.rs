//! The four graphs of a model folder, for every family: u8 encoder/decoder and their
//! float variants. One function builds the encoder body and one the decoder body per
//! family; the variants only differ in the pixel I/O around them.

use vqtok_config::{CodebookLevel, Config, ModelConfig};
use vqtok_runtime::{ElemType, FRAMES, GraphKind, IMAGES, PixelIo, indices_name};

use crate::error::Result;
use crate::nn::{ClassicDecoder, ClassicEncoder, Codebook, Conv2d, ConvTranspose2d};
use crate::nn::{TamingDecoder, TamingEncoder};
use crate::onnx::proto::ModelProto;
use crate::onnx::{Attr, Dim, GraphBuilder};
use crate::weights::WeightSource;

/// A graph input or output as the manifest lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Io {
    pub name: String,
    pub dtype: ElemType,
    pub shape: Vec<Dim>,
}

/// Grid dimension symbols of a level in the decoder's inputs (`h`, `h_t`, …).
fn grid_symbols(level: &CodebookLevel) -> (String, String) {
    let suffix = level.name.strip_prefix("quantize").unwrap_or("");
    (format!("h{suffix}"), format!("w{suffix}"))
}

/// The I/O of `kind` for `model`.
pub fn graph_io(model: &ModelConfig, kind: GraphKind) -> (Vec<Io>, Vec<Io>) {
    let n = || Dim::named("N");
    let c = Dim::Fixed(model.in_channels());
    let out_c = Dim::Fixed(model.output_channels());
    let levels = model.levels();
    let enc_indices: Vec<Io> = levels
        .iter()
        .map(|l| Io {
            name: indices_name(l),
            dtype: ElemType::Int64,
            shape: vec![
                n(),
                Dim::named(format!("H/{}", l.factor)),
                Dim::named(format!("W/{}", l.factor)),
            ],
        })
        .collect();
    let dec_indices: Vec<Io> = levels
        .iter()
        .map(|l| {
            let (h, w) = grid_symbols(l);
            Io {
                name: indices_name(l),
                dtype: ElemType::Int64,
                shape: vec![n(), Dim::Named(h), Dim::Named(w)],
            }
        })
        .collect();
    // The output size follows from the finest grid.
    let finest = levels
        .iter()
        .min_by_key(|l| l.factor)
        .expect("every model has a codebook");
    let (h, w) = grid_symbols(finest);
    let out_h = Dim::named(format!("{}*{h}", finest.factor));
    let out_w = Dim::named(format!("{}*{w}", finest.factor));
    let io = |name: &str, dtype, shape| Io {
        name: name.into(),
        dtype,
        shape,
    };
    match kind {
        GraphKind::Encoder => (
            vec![io(
                FRAMES,
                ElemType::Uint8,
                vec![n(), Dim::named("H"), Dim::named("W"), c],
            )],
            enc_indices,
        ),
        GraphKind::EncoderFloat => (
            vec![io(
                IMAGES,
                ElemType::Float32,
                vec![n(), c, Dim::named("H"), Dim::named("W")],
            )],
            enc_indices,
        ),
        GraphKind::Decoder => (
            dec_indices,
            vec![io(FRAMES, ElemType::Uint8, vec![n(), out_h, out_w, out_c])],
        ),
        GraphKind::DecoderFloat => (
            dec_indices,
            vec![io(
                IMAGES,
                ElemType::Float32,
                vec![n(), out_c, out_h, out_w],
            )],
        ),
    }
}

/// Appends the encoder of `model` on normalised `x`; returns one index grid per level.
fn encode(g: &mut GraphBuilder, model: &ModelConfig, x: &str) -> Result<Vec<String>> {
    Ok(match model {
        ModelConfig::Taming(a) => {
            let d = &a.ddconfig;
            let encoder = TamingEncoder::new(g, "encoder", d)?;
            let quant_conv = Conv2d::new(g, "quant_conv", d.z_channels, a.embed_dim, 1, 1, 0)?;
            let codebook = Codebook::new(g, "quantize", a.n_embed, a.embed_dim)?;
            let h = encoder.forward(g, x);
            let z = quant_conv.forward(g, &h);
            vec![codebook.nearest(g, &z)]
        }
        ModelConfig::VqVae(a) => {
            let n = a.downsample.trailing_zeros() as usize;
            let (h, rh, nr) = (a.num_hiddens, a.num_residual_hiddens, a.num_residual_layers);
            let encoder = ClassicEncoder::new(g, "encoder", a.in_channels, h, n, rh, nr)?;
            let quant_conv = Conv2d::new(g, "quant_conv", h, a.embedding_dim, 1, 1, 0)?;
            let codebook = Codebook::new(g, "quantize", a.num_embeddings, a.embedding_dim)?;
            let e = encoder.forward(g, x);
            let z = quant_conv.forward(g, &e);
            vec![codebook.nearest(g, &z)]
        }
        ModelConfig::VqVae2(a) => {
            let (c, rh, nr, d, k) = (
                a.channel,
                a.n_res_channel,
                a.n_res_block,
                a.embed_dim,
                a.n_embed,
            );
            let enc_b = ClassicEncoder::new(g, "enc_b", a.in_channels, c, 2, rh, nr)?;
            let enc_t = ClassicEncoder::new(g, "enc_t", c, c, 1, rh, nr)?;
            let conv_t = Conv2d::new(g, "quantize_conv_t", c, d, 1, 1, 0)?;
            let cb_t = Codebook::new(g, "quantize_t", k, d)?;
            let dec_t = ClassicDecoder::new(g, "dec_t", d, d, c, 1, rh, nr)?;
            let conv_b = Conv2d::new(g, "quantize_conv_b", d + c, d, 1, 1, 0)?;
            let cb_b = Codebook::new(g, "quantize_b", k, d)?;
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
            vec![it, ib]
        }
    })
}

/// Appends the decoder of `model` on index grids (one per level); returns the
/// normalised reconstruction `[N, C, H, W]`.
fn decode(g: &mut GraphBuilder, model: &ModelConfig, indices: &[String]) -> Result<String> {
    Ok(match model {
        ModelConfig::Taming(a) => {
            let d = &a.ddconfig;
            let codebook = Codebook::new(g, "quantize", a.n_embed, a.embed_dim)?;
            let post = Conv2d::new(g, "post_quant_conv", a.embed_dim, d.z_channels, 1, 1, 0)?;
            let decoder = TamingDecoder::new(g, "decoder", d)?;
            let q = codebook.lookup(g, &indices[0]);
            let z = post.forward(g, &q);
            decoder.forward(g, &z)
        }
        ModelConfig::VqVae(a) => {
            let n = a.downsample.trailing_zeros() as usize;
            let codebook = Codebook::new(g, "quantize", a.num_embeddings, a.embedding_dim)?;
            let decoder = ClassicDecoder::new(
                g,
                "decoder",
                a.embedding_dim,
                a.in_channels,
                a.num_hiddens,
                n,
                a.num_residual_hiddens,
                a.num_residual_layers,
            )?;
            let q = codebook.lookup(g, &indices[0]);
            decoder.forward(g, &q)
        }
        ModelConfig::VqVae2(a) => {
            let (c, rh, nr, d, k) = (
                a.channel,
                a.n_res_channel,
                a.n_res_block,
                a.embed_dim,
                a.n_embed,
            );
            let cb_t = Codebook::new(g, "quantize_t", k, d)?;
            let cb_b = Codebook::new(g, "quantize_b", k, d)?;
            let upsample_t = ConvTranspose2d::new(g, "upsample_t", d, d)?;
            let dec = ClassicDecoder::new(g, "dec", 2 * d, a.in_channels, c, 2, rh, nr)?;
            let qt = cb_t.lookup(g, &indices[0]);
            let qb = cb_b.lookup(g, &indices[1]);
            let ut = upsample_t.forward(g, &qt);
            let cat = g.op("Concat", &[&ut, &qb], vec![Attr::Int("axis", 1)]);
            dec.forward(g, &cat)
        }
    })
}

/// Builds graph `kind` of the model in `config` from `weights`.
pub fn build_graph(
    config: &Config,
    kind: GraphKind,
    weights: &mut dyn WeightSource,
) -> Result<(ModelProto, Vec<Io>, Vec<Io>)> {
    let model = &config.model;
    let pixels = PixelIo::new(&config.data.normalize, model.in_channels())?;
    let out_pixels = PixelIo::new(&config.data.normalize, model.output_channels())?;
    let (inputs, outputs) = graph_io(model, kind);
    let mut g = GraphBuilder::new(
        format!("vqtok_{}_{}", model.family().as_str(), kind.key()),
        weights,
    );
    let ins: Vec<String> = inputs
        .iter()
        .map(|io| g.input(&io.name, io.dtype, &io.shape))
        .collect();
    match kind {
        GraphKind::Encoder | GraphKind::EncoderFloat => {
            let x = if kind == GraphKind::Encoder {
                crate::nn::pixels::normalize(&mut g, &pixels, &ins[0])
            } else {
                ins[0].clone()
            };
            let grids = encode(&mut g, model, &x)?;
            for (grid, io) in grids.iter().zip(&outputs) {
                g.output(grid, &io.name, io.dtype, &io.shape);
            }
        }
        GraphKind::Decoder | GraphKind::DecoderFloat => {
            let recon = decode(&mut g, model, &ins)?;
            let out = if kind == GraphKind::Decoder {
                crate::nn::pixels::to_u8(&mut g, &out_pixels, &recon)
            } else {
                recon
            };
            let io = &outputs[0];
            g.output(&out, &io.name, io.dtype, &io.shape);
        }
    }
    let doc = format!(
        "vqtok {} {} ({}); see manifest.json next to this file",
        model.family().as_str(),
        kind.key(),
        config.model_type
    );
    let proto = g.into_model(
        &doc,
        &[
            ("vqtok.family", model.family().as_str().to_string()),
            ("vqtok.graph", kind.key().to_string()),
        ],
    );
    Ok((proto, inputs, outputs))
}
