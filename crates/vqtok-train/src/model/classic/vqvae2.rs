//! VQ-VAE-2 (Razavi et al. 2019, rosinality's layout), docs/models.md "VQ-VAE-2".

use tch::{Tensor, nn};
use vqtok_config::VqVae2Args;

use super::blocks::{ClassicDecoder, ClassicEncoder};
use crate::model::conv::{Conv2d, ConvTranspose2d};
use crate::model::input::{check_images, check_indices};
use crate::model::quantize::{Quantizer, QuantizerConfig};
use crate::model::vars::Vars;
use crate::model::{ModelError, ModelOutput, VqModel};

/// Pixels per token of the top and bottom grids.
const TOP: usize = 8;
const BOTTOM: usize = 4;

/// Bottom encoder (1/4) → top encoder (1/8) → top codes; the top decoder brings them back
/// to 1/4 to condition the bottom codes; the image decoder sees the upsampled top codes
/// beside the bottom codes. Index grids: top `[B, H/8, W/8]`, then bottom `[B, H/4, W/4]`.
#[derive(Debug)]
pub struct VqVae2 {
    enc_b: ClassicEncoder,
    enc_t: ClassicEncoder,
    quantize_conv_t: Conv2d,
    quantize_t: Quantizer,
    dec_t: ClassicDecoder,
    quantize_conv_b: Conv2d,
    quantize_b: Quantizer,
    upsample_t: ConvTranspose2d,
    dec: ClassicDecoder,
    trainable: Vec<Tensor>,
    in_channels: usize,
}

impl VqVae2 {
    pub fn new(vs: &nn::Path, a: &VqVae2Args) -> Result<Self, ModelError> {
        a.validate()?;
        let vars = Vars::new(vs);
        let (cin, c, rh, n_res) = (
            a.in_channels as i64,
            a.channel as i64,
            a.n_res_channel as i64,
            a.n_res_block,
        );
        let [level, _] = a.levels();
        let d = level.dim as i64;
        let codebook = QuantizerConfig::new(&level, a.quantizer, a.commitment_cost, false, &a.ema);
        let enc_b = ClassicEncoder::new(&vars.sub("enc_b"), cin, c, 2, rh, n_res);
        let enc_t = ClassicEncoder::new(&vars.sub("enc_t"), c, c, 1, rh, n_res);
        let quantize_conv_t = Conv2d::new(&vars.sub("quantize_conv_t"), c, d, 1, 1, 0);
        let quantize_t = Quantizer::new(&vars.sub("quantize_t"), &codebook);
        let dec_t = ClassicDecoder::new(&vars.sub("dec_t"), d, d, c, 1, rh, n_res);
        let quantize_conv_b = Conv2d::new(&vars.sub("quantize_conv_b"), d + c, d, 1, 1, 0);
        let quantize_b = Quantizer::new(&vars.sub("quantize_b"), &codebook);
        let upsample_t = ConvTranspose2d::new(&vars.sub("upsample_t"), d, d, 4, 2, 1);
        let dec = ClassicDecoder::new(&vars.sub("dec"), 2 * d, cin, c, 2, rh, n_res);
        Ok(VqVae2 {
            enc_b,
            enc_t,
            quantize_conv_t,
            quantize_t,
            dec_t,
            quantize_conv_b,
            quantize_b,
            upsample_t,
            dec,
            trainable: vars.trainable(),
            in_channels: a.in_channels,
        })
    }

    /// Top latents (before quantization) and the bottom encoder's features.
    fn encode_top(&self, images: &Tensor) -> (Tensor, Tensor) {
        let x = images.to_kind(self.quantize_conv_t.weight.kind());
        let b = self.enc_b.forward(&x);
        let t = self.enc_t.forward(&b);
        (self.quantize_conv_t.forward(&t), b)
    }

    /// Bottom latents (before quantization), conditioned on the quantized top.
    fn bottom_latents(&self, q_t: &Tensor, b: &Tensor) -> Tensor {
        let dec_t = self.dec_t.forward(q_t);
        self.quantize_conv_b.forward(&Tensor::cat(&[&dec_t, b], 1))
    }

    fn decode(&self, q_t: &Tensor, q_b: &Tensor) -> Tensor {
        let up_t = self.upsample_t.forward(q_t);
        self.dec.forward(&Tensor::cat(&[&up_t, q_b], 1))
    }
}

impl VqModel for VqVae2 {
    fn forward_t(&self, images: &Tensor, train: bool) -> Result<ModelOutput, ModelError> {
        check_images(images, self.in_channels, TOP)?;
        let (z_t, b) = self.encode_top(images);
        let top = self.quantize_t.forward_t(&z_t, train);
        let bottom = self
            .quantize_b
            .forward_t(&self.bottom_latents(&top.quantized, &b), train);
        Ok(ModelOutput {
            vq_loss: &top.loss + &bottom.loss,
            recon: self.decode(&top.quantized, &bottom.quantized),
            perplexity: vec![top.perplexity, bottom.perplexity],
            indices: vec![top.indices, bottom.indices],
        })
    }

    fn encode(&self, images: &Tensor) -> Result<Vec<Tensor>, ModelError> {
        check_images(images, self.in_channels, TOP)?;
        Ok(tch::no_grad(|| {
            let (z_t, b) = self.encode_top(images);
            let i_t = self.quantize_t.codes(&z_t);
            let q_t = self.quantize_t.embed(&i_t);
            let i_b = self.quantize_b.codes(&self.bottom_latents(&q_t, &b));
            vec![i_t, i_b]
        }))
    }

    fn decode_indices(&self, indices: &[Tensor]) -> Result<Tensor, ModelError> {
        check_indices(
            indices,
            &[
                (self.quantize_t.codebook_size(), TOP),
                (self.quantize_b.codebook_size(), BOTTOM),
            ],
        )?;
        Ok(self.decode(
            &self.quantize_t.embed(&indices[0]),
            &self.quantize_b.embed(&indices[1]),
        ))
    }

    fn last_layer(&self) -> Tensor {
        self.dec.last_layer().shallow_clone()
    }

    fn trainable_vars(&self) -> Vec<Tensor> {
        self.trainable.iter().map(Tensor::shallow_clone).collect()
    }
}
