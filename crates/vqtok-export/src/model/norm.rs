//! GroupNorm(32, C, eps 1e-6, affine) in opset-17 form: reshape to `[N, 32, -1]`,
//! InstanceNormalization (unit scale, zero bias), reshape back, per-channel scale
//! and bias. ORT's CPU provider has no kernel for GroupNormalization-21, and
//! GroupNormalization-18 was defined wrongly (per group, not per channel, affine).

use crate::error::Result;
use crate::onnx::{Attr, GraphBuilder};
use crate::weights::Init;

const GROUPS: usize = 32;
const EPS: f32 = 1e-6;

pub struct GroupNorm {
    weight: String,
    bias: String,
}

impl GroupNorm {
    pub fn new(g: &mut GraphBuilder, prefix: &str, channels: usize) -> Result<Self> {
        let w = g.fetch(&format!("{prefix}.weight"), &[channels], Init::NormWeight)?;
        let b = g.fetch(&format!("{prefix}.bias"), &[channels], Init::NormBias)?;
        // Stored as [C, 1, 1] so they broadcast over NCHW without an Unsqueeze.
        Ok(GroupNorm {
            weight: g.init_f32(&format!("{prefix}.weight"), &[channels, 1, 1], &w),
            bias: g.init_f32(&format!("{prefix}.bias"), &[channels, 1, 1], &b),
        })
    }

    pub fn forward(&self, g: &mut GraphBuilder, x: &str) -> String {
        let ones = g.init_f32("groupnorm.unit_scale", &[GROUPS], &[1.0; GROUPS]);
        let zeros = g.init_f32("groupnorm.zero_bias", &[GROUPS], &[0.0; GROUPS]);
        let grouped_shape = g.const_i64(&[0, GROUPS as i64, -1]);
        let shape = g.op("Shape", &[x], vec![]);
        let grouped = g.op("Reshape", &[x, &grouped_shape], vec![]);
        let normed = g.op(
            "InstanceNormalization",
            &[&grouped, &ones, &zeros],
            vec![Attr::Float("epsilon", EPS)],
        );
        let back = g.op("Reshape", &[&normed, &shape], vec![]);
        let scaled = g.op("Mul", &[&back, &self.weight], vec![]);
        g.op("Add", &[&scaled, &self.bias], vec![])
    }
}
