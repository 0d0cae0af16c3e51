//! See `multilevel_fuzz::model` (fuzz/src/model.rs) for the operations and what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: multilevel_fuzz::model::Input| multilevel_fuzz::model::run(input));
