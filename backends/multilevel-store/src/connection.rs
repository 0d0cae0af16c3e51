//! The store as one connection sees it ([`ConnectionStore`]): its iterator snapshots, the
//! requests it runs inline (reads) or queues to the writer, the watch reads it parks until a
//! commit, and the backend contract's traits.

use std::sync::Arc;
use std::time::Instant;

use multilevel_proto::backend::{BackendConnection, Completions, Execution, Executor};
use multilevel_proto::{OpId, Outcome, StoreError, StoreRequest};

use crate::Inner;
use crate::env::{self, Shared};
use crate::snapshots::{self, ConnectionSnapshots};
use crate::watchers::Wait;
use crate::writer::{Done, Job};
use crate::{Store, changes, reads};

/// The store as one connection sees it: its iterator snapshots, and a way to run its requests.
/// `Send`, so a connection's task or thread can own it. Dropping it closes its snapshots.
pub struct ConnectionStore {
    pub(crate) inner: Arc<Inner>,
    pub(crate) snapshots: ConnectionSnapshots,
    /// Tells this connection's waiting watch reads from those of others.
    pub(crate) id: u64,
}

impl std::fmt::Debug for ConnectionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionStore").field("snapshots", &self.snapshots.len()).finish_non_exhaustive()
    }
}

impl ConnectionStore {
    /// Carries out one request.
    ///
    /// Reads (`Get`, `GetMany`, `OpenIterator`, `ReadBatch`, `OpenWatch`) run inline on the
    /// caller's thread and return [`Execution::Ready`]; `done` is dropped unused. Writes are
    /// handed to the writer thread and return [`Execution::Queued`]; `done` is then called
    /// exactly once, on the writer thread, after the group commit that made the write durable, or
    /// with its error. Keep `done` short (e.g. send on a channel): it delays the writes of the
    /// next group.
    ///
    /// A `ReadChanges` runs inline too, unless no commit is at or after its cursor yet: then it
    /// returns [`Execution::Queued`] and `done` is called once, with no events and the read's
    /// own cursor (read again), on the writer thread after the next commit, or on the caller's
    /// thread by [`close_watch`](Self::close_watch). Dropping the connection drops it uncalled.
    pub fn execute(
        &mut self,
        request: StoreRequest,
        done: impl FnOnce(Result<Outcome, StoreError>) + Send + 'static,
    ) -> Execution {
        let now = Instant::now();
        let shared = &*self.inner.shared;
        self.snapshots.close_idle(&shared.snapshots, now, shared.options.snapshot_idle_timeout);
        let result = match request {
            StoreRequest::Get { key } => shared.read_txn().and_then(|txn| reads::get(shared, &txn, &key)),
            StoreRequest::GetMany { keys } => shared.read_txn().and_then(|txn| reads::get_many(shared, &txn, &keys)),
            StoreRequest::OpenIterator { iterator } => {
                // A reused id replaces its snapshot; release the old one first so it does not
                // count against the cap.
                self.snapshots.close(&shared.snapshots, iterator);
                let (max, idle) = (shared.options.max_snapshots, shared.options.snapshot_idle_timeout);
                let open: snapshots::OpenSnapshot<'_> = &|register| shared.open_snapshot(register);
                shared.snapshots.take(max, idle, now, open).map(|slot| {
                    self.snapshots.insert(&shared.snapshots, iterator, slot);
                    Outcome::IteratorOpened
                })
            }
            StoreRequest::ReadBatch(read) => match self.snapshots.get(read.iterator) {
                None => Err(StoreError::UnknownIterator),
                Some(slot) => {
                    let result = slot.read(now, |txn| reads::read_batch(shared.data, txn, &read));
                    if result == Err(StoreError::UnknownIterator) {
                        self.snapshots.close(&shared.snapshots, read.iterator);
                    }
                    result
                }
            },
            StoreRequest::Stats => self.store().stats().map(|stats| Outcome::Stats(stats.pairs())),
            StoreRequest::OpenWatch { start, .. } => {
                shared.read_txn().and_then(|txn| changes::open(shared.changes, &txn.txn, start))
            }
            StoreRequest::ReadChanges(read) => {
                match shared.read_txn().and_then(|txn| changes::read(shared.changes, &txn.txn, &read)) {
                    Ok(Some(outcome)) => Ok(outcome),
                    Err(error) => Err(error),
                    Ok(None) => match shared.watchers.wait(self.id, read.watch, read.from, Box::new(done)) {
                        Wait::Queued => return Execution::Queued,
                        // A commit landed since the read's transaction: a wake-up, read again.
                        Wait::Ready => Ok(Outcome::Changes { events: Vec::new(), next: read.from }),
                    },
                }
            }
            StoreRequest::Write(write) => {
                let done: Done = Box::new(done);
                return if self.inner.send(Job::Write(write, done)) {
                    Execution::Queued
                } else {
                    Execution::Ready(Err(StoreError::Internal("the writer thread has stopped".into())))
                };
            }
        };
        Execution::Ready(result)
    }

    /// Runs `f` with a [`ReadScope`]: the point reads (`Get`, `GetMany`) executed through it
    /// share one read transaction, begun at the first of them, instead of one each.
    ///
    /// Run in one scope only requests that arrived before it began, so that every read still
    /// sees every write acknowledged before its request was sent. Any other request executed
    /// through the scope ends the shared transaction first, so a read after it begins a new one.
    pub fn read_scope<R>(&mut self, f: impl FnOnce(&mut ReadScope<'_>) -> R) -> R {
        let shared = Arc::clone(&self.inner.shared);
        self.snapshots.close_idle(&shared.snapshots, Instant::now(), shared.options.snapshot_idle_timeout);
        let mut scope = ReadScope { conn: self, shared: &shared, txn: None };
        f(&mut scope)
    }

    /// Releases an iterator's snapshot (`ServerEvent::CloseIterator`). Unknown ids are ignored.
    pub fn close_iterator(&mut self, iterator: u64) {
        let shared = &*self.inner.shared;
        self.snapshots.close(&shared.snapshots, iterator);
        self.snapshots.close_idle(&shared.snapshots, Instant::now(), shared.options.snapshot_idle_timeout);
    }

    /// Ends a watch (`ServerEvent::CloseWatch`): a `ReadChanges` of it still waiting for a
    /// commit is answered at once, with no events. Unknown ids are ignored.
    pub fn close_watch(&mut self, watch: u64) {
        self.inner.shared.watchers.close(self.id, watch);
    }

    /// Iterator snapshots this connection holds.
    pub fn open_snapshots(&self) -> usize {
        self.snapshots.len()
    }

    /// The store this connection belongs to.
    pub fn store(&self) -> Store {
        Store { inner: Arc::clone(&self.inner) }
    }
}

/// A run of one connection's requests whose point reads share one read transaction; see
/// [`ConnectionStore::read_scope`].
pub struct ReadScope<'a> {
    conn: &'a mut ConnectionStore,
    shared: &'a Shared,
    /// The shared transaction, once a point read began it.
    txn: Option<env::ReadTxn<'a>>,
}

/// The requests a [`ReadScope`] runs in its shared transaction.
enum PointRead {
    One(bytes::Bytes),
    Many(Vec<bytes::Bytes>),
}

impl std::fmt::Debug for ReadScope<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadScope").field("reading", &self.txn.is_some()).finish_non_exhaustive()
    }
}

impl ReadScope<'_> {
    /// Carries out one request as [`ConnectionStore::execute`] does, except that `Get` and
    /// `GetMany` read from the scope's shared transaction. Any other request ends that
    /// transaction before it runs.
    pub fn execute(
        &mut self,
        request: StoreRequest,
        done: impl FnOnce(Result<Outcome, StoreError>) + Send + 'static,
    ) -> Execution {
        let read = match request {
            StoreRequest::Get { key } => PointRead::One(key),
            StoreRequest::GetMany { keys } => PointRead::Many(keys),
            other => {
                // Writes, snapshots and stats take the gate themselves: never while holding it.
                self.txn = None;
                return self.conn.execute(other, done);
            }
        };
        let txn = match self.txn.take() {
            Some(txn) => txn,
            None => match self.shared.read_txn() {
                Ok(txn) => txn,
                Err(err) => return Execution::Ready(Err(err)),
            },
        };
        let txn = self.txn.insert(txn);
        Execution::Ready(match read {
            PointRead::One(key) => reads::get(self.shared, txn, &key),
            PointRead::Many(keys) => reads::get_many(self.shared, txn, &keys),
        })
    }

    /// The connection's store, for what the scope does not wrap (closing iterators).
    pub fn connection(&mut self) -> &mut ConnectionStore {
        self.txn = None;
        self.conn
    }
}

impl Drop for ConnectionStore {
    fn drop(&mut self) {
        self.snapshots.close_all(&self.inner.shared.snapshots);
        self.inner.shared.watchers.forget(self.id);
    }
}

/// The `done` callback of `request`: sends its result to `completions` if it was queued. Only
/// writes and watch reads queue, so only they take a handle; the callback is boxed once, by the
/// writer queue or the waiting-read registry.
fn done_for(
    op: OpId,
    request: &StoreRequest,
    completions: &Arc<dyn Completions>,
) -> impl FnOnce(Result<Outcome, StoreError>) + Send + 'static {
    let queues = matches!(request, StoreRequest::Write(_) | StoreRequest::ReadChanges(_));
    let completions = queues.then(|| Arc::clone(completions));
    move |result| {
        if let Some(completions) = completions {
            completions.complete(op, result);
        }
    }
}

impl Executor for ConnectionStore {
    fn execute(&mut self, op: OpId, request: StoreRequest, completions: &Arc<dyn Completions>) -> Execution {
        let done = done_for(op, &request, completions);
        ConnectionStore::execute(self, request, done)
    }

    fn close_iterator(&mut self, iterator: u64) {
        ConnectionStore::close_iterator(self, iterator);
    }

    fn close_watch(&mut self, watch: u64) {
        ConnectionStore::close_watch(self, watch);
    }
}

impl BackendConnection for ConnectionStore {
    fn read_scope(&mut self, run: &mut dyn FnMut(&mut dyn Executor)) {
        ConnectionStore::read_scope(self, |scope| run(scope));
    }
}

impl Executor for ReadScope<'_> {
    fn execute(&mut self, op: OpId, request: StoreRequest, completions: &Arc<dyn Completions>) -> Execution {
        let done = done_for(op, &request, completions);
        ReadScope::execute(self, request, done)
    }

    fn close_iterator(&mut self, iterator: u64) {
        self.connection().close_iterator(iterator);
    }

    fn close_watch(&mut self, watch: u64) {
        self.connection().close_watch(watch);
    }
}
