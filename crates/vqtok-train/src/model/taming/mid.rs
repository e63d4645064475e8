//! The middle of taming's Encoder and Decoder: ResnetBlock → AttnBlock → ResnetBlock at
//! the lowest resolution (`mid.block_1`, `mid.attn_1`, `mid.block_2`).

use tch::Tensor;

use super::attention::AttnBlock;
use super::resnet::ResnetBlock;
use crate::model::vars::Vars;

#[derive(Debug)]
pub struct Mid {
    block_1: ResnetBlock,
    attn_1: AttnBlock,
    block_2: ResnetBlock,
}

impl Mid {
    pub fn new(vs: &Vars, channels: i64, dropout: f64) -> Self {
        Mid {
            block_1: ResnetBlock::new(&vs.sub("block_1"), channels, channels, dropout),
            attn_1: AttnBlock::new(&vs.sub("attn_1"), channels),
            block_2: ResnetBlock::new(&vs.sub("block_2"), channels, channels, dropout),
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let h = self.block_1.forward_t(x, train);
        let h = self.attn_1.forward(&h);
        self.block_2.forward_t(&h, train)
    }
}
