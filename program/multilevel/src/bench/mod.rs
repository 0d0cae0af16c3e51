//! The harness behind `multilevel bench`: workloads against a real server, each printed as a
//! ratio to an anchor measured in the same run (raw heed in-process, a loopback ping-pong of the
//! same sizes, and Redis when `redis-server` and `redis-benchmark` are installed), then the watch
//! workloads, each next to the same writes without the watch.
//!
//! Placement matters on small VMs (waking the other CPU costs tens of microseconds): run it as
//! `taskset -c 0 multilevel bench` for the pinned figures; the server and anchors inherit the
//! placement. The report says which placement it ran with.

mod anchors;
#[cfg(feature = "etcd")]
mod etcd;
mod report;
mod targets;
mod watch;
mod workloads;

use std::io;
use std::path::PathBuf;

#[cfg(feature = "etcd")]
pub use etcd::run_etcd;
pub use report::{Figure, Report};
pub use targets::{Goal, Verdict};

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Keys in the data set read by gets and scans.
    pub keys: u64,
    /// Value size in bytes.
    pub value_size: usize,
    /// Operations per workload.
    pub ops: u64,
    /// Concurrent clients in the many-client workloads.
    pub clients: usize,
    /// Requests in flight per client in the pipelined workloads.
    pub depth: usize,
    /// Measure Redis too, when it is installed.
    pub redis: bool,
    /// The `multilevel` executable, started as the server (`serve`).
    pub server_exe: PathBuf,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            keys: 100_000,
            value_size: 100,
            ops: 100_000,
            clients: 50,
            depth: 64,
            redis: true,
            server_exe: PathBuf::from("multilevel"),
        }
    }
}

impl BenchConfig {
    /// A run of a few seconds, to check the command works (CI smoke).
    pub fn quick(mut self) -> Self {
        self.keys = 2_000;
        self.ops = 2_000;
        self.clients = 4;
        self.depth = 8;
        self.redis = false;
        self
    }
}

/// The key of entry `i`: 16 bytes, like the anchors' `'k' + 15 digits`.
pub(crate) fn key(i: u64) -> Vec<u8> {
    format!("k{i:015}").into_bytes()
}

/// Runs every workload and its anchors, in a scratch directory removed at the end.
pub async fn run(config: &BenchConfig) -> io::Result<Report> {
    let dir = tempfile::Builder::new().prefix("multilevel-bench-").tempdir()?;
    let mut report = Report::new(anchors::placement());
    workloads::run_all(config, dir.path(), &mut report).await?;
    watch::run_all(config, dir.path(), &mut report).await?;
    Ok(report)
}
