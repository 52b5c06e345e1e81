//! Hint file verification on arbitrary bytes, for a data file length taken from
//! the first 8 bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

// The body lives in the library so that seeds and crashes replay as tests.
fuzz_target!(|data: &[u8]| {
    let _ = bitcask::fuzzing::decode_hint(data);
});
