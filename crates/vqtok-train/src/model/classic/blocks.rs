//! The building blocks of the classic family (docs/models.md, "Shared blocks").

use tch::Tensor;

use crate::model::conv::{Conv2d, ConvTranspose2d};
use crate::model::vars::Vars;

/// `res.{j}`: x + conv2(relu(conv1(relu(x)))) with conv1 3×3 h→rh and conv2 1×1 rh→h;
/// a ReLU after the last block (Sonnet's residual stack).
#[derive(Debug)]
pub struct ResStack {
    blocks: Vec<(Conv2d, Conv2d)>,
}

impl ResStack {
    pub fn new(vs: &Vars, h: i64, rh: i64, n: usize) -> Self {
        let blocks = (0..n)
            .map(|j| {
                let b = vs.sub("res").sub(j);
                (
                    Conv2d::new(&b.sub("conv1"), h, rh, 3, 1, 1),
                    Conv2d::new(&b.sub("conv2"), rh, h, 1, 1, 0),
                )
            })
            .collect();
        ResStack { blocks }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let mut x = x.shallow_clone();
        for (conv1, conv2) in &self.blocks {
            x = &x + conv2.forward(&conv1.forward(&x.relu()).relu());
        }
        x.relu()
    }
}

/// `down.{i}`: n_down stride-2 4×4 convs with ReLU (h/2 channels, the last h when
/// n_down ≥ 2), `conv` 3×3 to h, then a ResStack.
#[derive(Debug)]
pub struct ClassicEncoder {
    down: Vec<Conv2d>,
    conv: Conv2d,
    res: ResStack,
}

impl ClassicEncoder {
    pub fn new(vs: &Vars, cin: i64, h: i64, n_down: usize, rh: i64, n_res: usize) -> Self {
        let mut c = cin;
        let mut down = Vec::with_capacity(n_down);
        for i in 0..n_down {
            let o = if i + 1 == n_down && n_down >= 2 {
                h
            } else {
                h / 2
            };
            down.push(Conv2d::new(&vs.sub("down").sub(i), c, o, 4, 2, 1));
            c = o;
        }
        ClassicEncoder {
            down,
            conv: Conv2d::new(&vs.sub("conv"), c, h, 3, 1, 1),
            res: ResStack::new(vs, h, rh, n_res),
        }
    }

    /// `[B, cin, H, W]` → `[B, h, H/2ⁿ, W/2ⁿ]`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let mut x = x.shallow_clone();
        for conv in &self.down {
            x = conv.forward(&x).relu();
        }
        self.res.forward(&self.conv.forward(&x))
    }
}

/// `conv_in` 3×3 to h, a ResStack, then n_up stride-2 4×4 transposed convs `up.{i}`
/// (h/2 channels, the last `out`) with a ReLU after all but the last.
#[derive(Debug)]
pub struct ClassicDecoder {
    conv_in: Conv2d,
    res: ResStack,
    up: Vec<ConvTranspose2d>,
}

impl ClassicDecoder {
    pub fn new(vs: &Vars, cin: i64, out: i64, h: i64, n_up: usize, rh: i64, n_res: usize) -> Self {
        let mut c = h;
        let mut up = Vec::with_capacity(n_up);
        for i in 0..n_up {
            let o = if i + 1 == n_up { out } else { h / 2 };
            up.push(ConvTranspose2d::new(&vs.sub("up").sub(i), c, o, 4, 2, 1));
            c = o;
        }
        ClassicDecoder {
            conv_in: Conv2d::new(&vs.sub("conv_in"), cin, h, 3, 1, 1),
            res: ResStack::new(vs, h, rh, n_res),
            up,
        }
    }

    /// `[B, cin, h, w]` → `[B, out, h·2ⁿ, w·2ⁿ]`.
    pub fn forward(&self, z: &Tensor) -> Tensor {
        let mut x = self.res.forward(&self.conv_in.forward(z));
        let last = self.up.len() - 1;
        for (i, conv) in self.up.iter().enumerate() {
            x = conv.forward(&x);
            if i != last {
                x = x.relu();
            }
        }
        x
    }

    /// The final transposed conv's weight (for the adaptive GAN weight).
    pub fn last_layer(&self) -> &Tensor {
        &self.up[self.up.len() - 1].weight
    }
}
