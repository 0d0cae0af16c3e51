//! The LMDB store behind a multilevel server: it carries out the
//! [`StoreRequest`]s that [`multilevel_proto::ServerConnection`] emits, keeping the
//! [store contract](multilevel_proto::store).
//!
//! - **Reads** (`Get`, `GetMany`, `OpenIterator`, `ReadBatch`) run inline on the caller's
//!   thread: a short read transaction, or the iterator's snapshot.
//! - **Writes** go to one writer thread that owns every write transaction and commits whatever
//!   is queued as one group: one fsync for many writes.
//! - **Iterators** read one consistent snapshot (an LMDB read transaction) each, within a global
//!   cap ([`StoreOptions::max_snapshots`]); snapshots idle for
//!   [`StoreOptions::snapshot_idle_timeout`] are closed.
//! - **Watches**: every applied write that changes something is one commit of a change log,
//!   kept in the same transaction as the writes and bounded by
//!   [`StoreOptions::change_retention`]; a watch read with nothing new waits for the next commit.
//! - **At-most-once writes**: each client session's recent outcomes are stored in the same
//!   transaction as the writes, so a replayed write is not applied twice and gets its original
//!   answer, across restarts too.
//!
//! # Example
//!
//! ```
//! use multilevel_proto::{Outcome, StoreRequest, WriteOp, WriteRequest};
//! use multilevel_store::{Execution, Store, StoreOptions};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
//! let mut conn = store.connection();
//!
//! let (tx, rx) = std::sync::mpsc::channel();
//! let put = WriteRequest { session: 7, request: 1, op: WriteOp::Put { key: "k".into(), value: "v".into() } };
//! let queued = conn.execute(StoreRequest::Write(put), move |result| tx.send(result).unwrap());
//! assert!(matches!(queued, Execution::Queued));
//! assert_eq!(rx.recv().unwrap(), Ok(Outcome::Written)); // durable now
//!
//! let Execution::Ready(got) = conn.execute(StoreRequest::Get { key: "k".into() }, |_| {}) else { panic!() };
//! assert_eq!(got, Ok(Outcome::Value(Some("v".into()))));
//! ```
//!
//! # Key layout and limits
//!
//! Every user key is stored as `[0x00] ++ key`, so the empty key works and the longest key is
//! [`Store::MAX_KEY_SIZE`] (510) bytes: LMDB's 511 less the prefix. Longer keys in writes fail
//! with [`StoreError::KeyTooLarge`]; a read of one finds nothing.
//!
//! # What at-most-once costs, and its bound
//!
//! Per live session the store keeps the highest request id it handled and the failures among
//! the last [`StoreOptions::replay_window`] request ids (default 2^20; successes are implied),
//! a record of a few bytes. A replay older than the window gets `ReplayExpired`, never a
//! second application.
//! A session that has not written for [`StoreOptions::session_retention`] (default 7 days) is
//! forgotten: a replay of one of its old writes after that would be applied again. Clients
//! replay within seconds of a reconnect, so this only matters for a client that stays away
//! longer than the retention and then replays.
//!
//! # Durability
//!
//! A write's `done` runs after the commit that made it durable (fsync). With
//! [`StoreOptions::no_sync`] the fsync is skipped: a crash of the machine (not of the process)
//! may lose the last commits.
//!
//! # Resizing
//!
//! The map starts at [`StoreOptions::map_size`] (sparse) and doubles when full, up to
//! [`StoreOptions::max_map_size`]; then writes fail with [`StoreError::StorageFull`]. LMDB can
//! only resize with no transaction open, so a resize closes every open iterator snapshot (their
//! next batch gets [`StoreError::UnknownIterator`]).

#![warn(missing_docs)]
#![deny(unsafe_code)]

// Benchmark support (raw LMDB anchors), public for `multilevel bench` only: not part of the API.
#[doc(hidden)]
pub mod anchor;
mod apply;
mod changes;
mod connection;
mod env;
mod error;
mod keys;
pub mod metrics;
mod options;
mod reads;
mod record;
mod snapshots;
mod stats;
mod watchers;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::thread::{self, JoinHandle};

pub use connection::{ConnectionStore, ReadScope};
pub use error::OpenError;
pub use multilevel_proto::backend::{Backend, BackendConnection, Completions, Execution, Executor};
pub use multilevel_proto::{
    BatchOp, BatchRead, KeyRange, OpId, Outcome, ServerConfig, SessionId, StoreError, StoreRequest, WriteOp,
    WriteRequest,
};
pub use options::{BatchHook, ChangeRetention, DelHook, Hooks, PutHook, SizeError, StoreOptions, parse_size};
pub use stats::Stats;

use env::Shared;
use writer::Job;

/// Owns the writer thread; dropped with the last [`Store`] or [`ConnectionStore`].
struct Inner {
    shared: Arc<Shared>,
    queue: Option<Sender<Job>>,
    writer: Option<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what is queued, then stop.
        drop(self.queue.take());
        if let Some(writer) = self.writer.take() {
            if writer.thread().id() == thread::current().id() {
                // Dropped from a `done` callback: the writer stops by itself after it returns.
                return;
            }
            if writer.join().is_err() {
                tracing::error!("the writer thread panicked");
            }
        }
    }
}

impl Inner {
    /// Queues a job for the writer; false if it has stopped.
    fn send(&self, job: Job) -> bool {
        self.queue.as_ref().is_some_and(|queue| queue.send(job).is_ok())
    }
}

/// An open LMDB store. Cheap to clone; every clone is the same store. The environment closes
/// (after the writer has committed everything queued) when the last `Store` and the last
/// [`ConnectionStore`] are dropped.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.inner.shared.env.path()).finish_non_exhaustive()
    }
}

impl Store {
    /// The longest key the store accepts: LMDB's 511 bytes less the one-byte prefix that lets
    /// the empty key be stored.
    pub const MAX_KEY_SIZE: usize = keys::MAX_KEY_SIZE;

    /// Opens the store in directory `path`, creating the directory and the database if missing.
    ///
    /// With [`StoreOptions::readonly`] nothing is created: the database must already exist,
    /// else this fails with [`OpenError::Missing`] (a mistyped path is an error, not a new
    /// empty database).
    ///
    /// One process may open a path once; clone the `Store` to share it.
    pub fn open(path: impl AsRef<Path>, options: StoreOptions) -> Result<Store, OpenError> {
        let path = path.as_ref();
        if options.max_readers < u32::try_from(options.max_snapshots).unwrap_or(u32::MAX) {
            tracing::warn!(
                max_readers = options.max_readers,
                max_snapshots = options.max_snapshots,
                "fewer LMDB reader slots than snapshots: iterators may fail with TooManySnapshots early"
            );
        }
        let shared = Arc::new(Shared::open(path, options)?);
        let (queue, writer) = writer::spawn(Arc::clone(&shared)).map_err(OpenError::Thread)?;
        Ok(Store { inner: Arc::new(Inner { shared, queue: Some(queue), writer: Some(writer) }) })
    }

    /// The server settings this store needs: the defaults, with `max_key_size` lowered to
    /// [`Store::MAX_KEY_SIZE`] and `readonly` as opened.
    pub fn server_config(&self) -> ServerConfig {
        let shared = &self.inner.shared;
        ServerConfig {
            max_key_size: u32::try_from(shared.max_key_size).unwrap_or(u32::MAX),
            readonly: shared.options.readonly,
            ..ServerConfig::default()
        }
    }

    /// The store's directory, as LMDB resolved it.
    pub fn path(&self) -> &Path {
        self.inner.shared.env.path()
    }

    /// State for one client connection: its iterator snapshots.
    pub fn connection(&self) -> ConnectionStore {
        let id = self.inner.shared.watchers.connection_id();
        ConnectionStore { inner: Arc::clone(&self.inner), snapshots: snapshots::ConnectionSnapshots::default(), id }
    }

    /// The store's counters.
    pub fn stats(&self) -> Result<Stats, StoreError> {
        let shared = &self.inner.shared;
        let (entries, sessions, info, log) = {
            let txn = shared.read_txn()?;
            let count = |db: env::Db| db.len(&txn.txn).map_err(|e| error::internal("counting entries", &e));
            (count(shared.data)?, count(shared.sessions)?, shared.env.info(), changes::meta(shared.changes, &txn.txn)?)
        };
        let disk_size = shared.env.real_disk_size().map_err(|e| error::internal("reading the file size", &e))?;
        Ok(Stats {
            entries,
            sessions,
            map_size: info.map_size,
            max_map_size: shared.max_map_size,
            disk_size,
            open_snapshots: shared.snapshots.open_count(),
            readers: info.number_of_readers,
            max_readers: info.maximum_number_of_readers,
            last_txn_id: info.last_txn_id,
            commits: shared.commits.load(Ordering::Relaxed),
            writes: shared.writes.load(Ordering::Relaxed),
            remaps: shared.remaps.load(Ordering::Relaxed),
            change_log_head: log.head,
            change_log_oldest: log.oldest(),
            change_log_bytes: log.bytes,
            waiting_watch_reads: shared.watchers.len(),
        })
    }

    /// Waits until every write queued before this call is committed, then flushes the data
    /// file to disk (which matters with [`StoreOptions::no_sync`]; otherwise each commit already
    /// did).
    pub fn sync(&self) -> Result<(), StoreError> {
        let (tx, rx) = mpsc::channel();
        if !self.inner.send(Job::Flush(tx)) || rx.recv().is_err() {
            return Err(StoreError::Internal("the writer thread has stopped".into()));
        }
        if self.inner.shared.options.readonly {
            return Ok(());
        }
        self.inner.shared.env.force_sync().map_err(|e| error::internal("flushing to disk", &e))
    }

    /// Drops this handle. If it was the last handle (no other `Store` clone and no
    /// [`ConnectionStore`] alive), the writer commits everything queued and stops, and the
    /// environment is closed before this returns, so the path can be opened again; returns
    /// whether that happened.
    pub fn close(self) -> bool {
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => {
                let shared = Arc::clone(&inner.shared);
                drop(inner);
                // The writer has stopped; this is the last handle on the environment.
                Arc::strong_count(&shared) == 1
            }
            Err(_) => false,
        }
    }
}

impl Backend for Store {
    type Connection = ConnectionStore;

    fn connection(&self) -> ConnectionStore {
        Store::connection(self)
    }

    fn server_config(&self) -> ServerConfig {
        Store::server_config(self)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.sync()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use multilevel_proto::{WriteOp, WriteRequest};

    use super::*;

    fn value(execution: Execution) -> Option<bytes::Bytes> {
        match execution {
            Execution::Ready(Ok(Outcome::Value(value))) => value,
            other => panic!("not a value: {other:?}"),
        }
    }

    #[test]
    fn a_read_scope_sees_the_writes_it_ran_before_its_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let mut conn = store.connection();
        let get = || StoreRequest::Get { key: "k".into() };
        conn.read_scope(|scope| {
            assert_eq!(value(scope.execute(get(), |_| {})), None);
            let (tx, rx) = mpsc::channel();
            let put = WriteOp::Put { key: "k".into(), value: "v".into() };
            let write = StoreRequest::Write(WriteRequest { session: 1, request: 1, op: put });
            assert_eq!(scope.execute(write, move |result| tx.send(result).unwrap()), Execution::Queued);
            assert_eq!(rx.recv_timeout(Duration::from_secs(60)).unwrap(), Ok(Outcome::Written));
            // The write ended the shared transaction: this read begins a new one.
            assert_eq!(value(scope.execute(get(), |_| {})), Some("v".into()));
            assert_eq!(value(scope.execute(get(), |_| {})), Some("v".into()));
        });
    }

    #[test]
    fn reads_of_one_scope_share_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let mut conn = store.connection();
        let mut other = store.connection();
        let get = || StoreRequest::Get { key: "k".into() };
        conn.read_scope(|scope| {
            assert_eq!(value(scope.execute(get(), |_| {})), None);
            // Another connection's write, acknowledged after this scope's first read began.
            let (tx, rx) = mpsc::channel();
            let put = WriteOp::Put { key: "k".into(), value: "v".into() };
            let write = StoreRequest::Write(WriteRequest { session: 2, request: 1, op: put });
            let _ = other.execute(write, move |result| tx.send(result).unwrap());
            assert_eq!(rx.recv_timeout(Duration::from_secs(60)).unwrap(), Ok(Outcome::Written));
            assert_eq!(value(scope.execute(get(), |_| {})), None, "the scope reads its one snapshot");
        });
        conn.read_scope(|scope| assert_eq!(value(scope.execute(get(), |_| {})), Some("v".into())));
    }
}
