//! See `multilevel_fuzz::frame_decoder` (fuzz/src/frame_decoder.rs) for the input layout and what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| multilevel_fuzz::frame_decoder::run(data));
