//! See `multilevel_fuzz::client_input` (fuzz/src/client_input.rs) for the input layout and what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| multilevel_fuzz::client_input::run(data));
