//! Helpers for the cross-crate tests: servers of every adapter on loopback, clients of every
//! adapter behind one blocking interface, and a cutting proxy.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod adapters;
pub mod processes;
pub mod proxy;
pub mod suite;

/// Resident memory of this process, in KiB (Linux).
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A size knob from the environment, e.g. `MULTILEVEL_STORM_SECS=60` for the long variant.
pub fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
