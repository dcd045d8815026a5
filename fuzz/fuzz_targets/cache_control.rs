//! Cache-Control parsing never panics, whatever the field value.
#![no_main]

use edgecache::http_cache::cache_control::CacheControl;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = CacheControl::parse(text);
    }
});
