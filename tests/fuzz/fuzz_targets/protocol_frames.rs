//! The agent protocol's decoder on arbitrary bytes, as agh reads them from
//! a sandbox whose agent a student might have subverted: frames are cut or
//! refused, never a panic, and no allocation past the payload bound.
#![no_main]

use agh_protocol::{Decoder, Reply, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte splits the input into reads of varying size.
    let Some((&split, bytes)) = data.split_first() else {
        return;
    };
    let mut decoder = Decoder::default();
    for chunk in bytes.chunks(usize::from(split).max(1)) {
        decoder.push(chunk);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    assert!(frame.payload.len() <= agh_protocol::MAX_PAYLOAD);
                    let _ = frame.message::<Reply>();
                    let _ = frame.message::<Request>();
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
