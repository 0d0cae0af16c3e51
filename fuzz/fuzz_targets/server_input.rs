//! See `multilevel_fuzz::server_input` (fuzz/src/server_input.rs) for the input layout and what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| multilevel_fuzz::server_input::run(data));
