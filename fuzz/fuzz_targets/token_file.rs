//! Token files (`*.vqt.safetensors`): safetensors framing, metadata, geometry and grids.
//! An accepted file's frames and framing must be usable as decode uses them.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vqtok_infer::TokenFile;
use vqtok_infer::source_region;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = TokenFile::from_bytes(data, Path::new("fuzz.vqt.safetensors")) {
        let _ = source_region(&file.meta.geometry);
        let _ = file.meta.sampling.fps();
        let _ = file.meta.to_string();
        for level in &file.levels {
            let _ = level.frames(0, level.shape[0]);
        }
    }
});
