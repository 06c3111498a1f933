//! Operations, power losses and I/O errors on the simulated file system, checked against the
//! model. See `raftwal::sim::fuzz::crash_model`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| raftwal::sim::fuzz::crash_model(data));
