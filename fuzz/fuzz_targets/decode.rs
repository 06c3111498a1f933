//! Arbitrary bytes as segment files: `open` must not panic. See `raftwal::sim::fuzz::decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| raftwal::sim::fuzz::decode(data));
