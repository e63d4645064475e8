//! The four graphs of a model folder, for every family: u8 encoder/decoder and their
//! float variants. The bodies come from `model::{encode, decode}`; the variants only
//! differ in the pixel I/O around them (pixels.rs).

use vqtok_config::{CodebookLevel, Config, ModelConfig};
use vqtok_runtime::{ElemType, FRAMES, GraphKind, IMAGES, PixelIo, indices_name};

use crate::error::Result;
use crate::model::{decode, encode};
use crate::onnx::proto::ModelProto;
use crate::onnx::{Dim, GraphBuilder};
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
                crate::pixels::normalize(&mut g, &pixels, &ins[0])
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
                crate::pixels::to_u8(&mut g, &out_pixels, &recon)
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
