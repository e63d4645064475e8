//! The models against taming's state dict and outputs, the classic family, codebooks,
//! state-dict loading and taming checkpoint import.

#[path = "../support/mod.rs"]
mod support;

mod classic;
mod import;
mod quantizer;
mod state_dict;
mod taming_fixture;
mod taming_layout;
