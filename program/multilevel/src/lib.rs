//! The `multilevel` program: serve a database and talk to it from the shell. This library part
//! only holds the `multilevel bench` harness, public for the program and its tests; the
//! program itself is `src/main.rs`. Library users want `multilevel-tokio`,
//! `multilevel-async-std` or `multilevel-blocking` instead.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bench;
