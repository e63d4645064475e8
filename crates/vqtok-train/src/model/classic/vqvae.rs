//! VQ-VAE (van den Oord et al. 2017, Sonnet layout), docs/models.md "VQ-VAE".

use tch::{Tensor, nn};
use vqtok_config::VqVaeArgs;

use super::blocks::{ClassicDecoder, ClassicEncoder};
use crate::model::conv::Conv2d;
use crate::model::input::{check_images, check_indices};
use crate::model::quantize::{Quantizer, QuantizerConfig};
use crate::model::vars::Vars;
use crate::model::{ModelError, ModelOutput, VqModel};

/// `encoder` → `quant_conv` (1×1 to D) → `quantize` → `decoder`; one index grid at 1/2ⁿ.
#[derive(Debug)]
pub struct VqVae {
    encoder: ClassicEncoder,
    quant_conv: Conv2d,
    quantize: Quantizer,
    decoder: ClassicDecoder,
    trainable: Vec<Tensor>,
    in_channels: usize,
    factor: usize,
}

impl VqVae {
    pub fn new(vs: &nn::Path, a: &VqVaeArgs) -> Result<Self, ModelError> {
        a.validate()?;
        let vars = Vars::new(vs);
        let n = a.downsample.trailing_zeros() as usize;
        let (cin, h, rh) = (
            a.in_channels as i64,
            a.num_hiddens as i64,
            a.num_residual_hiddens as i64,
        );
        let level = a.level();
        let d = level.dim as i64;
        let encoder =
            ClassicEncoder::new(&vars.sub("encoder"), cin, h, n, rh, a.num_residual_layers);
        let quant_conv = Conv2d::new(&vars.sub("quant_conv"), h, d, 1, 1, 0);
        let quantize = Quantizer::new(
            &vars.sub("quantize"),
            &QuantizerConfig::new(&level, a.quantizer, a.commitment_cost, false, &a.ema),
        );
        let decoder = ClassicDecoder::new(
            &vars.sub("decoder"),
            d,
            cin,
            h,
            n,
            rh,
            a.num_residual_layers,
        );
        Ok(VqVae {
            encoder,
            quant_conv,
            quantize,
            decoder,
            trainable: vars.trainable(),
            in_channels: a.in_channels,
            factor: a.downsample,
        })
    }

    pub fn quantizer(&self) -> &Quantizer {
        &self.quantize
    }

    fn latents(&self, images: &Tensor) -> Tensor {
        let x = images.to_kind(self.quant_conv.weight.kind());
        self.quant_conv.forward(&self.encoder.forward(&x))
    }
}

impl VqModel for VqVae {
    fn forward_t(&self, images: &Tensor, train: bool) -> Result<ModelOutput, ModelError> {
        check_images(images, self.in_channels, self.factor)?;
        let q = self.quantize.forward_t(&self.latents(images), train);
        Ok(ModelOutput {
            vq_loss: q.loss,
            recon: self.decoder.forward(&q.quantized),
            perplexity: vec![q.perplexity],
            indices: vec![q.indices],
        })
    }

    fn encode(&self, images: &Tensor) -> Result<Vec<Tensor>, ModelError> {
        check_images(images, self.in_channels, self.factor)?;
        Ok(tch::no_grad(|| {
            vec![self.quantize.codes(&self.latents(images))]
        }))
    }

    fn decode_indices(&self, indices: &[Tensor]) -> Result<Tensor, ModelError> {
        check_indices(indices, &[(self.quantize.codebook_size(), self.factor)])?;
        Ok(self.decoder.forward(&self.quantize.embed(&indices[0])))
    }

    fn last_layer(&self) -> Tensor {
        self.decoder.last_layer().shallow_clone()
    }

    fn trainable_vars(&self) -> Vec<Tensor> {
        self.trainable.iter().map(Tensor::shallow_clone).collect()
    }
}
