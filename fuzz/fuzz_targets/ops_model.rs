//! Random operation sequences against a model, on a filesystem that fails one
//! operation and then loses power. After a reopen the database must hold the
//! acknowledged state, or that plus the one write that failed, whole.
#![no_main]
use libfuzzer_sys::fuzz_target;

// The body lives in the library so that seeds and crashes replay as tests.
fuzz_target!(|data: &[u8]| {
    bitcask::fuzzing::ops_model(data);
});
