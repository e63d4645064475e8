//! ActNorm (Kingma & Dhariwal 2018) as taming's discriminator uses it with
//! `use_actnorm`: a per-channel affine map whose `loc`/`scale` are initialised from
//! the first training batch so that the output has zero mean and unit variance.
//! Keys `loc`, `scale` (1,C,1,1) and the uint8 flag `initialized`, as in taming.

use std::cell::Cell;

use tch::nn::{self, Init};
use tch::{Kind, Tensor};

/// Added to the standard deviation in the data-dependent init (taming's value).
const STD_EPS: f64 = 1e-6;

#[derive(Debug)]
pub struct ActNorm {
    loc: Tensor,
    scale: Tensor,
    initialized: Tensor,
    /// Set once a training forward found `initialized` set: later ones do not read it
    /// back (which would make every step wait for the device).
    seen_initialized: Cell<bool>,
}

impl ActNorm {
    pub fn new(p: nn::Path, channels: i64) -> ActNorm {
        let loc = p.var("loc", &[1, channels, 1, 1], Init::Const(0.0));
        let scale = p.var("scale", &[1, channels, 1, 1], Init::Const(1.0));
        let initialized = p.add(
            "initialized",
            Tensor::zeros([], (Kind::Uint8, p.device())),
            false,
        );
        ActNorm {
            loc,
            scale,
            initialized,
            seen_initialized: Cell::new(false),
        }
    }

    /// `scale · (x + loc)`; the first call in train mode with `initialized == 0` first
    /// sets `loc = −mean` and `scale = 1 / (std + 1e-6)` per channel (unbiased std
    /// over batch and space) from `x`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        // The flag lives in the state dict (a loaded checkpoint may have set it, a skipped
        // step may have reset it), so it is read from the tensor until a forward finds
        // it set; from then on it stays set.
        if train && !self.seen_initialized.get() && self.initialized.int64_value(&[]) != 0 {
            self.seen_initialized.set(true);
        }
        if train && !self.seen_initialized.get() {
            let channels = x.size()[1];
            let flat = x.detach().transpose(0, 1).reshape([channels, -1]);
            let mean = flat.mean_dim(1, false, flat.kind());
            let std = flat.std_dim(1, true, false);
            let (mut loc, mut scale, mut flag) = (
                self.loc.shallow_clone(),
                self.scale.shallow_clone(),
                self.initialized.shallow_clone(),
            );
            tch::no_grad(|| {
                loc.copy_(&(-mean).view([1, channels, 1, 1]));
                scale.copy_(&(std + STD_EPS).reciprocal().view([1, channels, 1, 1]));
                let _ = flag.fill_(1);
            });
        }
        &self.scale * (x + &self.loc)
    }
}
