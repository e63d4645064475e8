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
    /// A conv with symmetric padding `pad` (see [`Conv2d::with_pads`] for others).
    pub fn new(
        g: &mut GraphBuilder,
        prefix: &str,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Result<Self> {
        let init = Init::Conv {
            fan_in: cin * k * k,
        };
        Ok(Conv2d {
            weight: g.param(&format!("{prefix}.weight"), &[cout, cin, k, k], init)?,
            bias: g.param(&format!("{prefix}.bias"), &[cout], init)?,
            k,
            stride,
            pads: [pad; 4],
        })
    }

    /// The same conv with explicit ONNX pads `[top, left, bottom, right]`.
    pub fn with_pads(self, pads: [usize; 4]) -> Self {
        Conv2d { pads, ..self }
    }

    /// 1×1 convs `cin` → `cout` that read the same input, stacked into one conv with
    /// `parts.len()·cout` outputs in the order given; each part's weight and bias are
    /// multiplied by its scale (exact enough for attention's C^-½). One pass over the
    /// input instead of several.
    pub fn stacked_1x1(
        g: &mut GraphBuilder,
        parts: &[(&str, f64)],
        cin: usize,
        cout: usize,
    ) -> Result<Self> {
        let init = Init::Conv { fan_in: cin };
        let (mut weight, mut bias, mut names) = (Vec::new(), Vec::new(), Vec::new());
        for &(prefix, scale) in parts {
            let scaled = |v: Vec<f32>| v.into_iter().map(move |x| (x as f64 * scale) as f32);
            let w = g.fetch(&format!("{prefix}.weight"), &[cout, cin, 1, 1], init)?;
            weight.extend(scaled(w));
            bias.extend(scaled(g.fetch(&format!("{prefix}.bias"), &[cout], init)?));
            names.push(format!("{prefix}*{scale:e}"));
        }
        let name = names.join("+");
        let n = parts.len() * cout;
        Ok(Conv2d {
            weight: g.init_f32(&format!("{name}.weight"), &[n, cin, 1, 1], &weight),
            bias: g.init_f32(&format!("{name}.bias"), &[n], &bias),
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
