//! param.json: comment stripping, schema, validation. Any text must give a config or
//! an error, never a panic; an accepted config's derived sizes must be computable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vqtok_config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::parse(text) {
        let _ = config.model.levels();
        let _ = config.model.size_multiple();
        let _ = config.data_resolution();
        let _ = config.summary();
        let _ = config.model_hash();
    }
});
