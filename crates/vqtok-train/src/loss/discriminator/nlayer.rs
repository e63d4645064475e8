//! NLayerDiscriminator: the pix2pix PatchGAN of taming (spec §5). 4×4 convs with
//! padding 1, LeakyReLU(0.2), BatchNorm (or ActNorm) after every conv but the first
//! and the last; raw logits, one per 70×70 patch with the default 3 layers.
//! Layer indices follow taming's `nn.Sequential` `main`, so the variables are named
//! `main.N.*` under the path given (the losses use `loss.discriminator`).

use tch::Tensor;
use tch::nn::{self, Init, Module};

use super::act_norm::ActNorm;
use super::batch_norm::BatchNorm2d;

/// Slope of the LeakyReLU for negative inputs.
const LEAKY_SLOPE: f64 = 0.2;

/// Shape of the discriminator (taming's `disc_in_channels`, `disc_ndf`,
/// `disc_num_layers`, `use_actnorm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscriminatorConfig {
    pub in_channels: usize,
    pub ndf: usize,
    pub n_layers: usize,
    pub use_actnorm: bool,
}

#[derive(Debug)]
enum Norm {
    Batch(BatchNorm2d),
    Act(ActNorm),
}

#[derive(Debug)]
struct Block {
    conv: nn::Conv2D,
    norm: Option<Norm>,
    /// The last conv gives the logits and has no activation.
    activation: bool,
}

#[derive(Debug)]
pub struct NLayerDiscriminator {
    blocks: Vec<Block>,
}

/// A 4×4 conv with taming's init: weight ~ N(0, 0.02) (`weights_init`); the bias
/// keeps PyTorch's default U(±1/√fan_in), which `weights_init` does not touch.
fn conv(p: nn::Path, cin: i64, cout: i64, stride: i64, bias: bool) -> nn::Conv2D {
    let bound = 1.0 / ((cin * 16) as f64).sqrt();
    let cfg = nn::ConvConfig {
        stride,
        padding: 1,
        bias,
        ws_init: Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        },
        bs_init: Init::Uniform {
            lo: -bound,
            up: bound,
        },
        ..Default::default()
    };
    nn::conv2d(p, cin, cout, 4, cfg)
}

impl NLayerDiscriminator {
    /// Builds the layers under `p / "main"` with fresh (taming-initialised) weights.
    pub fn new(p: nn::Path, cfg: &DiscriminatorConfig) -> NLayerDiscriminator {
        let main = p.sub("main");
        let ndf = cfg.ndf as i64;
        let mut idx = 0usize;
        let mut blocks = Vec::with_capacity(cfg.n_layers + 2);
        let mut add = |cin: i64, cout: i64, stride: i64, normed: bool, last: bool| {
            // taming drops the conv bias only before BatchNorm, whose shift makes it
            // redundant; before ActNorm the conv keeps its bias.
            let bias = !normed || cfg.use_actnorm;
            let conv = conv(main.sub(idx), cin, cout, stride, bias);
            let norm = normed.then(|| {
                let np = main.sub(idx + 1);
                if cfg.use_actnorm {
                    Norm::Act(ActNorm::new(np, cout))
                } else {
                    Norm::Batch(BatchNorm2d::new(np, cout))
                }
            });
            idx += if last {
                1
            } else if normed {
                3
            } else {
                2
            };
            blocks.push(Block {
                conv,
                norm,
                activation: !last,
            });
        };
        add(cfg.in_channels as i64, ndf, 2, false, false);
        let mut mult = 1i64;
        for n in 1..cfg.n_layers {
            let prev = mult;
            mult = 1 << n.min(3);
            add(ndf * prev, ndf * mult, 2, true, false);
        }
        let prev = mult;
        mult = 1 << cfg.n_layers.min(3);
        add(ndf * prev, ndf * mult, 1, true, false);
        add(ndf * mult, 1, 1, false, true);
        NLayerDiscriminator { blocks }
    }

    /// Patch logits `[B, 1, h, w]`. `train` selects batch statistics (and updates the
    /// running ones) in the norm layers; there is no dropout.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = x.shallow_clone();
        for block in &self.blocks {
            h = block.conv.forward(&h);
            h = match &block.norm {
                Some(Norm::Batch(bn)) => bn.forward_t(&h, train),
                Some(Norm::Act(an)) => an.forward_t(&h, train),
                None => h,
            };
            if block.activation {
                // prelu with a constant slope is LeakyReLU(0.2) in one kernel (tch's
                // leaky_relu has the fixed slope 0.01).
                let slope = Tensor::full([1], LEAKY_SLOPE, (h.kind(), h.device()));
                h = h.prelu(&slope);
            }
        }
        h
    }
}
