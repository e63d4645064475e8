//! The classic VQ-VAE / VQ-VAE-2 blocks of docs/models.md ("Shared blocks").

use crate::error::Result;
use crate::model::{Conv2d, ConvTranspose2d, relu};
use crate::onnx::GraphBuilder;

/// ResStack(h, rh, n): n × `x + conv2(relu(conv1(relu(x))))`, then ReLU.
struct ResStack {
    blocks: Vec<(Conv2d, Conv2d)>,
}

impl ResStack {
    fn new(g: &mut GraphBuilder, prefix: &str, h: usize, rh: usize, n: usize) -> Result<Self> {
        let blocks = (0..n)
            .map(|j| {
                Ok((
                    Conv2d::new(g, &format!("{prefix}.res.{j}.conv1"), h, rh, 3, 1, 1)?,
                    Conv2d::new(g, &format!("{prefix}.res.{j}.conv2"), rh, h, 1, 1, 0)?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(ResStack { blocks })
    }

    fn forward(&self, g: &mut GraphBuilder, x: &str) -> String {
        let mut x = x.to_string();
        for (conv1, conv2) in &self.blocks {
            let h = relu(g, &x);
            let h = conv1.forward(g, &h);
            let h = relu(g, &h);
            let h = conv2.forward(g, &h);
            x = g.op("Add", &[&x, &h], vec![]);
        }
        relu(g, &x)
    }
}

/// ClassicEncoder(in, h, n_down, rh, n_res): n_down stride-2 4×4 convs with ReLU,
/// a 3×3 conv, then the residual stack.
pub struct ClassicEncoder {
    down: Vec<Conv2d>,
    conv: Conv2d,
    res: ResStack,
}

impl ClassicEncoder {
    pub fn new(
        g: &mut GraphBuilder,
        prefix: &str,
        cin: usize,
        h: usize,
        n_down: usize,
        rh: usize,
        n_res: usize,
    ) -> Result<Self> {
        let mut down = Vec::with_capacity(n_down);
        let mut c = cin;
        for i in 0..n_down {
            let o = if i + 1 < n_down || n_down == 1 {
                h / 2
            } else {
                h
            };
            down.push(Conv2d::new(
                g,
                &format!("{prefix}.down.{i}"),
                c,
                o,
                4,
                2,
                1,
            )?);
            c = o;
        }
        Ok(ClassicEncoder {
            down,
            conv: Conv2d::new(g, &format!("{prefix}.conv"), c, h, 3, 1, 1)?,
            res: ResStack::new(g, prefix, h, rh, n_res)?,
        })
    }

    pub fn forward(&self, g: &mut GraphBuilder, x: &str) -> String {
        let mut h = x.to_string();
        for conv in &self.down {
            h = conv.forward(g, &h);
            h = relu(g, &h);
        }
        let h = self.conv.forward(g, &h);
        self.res.forward(g, &h)
    }
}

/// ClassicDecoder(in, out, h, n_up, rh, n_res): 3×3 conv, residual stack, n_up
/// transposed convs with ReLU between them (none after the last).
pub struct ClassicDecoder {
    conv_in: Conv2d,
    res: ResStack,
    up: Vec<ConvTranspose2d>,
}

impl ClassicDecoder {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        g: &mut GraphBuilder,
        prefix: &str,
        cin: usize,
        cout: usize,
        h: usize,
        n_up: usize,
        rh: usize,
        n_res: usize,
    ) -> Result<Self> {
        let conv_in = Conv2d::new(g, &format!("{prefix}.conv_in"), cin, h, 3, 1, 1)?;
        let res = ResStack::new(g, prefix, h, rh, n_res)?;
        let mut up = Vec::with_capacity(n_up);
        let mut c = h;
        for i in 0..n_up {
            let o = if i + 1 < n_up { h / 2 } else { cout };
            up.push(ConvTranspose2d::new(g, &format!("{prefix}.up.{i}"), c, o)?);
            c = o;
        }
        Ok(ClassicDecoder { conv_in, res, up })
    }

    pub fn forward(&self, g: &mut GraphBuilder, x: &str) -> String {
        let h = self.conv_in.forward(g, x);
        let mut h = self.res.forward(g, &h);
        for (i, up) in self.up.iter().enumerate() {
            h = up.forward(g, &h);
            if i + 1 < self.up.len() {
                h = relu(g, &h);
            }
        }
        h
    }
}
