//! Conv2d and ConvTranspose2d initialised exactly like PyTorch's defaults.
//!
//! tch's own `nn::conv2d` uses a different Kaiming gain and zero biases; taming and the
//! classic models never re-initialise, so a from-scratch run only matches PyTorch's
//! statistics with PyTorch's rule: weight and bias ~ U(±1/√fan_in) (kaiming_uniform with
//! a = √5), where fan_in = `weight.size(1)·k·k` — in·k·k for a conv, out·k·k for a
//! transposed conv.

use tch::Tensor;
use tch::nn::Init;

use super::vars::Vars;

fn uniform(fan_in: i64) -> Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

/// `nn.Conv2d(cin, cout, k, stride, padding)` with bias.
#[derive(Debug)]
pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Tensor,
    stride: i64,
    padding: i64,
}

impl Conv2d {
    pub fn new(vs: &Vars, cin: i64, cout: i64, k: i64, stride: i64, padding: i64) -> Self {
        let init = uniform(cin * k * k);
        Conv2d {
            weight: vs.param("weight", &[cout, cin, k, k], init),
            bias: vs.param("bias", &[cout], init),
            stride,
            padding,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.conv2d(
            &self.weight,
            Some(&self.bias),
            [self.stride, self.stride],
            [self.padding, self.padding],
            [1, 1],
            1,
        )
    }
}

/// `nn.ConvTranspose2d(cin, cout, k, stride, padding)` with bias; weight `[cin, cout, k, k]`.
#[derive(Debug)]
pub struct ConvTranspose2d {
    pub weight: Tensor,
    pub bias: Tensor,
    stride: i64,
    padding: i64,
}

impl ConvTranspose2d {
    pub fn new(vs: &Vars, cin: i64, cout: i64, k: i64, stride: i64, padding: i64) -> Self {
        let init = uniform(cout * k * k);
        ConvTranspose2d {
            weight: vs.param("weight", &[cin, cout, k, k], init),
            bias: vs.param("bias", &[cout], init),
            stride,
            padding,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.conv_transpose2d(
            &self.weight,
            Some(&self.bias),
            [self.stride, self.stride],
            [self.padding, self.padding],
            [0, 0],
            1,
            [1, 1],
        )
    }
}
