//! What the LMDB store records through the [`metrics`] facade (no-ops unless the program
//! installs a recorder): group commits and iterator snapshots.
//!
//! The writer thread registers its handles when the store opens: install the recorder first.

use ::metrics::{Gauge, Unit, describe_gauge, describe_histogram, gauge};

/// Writes committed per LMDB write transaction (group commit), a histogram.
pub const COMMIT_WRITES: &str = "multilevel_store_commit_writes";
/// Time to commit one write transaction (the fsync, unless `no_sync`), in seconds.
pub const COMMIT_DURATION: &str = "multilevel_store_commit_duration_seconds";
/// Iterator snapshots (LMDB read transactions) open now.
pub const SNAPSHOTS: &str = "multilevel_store_snapshots";

/// Gives every metric of this crate its help text; call once, after installing a recorder.
pub fn describe() {
    describe_histogram!(COMMIT_WRITES, Unit::Count, "Writes committed per LMDB write transaction (group commit)");
    describe_histogram!(
        COMMIT_DURATION,
        Unit::Seconds,
        "Time to commit one LMDB write transaction, its fsync included unless --no-sync"
    );
    describe_gauge!(SNAPSHOTS, "Iterator snapshots (LMDB read transactions) open now");
}

/// The open-snapshots gauge, registered with the store.
pub(crate) struct SnapshotGauge(pub(crate) Gauge);

impl Default for SnapshotGauge {
    fn default() -> Self {
        Self(gauge!(SNAPSHOTS))
    }
}
