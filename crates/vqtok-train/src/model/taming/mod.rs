//! The taming-transformers family: VQModel and EMAVQ (spec §1–3), with taming's
//! state-dict names (`encoder.*`, `decoder.*`, `quantize.*`, `quant_conv.*`,
//! `post_quant_conv.*`).

mod attention;
mod decoder;
mod encoder;
mod mid;
mod resample;
mod resnet;

pub use attention::AttnBlock;
pub use decoder::Decoder;
pub use encoder::Encoder;
pub use resample::{Downsample, Upsample};
pub use resnet::ResnetBlock;

use tch::{Tensor, nn};
use vqtok_config::{ModelVariant, QuantizerKind, TamingArgs};

use super::conv::Conv2d;
use super::input::{check_images, check_indices};
use super::quantize::{Quantizer, QuantizerConfig};
use super::vars::Vars;
use super::{ModelError, ModelOutput, VqModel};

/// VQModel (gradient-trained VectorQuantizer2) or EMAVQ (EMA codebook, left out of the
/// optimizer), as `model_variant` says.
#[derive(Debug)]
pub struct TamingModel {
    encoder: Encoder,
    decoder: Decoder,
    quantize: Quantizer,
    quant_conv: Conv2d,
    post_quant_conv: Conv2d,
    trainable: Vec<Tensor>,
    in_channels: usize,
    factor: usize,
}

impl TamingModel {
    /// Builds the autoencoder under `vs` in the var store's kind and device, initialised
    /// as PyTorch does (spec §2.6).
    pub fn new(vs: &nn::Path, args: &TamingArgs) -> Result<Self, ModelError> {
        args.validate()?;
        let dd = &args.ddconfig;
        let vars = Vars::new(vs);
        let encoder = Encoder::new(&vars.sub("encoder"), dd);
        let decoder = Decoder::new(&vars.sub("decoder"), dd);
        let quantize = Quantizer::new(
            &vars.sub("quantize"),
            &QuantizerConfig::new(
                &args.level(),
                match args.model_variant {
                    ModelVariant::VQModel => QuantizerKind::Vq,
                    ModelVariant::EMAVQ => QuantizerKind::Ema,
                },
                args.beta,
                args.legacy,
                &args.ema,
            ),
        );
        let (z, d) = (dd.z_channels as i64, args.embed_dim as i64);
        let quant_conv = Conv2d::new(&vars.sub("quant_conv"), z, d, 1, 1, 0);
        let post_quant_conv = Conv2d::new(&vars.sub("post_quant_conv"), d, z, 1, 1, 0);
        Ok(TamingModel {
            encoder,
            decoder,
            quantize,
            quant_conv,
            post_quant_conv,
            trainable: vars.trainable(),
            in_channels: dd.in_channels,
            factor: dd.factor(),
        })
    }

    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    pub fn quantizer(&self) -> &Quantizer {
        &self.quantize
    }

    /// The latents the quantizer sees: quant_conv(encoder(x)), `[B, embed_dim, h, w]`.
    pub fn latents_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.quant_conv.forward(&self.encoder.forward_t(x, train))
    }

    /// Like [`latents_t`](Self::latents_t), from the encoder's output.
    pub fn quant_conv(&self, encoder_out: &Tensor) -> Tensor {
        self.quant_conv.forward(encoder_out)
    }

    /// decoder(post_quant_conv(quant)): taming's `decode`.
    pub fn decode_t(&self, quant: &Tensor, train: bool) -> Tensor {
        self.decoder
            .forward_t(&self.post_quant_conv.forward(quant), train)
    }

    fn levels(&self) -> [(i64, usize); 1] {
        [(self.quantize.codebook_size(), self.factor)]
    }

    fn to_model_kind(&self, images: &Tensor) -> Tensor {
        images.to_kind(self.quant_conv.weight.kind())
    }
}

impl VqModel for TamingModel {
    fn forward_t(&self, images: &Tensor, train: bool) -> Result<ModelOutput, ModelError> {
        check_images(images, self.in_channels, self.factor)?;
        let x = self.to_model_kind(images);
        let z = self.latents_t(&x, train);
        let q = self.quantize.forward_t(&z, train);
        Ok(ModelOutput {
            vq_loss: q.loss,
            recon: self.decode_t(&q.quantized, train),
            perplexity: vec![q.perplexity],
            indices: vec![q.indices],
        })
    }

    fn encode(&self, images: &Tensor) -> Result<Vec<Tensor>, ModelError> {
        check_images(images, self.in_channels, self.factor)?;
        let x = self.to_model_kind(images);
        Ok(tch::no_grad(|| {
            vec![self.quantize.codes(&self.latents_t(&x, false))]
        }))
    }

    fn decode_indices(&self, indices: &[Tensor]) -> Result<Tensor, ModelError> {
        check_indices(indices, &self.levels())?;
        Ok(self.decode_t(&self.quantize.embed(&indices[0]), false))
    }

    fn last_layer(&self) -> Tensor {
        self.decoder.last_layer().shallow_clone()
    }

    fn trainable_vars(&self) -> Vec<Tensor> {
        self.trainable.iter().map(Tensor::shallow_clone).collect()
    }
}

/// One resolution level of the encoder (`down.{i}`) or decoder (`up.{i}`): `block.{j}`,
/// each followed by `attn.{j}` where the level's resolution is in `attn_resolutions`.
#[derive(Debug)]
struct Level {
    blocks: Vec<ResnetBlock>,
    /// Empty, or one per block.
    attn: Vec<AttnBlock>,
}

impl Level {
    /// `n_blocks` blocks under `lv`; the first maps `cin` to `cout` channels.
    fn new(lv: &Vars, cin: i64, cout: i64, n_blocks: usize, with_attn: bool, dropout: f64) -> Self {
        let mut blocks = Vec::with_capacity(n_blocks);
        let mut attn = Vec::new();
        for j in 0..n_blocks {
            let c = if j == 0 { cin } else { cout };
            blocks.push(ResnetBlock::new(&lv.sub("block").sub(j), c, cout, dropout));
            if with_attn {
                attn.push(AttnBlock::new(&lv.sub("attn").sub(j), cout));
            }
        }
        Level { blocks, attn }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = x.shallow_clone();
        for (j, block) in self.blocks.iter().enumerate() {
            h = block.forward_t(&h, train);
            if let Some(attn) = self.attn.get(j) {
                h = attn.forward(&h);
            }
        }
        h
    }
}
