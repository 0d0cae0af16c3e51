//! The counters a store reports.

/// A snapshot of the store's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// User keys stored.
    pub entries: u64,
    /// Session records kept for at-most-once writes.
    pub sessions: u64,
    /// Current size of the memory map, in bytes.
    pub map_size: usize,
    /// The size the map may grow to, in bytes.
    pub max_map_size: usize,
    /// Size of the data file on disk, in bytes (sparse: can be less than the map).
    pub disk_size: u64,
    /// Iterator snapshots open now, across all connections.
    pub open_snapshots: usize,
    /// LMDB reader slots in use, by every process (snapshots and short reads).
    pub readers: u32,
    /// LMDB reader slots available in total.
    pub max_readers: u32,
    /// Id of the last committed LMDB transaction (counts commits by every process).
    pub last_txn_id: usize,
    /// Group commits made by this store's writer since it was opened.
    pub commits: u64,
    /// Writes answered by this store's writer since it was opened (applied, replayed or
    /// refused). With group commit, `commits` is usually much smaller.
    pub writes: u64,
    /// Times the map was resized since the store was opened.
    pub remaps: u64,
    /// The position of the newest commit in the change log (0 before the first).
    pub change_log_head: u64,
    /// The oldest position a watch may still start from: the oldest commit kept, or
    /// `change_log_head + 1` when the retention kept none.
    pub change_log_oldest: u64,
    /// Bytes of the commits the change log keeps.
    pub change_log_bytes: u64,
    /// Watch reads waiting for a commit now, across all connections.
    pub waiting_watch_reads: usize,
}

impl Stats {
    /// The counters as `(name, value)` pairs, the form they travel in over the wire.
    pub fn pairs(&self) -> Vec<(String, u64)> {
        let as_u64 = |n: usize| n as u64;
        [
            ("entries", self.entries),
            ("sessions", self.sessions),
            ("map_size", as_u64(self.map_size)),
            ("max_map_size", as_u64(self.max_map_size)),
            ("disk_size", self.disk_size),
            ("open_snapshots", as_u64(self.open_snapshots)),
            ("readers", u64::from(self.readers)),
            ("max_readers", u64::from(self.max_readers)),
            ("last_txn_id", as_u64(self.last_txn_id)),
            ("commits", self.commits),
            ("writes", self.writes),
            ("remaps", self.remaps),
            ("change_log_head", self.change_log_head),
            ("change_log_oldest", self.change_log_oldest),
            ("change_log_bytes", self.change_log_bytes),
            ("waiting_watch_reads", as_u64(self.waiting_watch_reads)),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }
}
