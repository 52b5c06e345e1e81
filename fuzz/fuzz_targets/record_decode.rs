//! Record decoding on arbitrary bytes: never panics, never allocates what a
//! header claims (libFuzzer's malloc limit turns that into a crash).
#![no_main]
use libfuzzer_sys::fuzz_target;

// The body lives in the library so that seeds and crashes replay as tests.
fuzz_target!(|data: &[u8]| {
    let _ = bitcask::fuzzing::decode_records(data);
});
