//! LPIPS-VGG v0.1 (Zhang et al. 2018), as taming-transformers uses it (spec §6):
//! a frozen ImageNet VGG16 tapped at relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3,
//! unit-normalised over channels, squared differences weighted by learned 1×1 heads,
//! averaged over space and summed over the five taps.
//!
//! The weights come from the file `cargo xtask setup` converts (keys
//! `features.N.weight|bias` from torchvision's `vgg16().features`, OIHW, and the heads
//! `linK.model.1.weight`). A missing file is an error, never random weights: LPIPS on a
//! random VGG is ~10× smaller and does not measure perceptual distance.

use std::path::{Path, PathBuf};

use tch::nn::{self, Module, VarStore};
use tch::{Device, Kind, Tensor};

use super::error::LossError;
use crate::autocast::Autocast;
use crate::state_dict::{LoadOptions, load_state_dict};

/// Environment variable that holds the default weights path (set for every cargo
/// process by `.cargo/config.toml`).
pub const LPIPS_WEIGHTS_ENV: &str = "VQTOK_LPIPS_WEIGHTS";

/// ScalingLayer constants: map [-1, 1] images to roughly ImageNet-normalised space.
/// f32 on purpose: LPIPS registers them as float32 buffers (`torch.Tensor([...])`),
/// so even a float64 run of the original uses the f32-rounded values (visible at
/// ~1e-8 relative in an f64 comparison).
const SHIFT: [f32; 3] = [-0.030, -0.088, -0.188];
const SCALE: [f32; 3] = [0.458, 0.448, 0.450];

/// Feature-normalisation epsilon of LPIPS (`normalize_tensor`).
const NORM_EPS: f64 = 1e-10;

/// VGG16 `features` indices of the 3×3 convs, grouped by the slice that ends at each
/// tap; every slice but the first starts with a 2×2 max-pool.
const SLICES: [&[(usize, i64, i64)]; 5] = [
    &[(0, 3, 64), (2, 64, 64)],
    &[(5, 64, 128), (7, 128, 128)],
    &[(10, 128, 256), (12, 256, 256), (14, 256, 256)],
    &[(17, 256, 512), (19, 512, 512), (21, 512, 512)],
    &[(24, 512, 512), (26, 512, 512), (28, 512, 512)],
];

/// Resolves the weights file: the explicit path if given, else `$VQTOK_LPIPS_WEIGHTS`,
/// else the path setup produced in the checkout this binary was built from (cargo
/// sets the variable at build time too), so binaries run outside cargo find it.
pub fn lpips_weights_path(explicit: Option<&Path>) -> Result<PathBuf, LossError> {
    match explicit {
        Some(p) => Ok(p.to_path_buf()),
        None => std::env::var_os(LPIPS_WEIGHTS_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| option_env!("VQTOK_LPIPS_WEIGHTS").map(PathBuf::from))
            .ok_or(LossError::LpipsWeightsUnset),
    }
}

/// The frozen LPIPS network (always eval mode: the heads' dropout never runs,
/// project decision 2).
#[derive(Debug)]
pub struct Lpips {
    /// Keeps the frozen variables alive; nothing trains them.
    _vs: VarStore,
    slices: Vec<Vec<nn::Conv2D>>,
    heads: Vec<nn::Conv2D>,
    shift: Tensor,
    scale: Tensor,
    kind: Kind,
}

impl Lpips {
    /// Loads the VGG16 + v0.1 heads from `weights` (strict: every key, every shape,
    /// nothing extra) into frozen variables of dtype `kind` on `device`.
    pub fn load(weights: &Path, device: Device, kind: Kind) -> Result<Lpips, LossError> {
        if !weights.is_file() {
            return Err(LossError::LpipsWeightsMissing(weights.to_path_buf()));
        }
        let mut vs = VarStore::new(device);
        let root = vs.root();
        let conv3 = nn::ConvConfig {
            padding: 1,
            ..Default::default()
        };
        let slices: Vec<Vec<nn::Conv2D>> = SLICES
            .iter()
            .map(|convs| {
                convs
                    .iter()
                    .map(|&(idx, cin, cout)| {
                        nn::conv2d(root.sub("features").sub(idx), cin, cout, 3, conv3)
                    })
                    .collect()
            })
            .collect();
        let heads = SLICES
            .iter()
            .enumerate()
            .map(|(k, convs)| {
                let channels = convs[convs.len() - 1].2;
                let p = root.sub(format!("lin{k}")).sub("model").sub("1");
                nn::conv2d(p, channels, 1, 1, nn::no_bias())
            })
            .collect();
        vs.set_kind(kind);
        load_state_dict(&vs, weights, &LoadOptions::default())?;
        vs.freeze();

        let constant = |v: [f32; 3]| {
            Tensor::from_slice(&v)
                .to_kind(kind)
                .to_device(device)
                .view([1, 3, 1, 1])
        };
        Ok(Lpips {
            _vs: vs,
            slices,
            heads,
            shift: constant(SHIFT),
            scale: constant(SCALE),
            kind,
        })
    }

    /// LPIPS distance per sample, `[B, 1, 1, 1]`, between `input` and `target`
    /// (`[B, 3, H, W]` in [-1, 1]; taming passes the real image first). Computed in the
    /// network's dtype whatever the inputs' dtype, with autocast off (fp32 inside a
    /// bf16 region); gradients flow to both arguments, never into the frozen weights.
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Tensor {
        let _fp32 = Autocast::disabled(input.device());
        let batch = input.size()[0];
        let (input, target) = (input.to_kind(self.kind), target.to_kind(self.kind));
        // VGG has no batch-dependent layers, so any split of the batch gives taming's
        // two passes. When only the target needs gradients (the generator step: the real
        // frames are detached), the input's pass runs without autograd: backward then
        // goes through the reconstructions' half only (through one pass over both, it
        // would compute the input half's gradients and drop them), and that half's
        // activations are not kept for it. Otherwise one pass over both.
        let pairs: Vec<(Tensor, Tensor)> = if !input.requires_grad() && target.requires_grad() {
            let real = tch::no_grad(|| self.taps(&input));
            real.into_iter().zip(self.taps(&target)).collect()
        } else {
            self.taps(&Tensor::cat(&[input, target], 0))
                .into_iter()
                .map(|t| (t.narrow(0, 0, batch), t.narrow(0, batch, batch)))
                .collect()
        };
        let mut total: Option<Tensor> = None;
        for ((a, b), head) in pairs.into_iter().zip(&self.heads) {
            let d = head
                .forward(&(a - b).square())
                .mean_dim([2i64, 3].as_slice(), true, self.kind);
            total = Some(match total {
                Some(t) => t + d,
                None => d,
            });
        }
        total.expect("LPIPS has five taps")
    }

    /// The channel-normalised VGG features at the five taps of `x` (in [-1, 1]).
    fn taps(&self, x: &Tensor) -> Vec<Tensor> {
        let mut h = (x - &self.shift) / &self.scale;
        let mut taps = Vec::with_capacity(self.slices.len());
        for (s, convs) in self.slices.iter().enumerate() {
            if s > 0 {
                h = h.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
            }
            for conv in convs {
                h = conv.forward(&h).relu();
            }
            taps.push(&h / (h.square().sum_dim_intlist(1, true, self.kind).sqrt() + NORM_EPS));
        }
        taps
    }
}
