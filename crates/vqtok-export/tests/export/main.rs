//! vqtok-export's tests, one binary: every family from random weights, the taming
//! fixture from the original code, and parity with an independent PyTorch model.

mod common;
mod families;
mod taming_fixture;
mod torch_parity;
