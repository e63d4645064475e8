//! Conv2d and ConvTranspose2d with bias, weights in PyTorch layout (ONNX uses the same).

use crate::error::Result;
use crate::onnx::{Attr, GraphBuilder};
use crate::weights::Init;

/// Conv2d(in → out, k×k, stride, explicit ONNX pads `[top, left, bottom, right]`).
pub struct Conv2d {
    weight: String,
    bias: String,
    k: usize,
    stride: usize,
    pads: [usize; 4],
}

impl Conv2d {
    /// A conv with symmetric padding `pad`.
    pub fn new(
        g: &mut GraphBuilder,
        prefix: &str,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Result<Self> {
        Self::with_pads(g, prefix, cin, cout, k, stride, [pad; 4])
    }

    pub fn with_pads(
        g: &mut GraphBuilder,
        prefix: &str,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pads: [usize; 4],
    ) -> Result<Self> {
        let init = Init::Conv {
            fan_in: cin * k * k,
        };
        Ok(Conv2d {
            weight: g.param(&format!("{prefix}.weight"), &[cout, cin, k, k], init)?,
            bias: g.param(&format!("{prefix}.bias"), &[cout], init)?,
            k,
            stride,
            pads,
        })
    }

    /// A 1×1 conv whose weight and bias are multiplied by `scale` (exact enough for the
    /// C^-½ of attention; saves a Mul on the HW×HW scores).
    pub fn scaled_1x1(
        g: &mut GraphBuilder,
        prefix: &str,
        cin: usize,
        cout: usize,
        scale: f64,
    ) -> Result<Self> {
        let init = Init::Conv { fan_in: cin };
        let w = g.fetch(&format!("{prefix}.weight"), &[cout, cin, 1, 1], init)?;
        let b = g.fetch(&format!("{prefix}.bias"), &[cout], init)?;
        let sc = |v: Vec<f32>| -> Vec<f32> {
            v.into_iter().map(|x| (x as f64 * scale) as f32).collect()
        };
        Ok(Conv2d {
            weight: g.init_f32(
                &format!("{prefix}.weight*{scale:e}"),
                &[cout, cin, 1, 1],
                &sc(w),
            ),
            bias: g.init_f32(&format!("{prefix}.bias*{scale:e}"), &[cout], &sc(b)),
            k: 1,
            stride: 1,
            pads: [0; 4],
        })
    }

    pub fn forward(&self, g: &mut GraphBuilder, x: &str) -> String {
        let k = self.k as i64;
        let s = self.stride as i64;
        g.op(
            "Conv",
            &[x, &self.weight, &self.bias],
            vec![
                Attr::Ints("kernel_shape", vec![k, k]),
                Attr::Ints("strides", vec![s, s]),
                Attr::Ints("pads", self.pads.iter().map(|&p| p as i64).collect()),
            ],
        )
    }
}

/// ConvTranspose2d(in → out, 4, stride 2, padding 1): exactly doubles H and W.
/// Weight `[in, out, 4, 4]`; PyTorch's fan_in for it is `out·k·k`.
pub struct ConvTranspose2d {
    weight: String,
    bias: String,
}

impl ConvTranspose2d {
    pub fn new(g: &mut GraphBuilder, prefix: &str, cin: usize, cout: usize) -> Result<Self> {
        let init = Init::Conv { fan_in: cout * 16 };
        Ok(ConvTranspose2d {
            weight: g.param(&format!("{prefix}.weight"), &[cin, cout, 4, 4], init)?,
            bias: g.param(&format!("{prefix}.bias"), &[cout], init)?,
        })
    }

    pub fn forward(&self, g: &mut GraphBuilder, x: &str) -> String {
        g.op(
            "ConvTranspose",
            &[x, &self.weight, &self.bias],
            vec![
                Attr::Ints("kernel_shape", vec![4, 4]),
                Attr::Ints("strides", vec![2, 2]),
                Attr::Ints("pads", vec![1, 1, 1, 1]),
            ],
        )
    }
}
