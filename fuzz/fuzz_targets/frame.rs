//! The control protocol's frame decoder never panics and never allocates
//! past its size limit, whatever the bytes: both the body decoder and the
//! framed reader (version byte, length, body).
#![no_main]

use edgecache::wire::{ControlFrame, decode_body, read_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_body::<ControlFrame>(data);
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() else {
        return;
    };
    runtime.block_on(async {
        let mut reader = data;
        // Read frames until the input is used up or one is refused.
        for _ in 0..64 {
            if read_frame::<_, ControlFrame>(&mut reader).await.is_err() {
                break;
            }
        }
    });
});
