//! BatchNorm2d with PyTorch's full state (`weight`, `bias`, `running_mean`,
//! `running_var`, `num_batches_tracked`), so a taming checkpoint's discriminator
//! loads key for key and saves back the same keys. (tch's BatchNorm has no
//! `num_batches_tracked`.)

use tch::nn::{self, Init};
use tch::{Kind, Tensor};

const EPS: f64 = 1e-5;
const MOMENTUM: f64 = 0.1;

#[derive(Debug)]
pub struct BatchNorm2d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    num_batches_tracked: Tensor,
}

impl BatchNorm2d {
    /// taming's `weights_init`: weight ~ N(1, 0.02), bias = 0.
    pub fn new(p: nn::Path, channels: i64) -> BatchNorm2d {
        let weight = p.var(
            "weight",
            &[channels],
            Init::Randn {
                mean: 1.0,
                stdev: 0.02,
            },
        );
        let bias = p.var("bias", &[channels], Init::Const(0.0));
        let running_mean = p.zeros_no_train("running_mean", &[channels]);
        let running_var = p.ones_no_train("running_var", &[channels]);
        let num_batches_tracked = p.add(
            "num_batches_tracked",
            Tensor::zeros([], (Kind::Int64, p.device())),
            false,
        );
        BatchNorm2d {
            weight,
            bias,
            running_mean,
            running_var,
            num_batches_tracked,
        }
    }

    /// Train mode normalises with the batch statistics and updates the running ones
    /// (momentum 0.1, unbiased variance) and the batch counter, as PyTorch does.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let y = x.batch_norm(
            Some(&self.weight),
            Some(&self.bias),
            Some(&self.running_mean),
            Some(&self.running_var),
            train,
            MOMENTUM,
            EPS,
            true,
        );
        if train {
            let mut n = self.num_batches_tracked.shallow_clone();
            tch::no_grad(|| {
                let _ = n.g_add_scalar_(1);
            });
        }
        y
    }
}
