//! manifest.json: parse and check; an accepted manifest's sizes must be computable.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vqtok_runtime::Manifest;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = Manifest::parse(text, Path::new("manifest.json")) {
        let k = m.size_multiple;
        let _ = m.check_frame_size(k, 2 * k);
        for l in &m.levels {
            let _ = (k / l.factor) * (k / l.factor);
        }
        let p = &m.normalization.pixels;
        for c in 0..p.channels() {
            let _ = p.to_pixel_scale(c, 0.5);
        }
    }
});
