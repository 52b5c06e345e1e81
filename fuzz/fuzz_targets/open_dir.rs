//! Opening a directory of arbitrary files. The input is a sequence of
//! (u16 length, bytes) pairs, one per file, named in the order of `NAMES`. Open
//! (writable, salvage, read-only) may fail with an error but must not panic,
//! hang or allocate what a hostile length claims; what opens must read back.
#![no_main]
use libfuzzer_sys::fuzz_target;

// The body lives in the library so that seeds and crashes replay as tests.
fuzz_target!(|data: &[u8]| {
    bitcask::fuzzing::open_dir(data);
});
