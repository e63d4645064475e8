//! taming's `Normalize(C)`: GroupNorm with 32 groups and eps 1e-6 (tch's default is
//! 1e-5, which would shift every activation of the autoencoder), affine, weight 1 and
//! bias 0 at init.

use tch::Tensor;
use tch::nn::Init;

use super::vars::Vars;

pub const GROUPS: i64 = 32;
pub const EPS: f64 = 1e-6;

#[derive(Debug)]
pub struct GroupNorm {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl GroupNorm {
    pub fn new(vs: &Vars, channels: i64) -> Self {
        GroupNorm {
            weight: vs.param("weight", &[channels], Init::Const(1.0)),
            bias: vs.param("bias", &[channels], Init::Const(0.0)),
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.group_norm(GROUPS, Some(&self.weight), Some(&self.bias), EPS, true)
    }
}
