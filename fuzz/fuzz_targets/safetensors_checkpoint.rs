//! Checkpoints and reference files read by vqtok-export (safetensors, no libtorch):
//! every tensor of an accepted file must convert or give an error.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use vqtok_export::TensorFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = TensorFile::from_bytes(data.to_vec(), PathBuf::from("fuzz.safetensors")) {
        for name in file.names() {
            let _ = file.shape(name);
            let _ = file.f32(name);
            let _ = file.u8(name);
            let _ = file.i64(name);
        }
    }
});
