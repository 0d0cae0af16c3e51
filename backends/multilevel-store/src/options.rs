//! How a [`Store`](crate::Store) is opened: sizes, durability, limits and the write hooks.

use std::time::Duration;

pub use multilevel_proto::hooks::{BatchHook, DelHook, Hooks, PutHook};

/// Reader slots LMDB keeps beyond the snapshot cap, for short reads and other processes.
const READER_HEADROOM: u32 = 126;

fn default_max_readers(max_snapshots: usize) -> u32 {
    u32::try_from(max_snapshots).unwrap_or(u32::MAX).saturating_add(READER_HEADROOM)
}

/// Settings of a [`Store`](crate::Store). Start from [`StoreOptions::default()`] and change
/// what you need, with the fields or the builder methods of the same names.
///
/// ```
/// use std::time::Duration;
/// use multilevel_store::StoreOptions;
///
/// let options = StoreOptions::default().max_snapshots(64).snapshot_idle_timeout(Duration::from_secs(30));
/// assert_eq!(options.max_readers, 64 + 126);
/// ```
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The initial size of the memory map, rounded up to a multiple of 64 KiB. The data file is
    /// sparse, so a large map costs address space, not disk. Default 64 GiB on 64-bit targets
    /// (1 GiB on 32-bit ones).
    pub map_size: usize,
    /// How far the map may grow: when a write finds it full, it is doubled up to this size
    /// (rounded down to a multiple of 64 KiB, and never below `map_size`). Past it, writes fail
    /// with [`StoreError::StorageFull`](crate::StoreError::StorageFull). Default 1 TiB on
    /// 64-bit targets (2 GiB on 32-bit ones).
    pub max_map_size: usize,
    /// Skip the fsync after each group commit (LMDB's `MDB_NOSYNC`). Default `false`: a write is
    /// answered only once it is on disk. With `true`, writes are much faster but a crash of the
    /// machine (not of the process) may lose the last commits; the database itself stays
    /// consistent. [`Store::sync`](crate::Store::sync) flushes on demand.
    pub no_sync: bool,
    /// Refuse every write with [`StoreError::ReadOnly`](crate::StoreError::ReadOnly), without
    /// running hooks. The environment is opened read-only (`MDB_RDONLY`), so the files are never
    /// modified and may live on a read-only filesystem. The database must exist: a read-only
    /// open creates nothing, and a path with no database fails with
    /// [`OpenError::Missing`](crate::OpenError::Missing). Default `false`.
    pub readonly: bool,
    /// Iterator snapshots (LMDB read transactions) open at once across all connections; past it
    /// opening an iterator fails with
    /// [`StoreError::TooManySnapshots`](crate::StoreError::TooManySnapshots), after idle ones
    /// are closed. Each snapshot holds an LMDB reader slot and keeps the pages it sees from being
    /// reused. Default 512.
    pub max_snapshots: usize,
    /// A snapshot not read for this long is closed: the next batch read on it fails with
    /// [`StoreError::UnknownIterator`](crate::StoreError::UnknownIterator). Idle snapshots are
    /// closed when their connection next executes anything, and across connections when the
    /// snapshot cap is reached. Default 60 s.
    pub snapshot_idle_timeout: Duration,
    /// LMDB reader slots, shared by every process using the database. Default `max_snapshots +
    /// 126` (the builder method [`max_snapshots`](Self::max_snapshots) keeps that relation unless
    /// `max_readers` was changed).
    pub max_readers: u32,
    /// How many request ids back a replayed write still gets its original answer, per client
    /// session (see [`multilevel_proto::store::SessionRecord`]); older replays get
    /// `ReplayExpired`. Only failures are stored, so the record stays small. Default 2^20.
    pub replay_window: u64,
    /// A session that has not written for this long is forgotten. A replay of one of its writes
    /// after that would be applied again; clients replay within seconds, not days. Default 7 days.
    pub session_retention: Duration,
    /// Checks run before writes.
    pub hooks: Hooks,
    /// How much of the change log (the history that watches replay) is kept.
    pub change_retention: ChangeRetention,
}

/// How much history the change log keeps for watches. The oldest commits are dropped, in the
/// writer's transaction, whenever a commit is appended and the log is over any of the limits; a
/// watch from a dropped position fails with
/// [`StoreError::Compacted`](crate::StoreError::Compacted), naming the oldest position kept.
///
/// ```
/// use std::time::Duration;
/// use multilevel_store::{ChangeRetention, StoreOptions};
///
/// let retention = ChangeRetention::default().max_commits(1_000).max_age(Some(Duration::from_secs(3600)));
/// let options = StoreOptions::default().change_retention(retention);
/// assert_eq!(options.change_retention.max_bytes, 64 << 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeRetention {
    /// Most commits kept. 0 keeps none: every watch must start from now and keep up with no
    /// history to resume from. Default 100 000.
    pub max_commits: u64,
    /// Most bytes of stored commits (their encoded changes, keys and values included) kept. The
    /// newest commit is kept even if it alone is larger, so a watch that keeps up never misses
    /// it. Default 64 MiB.
    pub max_bytes: u64,
    /// Commits older than this are dropped (checked when a later commit is appended, so with no
    /// writes the history stays). The newest commit is always kept by this limit. Default
    /// `None`: no age limit.
    pub max_age: Option<Duration>,
}

impl Default for ChangeRetention {
    fn default() -> Self {
        Self { max_commits: 100_000, max_bytes: 64 << 20, max_age: None }
    }
}

impl ChangeRetention {
    /// Sets [`max_commits`](Self::max_commits).
    pub fn max_commits(mut self, commits: u64) -> Self {
        self.max_commits = commits;
        self
    }

    /// Sets [`max_bytes`](Self::max_bytes).
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// Sets [`max_age`](Self::max_age).
    pub fn max_age(mut self, age: Option<Duration>) -> Self {
        self.max_age = age;
        self
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        let (map_size, max_map_size) = if cfg!(target_pointer_width = "64") {
            (64usize << 30, (1u64 << 40) as usize)
        } else {
            (1usize << 30, usize::MAX & !0xffff)
        };
        let max_snapshots = 512;
        Self {
            map_size,
            max_map_size,
            no_sync: false,
            readonly: false,
            max_snapshots,
            snapshot_idle_timeout: Duration::from_secs(60),
            max_readers: default_max_readers(max_snapshots),
            replay_window: multilevel_proto::memory::DEFAULT_REPLAY_WINDOW,
            session_retention: Duration::from_secs(7 * 24 * 60 * 60),
            hooks: Hooks::default(),
            change_retention: ChangeRetention::default(),
        }
    }
}

impl StoreOptions {
    /// Sets [`map_size`](Self::map_size).
    pub fn map_size(mut self, bytes: usize) -> Self {
        self.map_size = bytes;
        self
    }

    /// Sets [`max_map_size`](Self::max_map_size).
    pub fn max_map_size(mut self, bytes: usize) -> Self {
        self.max_map_size = bytes;
        self
    }

    /// Sets [`no_sync`](Self::no_sync).
    pub fn no_sync(mut self, no_sync: bool) -> Self {
        self.no_sync = no_sync;
        self
    }

    /// Sets [`readonly`](Self::readonly).
    pub fn readonly(mut self, readonly: bool) -> Self {
        self.readonly = readonly;
        self
    }

    /// Sets [`max_snapshots`](Self::max_snapshots), and [`max_readers`](Self::max_readers) to
    /// `max_snapshots + 126` if it still had its default.
    pub fn max_snapshots(mut self, max: usize) -> Self {
        if self.max_readers == default_max_readers(self.max_snapshots) {
            self.max_readers = default_max_readers(max);
        }
        self.max_snapshots = max;
        self
    }

    /// Sets [`snapshot_idle_timeout`](Self::snapshot_idle_timeout).
    pub fn snapshot_idle_timeout(mut self, timeout: Duration) -> Self {
        self.snapshot_idle_timeout = timeout;
        self
    }

    /// Sets [`max_readers`](Self::max_readers).
    pub fn max_readers(mut self, readers: u32) -> Self {
        self.max_readers = readers;
        self
    }

    /// Sets [`replay_window`](Self::replay_window).
    pub fn replay_window(mut self, ids: u64) -> Self {
        self.replay_window = ids;
        self
    }

    /// Sets [`session_retention`](Self::session_retention).
    pub fn session_retention(mut self, retention: Duration) -> Self {
        self.session_retention = retention;
        self
    }

    /// Sets [`hooks`](Self::hooks).
    pub fn hooks(mut self, hooks: Hooks) -> Self {
        self.hooks = hooks;
        self
    }

    /// Sets [`change_retention`](Self::change_retention).
    pub fn change_retention(mut self, retention: ChangeRetention) -> Self {
        self.change_retention = retention;
        self
    }
}

/// Why [`parse_size`] refused a text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SizeError {
    /// The text does not start with a whole number.
    #[error("`{text}` is not a size: expected e.g. 4096, 512MiB, 64GiB")]
    NotASize {
        /// The text given.
        text: String,
    },
    /// The unit after the number is not one [`parse_size`] knows.
    #[error("unknown size unit `{unit}`: use B, KiB, MiB, GiB, TiB (or KB, MB, GB, TB)")]
    UnknownUnit {
        /// The unit given.
        unit: String,
    },
    /// The size does not fit in this machine's `usize`.
    #[error("`{text}` is too large for this machine")]
    TooLarge {
        /// The text given.
        text: String,
    },
}

/// Parses a size in bytes, as the servers' `--map-size` flag takes it: `4096`, `512MiB`,
/// `64GiB`, `1TiB`; `KiB`, `MiB`, `GiB`, `TiB` (and `K`, `M`, `G`, `T`) are powers of 1024,
/// `KB`, `MB`, `GB`, `TB` powers of 1000. Units are case-insensitive; spaces around the text
/// and between number and unit are allowed.
///
/// ```
/// use multilevel_store::parse_size;
///
/// assert_eq!(parse_size("512MiB"), Ok(512 << 20));
/// assert_eq!(parse_size("10MB"), Ok(10_000_000));
/// assert!(parse_size("lots").is_err());
/// ```
pub fn parse_size(text: &str) -> Result<usize, SizeError> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| SizeError::NotASize { text: text.to_owned() })?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(SizeError::UnknownUnit { unit: unit.trim().to_owned() }),
    };
    number
        .checked_mul(multiplier)
        .and_then(|bytes| usize::try_from(bytes).ok())
        .ok_or_else(|| SizeError::TooLarge { text: text.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size(" 2 GiB "), Ok(2 << 30));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("1TB"), Ok(1_000_000_000_000));
        assert!(matches!(parse_size(""), Err(SizeError::NotASize { .. })));
        assert!(matches!(parse_size("MiB"), Err(SizeError::NotASize { .. })));
        assert_eq!(parse_size("3 parsecs"), Err(SizeError::UnknownUnit { unit: "parsecs".into() }));
        assert!(matches!(parse_size("99999999999999999999"), Err(SizeError::NotASize { .. })));
        assert!(matches!(parse_size("16777216TiB"), Err(SizeError::TooLarge { .. })));
    }
}
