//! vqtok-core: the few pieces every vqtok crate needs the same way, each in one place:
//! writing a file so that a crash never leaves half of it under its name, and the error
//! naming a file that failed ([`fs`]), one writer per output ([`claim`]), sha256 in hex ([`hash`]), PSNR ([`psnr`]), and how
//! a failure becomes an exit status ([`exit`]).
//! No tch, no ONNX Runtime, no FFmpeg.

pub mod claim;
pub mod exit;
pub mod fs;
pub mod hash;
pub mod psnr;
