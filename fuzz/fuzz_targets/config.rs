//! The edge config parser and validator never panic on any text.
#![no_main]

use edgecache::config::EdgeConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = EdgeConfig::parse(text, std::path::Path::new("fuzz.toml"));
    }
});
