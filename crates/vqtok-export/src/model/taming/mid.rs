//! taming's middle block at the lowest resolution: block_1 → attn_1 → block_2
//! (`{encoder,decoder}.mid.*`).

use super::{AttnBlock, ResnetBlock};
use crate::error::Result;
use crate::onnx::GraphBuilder;

pub struct Mid {
    block_1: ResnetBlock,
    attn_1: AttnBlock,
    block_2: ResnetBlock,
}

impl Mid {
    pub fn new(g: &mut GraphBuilder, prefix: &str, c: usize) -> Result<Self> {
        Ok(Mid {
            block_1: ResnetBlock::new(g, &format!("{prefix}.mid.block_1"), c, c)?,
            attn_1: AttnBlock::new(g, &format!("{prefix}.mid.attn_1"), c)?,
            block_2: ResnetBlock::new(g, &format!("{prefix}.mid.block_2"), c, c)?,
        })
    }

    pub fn forward(&self, g: &mut GraphBuilder, x: &str) -> String {
        let h = self.block_1.forward(g, x);
        let h = self.attn_1.forward(g, &h);
        self.block_2.forward(g, &h)
    }
}
