//! An in-memory store that keeps the [store contract](crate::store): the reference the model
//! tests and fuzz targets check the protocol against, and a stand-in for tests of code built on
//! this crate.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use crate::backend::{Backend, BackendConnection, Completions, Execution, Executor};
use crate::change::{Change, ChangeRead, Cursor};
use crate::change_log::ChangeLog;
use crate::condition::{WriteAnswer, encode_counter, first_failure, increment};
use crate::hooks::Hooks;
use crate::message::{BatchOp, NO_REPLAY_SESSION, SessionId};
use crate::range::KeyRange;
use crate::server::{OpId, ServerConfig};
use crate::store::{BatchRead, Outcome, ReplayCheck, SessionRecord, StoreError, StoreRequest, WriteOp, WriteRequest};

type Map = BTreeMap<Bytes, Bytes>;

/// Request ids whose outcomes are remembered per session by default; see [`SessionRecord`].
pub const DEFAULT_REPLAY_WINDOW: u64 = 1 << 20;

/// An ordered map with at-most-once writes and snapshot iterators.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    data: Arc<Map>,
    sessions: HashMap<SessionId, SessionRecord>,
    applied: Vec<(SessionId, u64)>,
    handled: Vec<(SessionId, u64)>,
    readonly: bool,
    hooks: Hooks,
    changes: ChangeLog,
}

/// The iterator snapshots of one connection.
#[derive(Debug, Default)]
pub struct MemorySnapshots {
    open: HashMap<u64, Arc<Map>>,
}

impl MemorySnapshots {
    /// Releases an iterator's snapshot ([`ServerEvent::CloseIterator`](crate::ServerEvent)).
    pub fn close(&mut self, iterator: u64) {
        self.open.remove(&iterator);
    }

    /// How many snapshots are open.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether no snapshot is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

/// A [`MemoryStore`] shared by the connections of a server: a [`Backend`] for tests and for
/// programs that want a server with nothing on disk. Every request is answered at once.
#[derive(Debug, Clone, Default)]
pub struct MemoryBackend {
    store: Arc<Mutex<MemoryStore>>,
    waiting: Arc<Mutex<Waiting>>,
}

/// Watch reads waiting for a commit, of every connection.
#[derive(Default)]
struct Waiting {
    next_connection: u64,
    reads: Vec<WaitingRead>,
}

struct WaitingRead {
    connection: u64,
    watch: u64,
    op: OpId,
    from: Cursor,
    completions: Arc<dyn Completions>,
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting").field("reads", &self.reads.len()).finish_non_exhaustive()
    }
}

impl WaitingRead {
    /// Answers the read with no events: the machine reads again, and finds what is new.
    fn wake(self) {
        self.completions.complete(self.op, Ok(Outcome::Changes { events: Vec::new(), next: self.from }));
    }
}

impl MemoryBackend {
    /// A backend serving `store`.
    pub fn new(store: MemoryStore) -> Self {
        Self { store: Arc::new(Mutex::new(store)), waiting: Arc::default() }
    }

    fn waiting(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the waiting reads that `matches` selects.
    fn take_waiting(&self, matches: impl Fn(&WaitingRead) -> bool) -> Vec<WaitingRead> {
        let mut waiting = self.waiting();
        let (taken, kept) = std::mem::take(&mut waiting.reads).into_iter().partition(|read| matches(read));
        waiting.reads = kept;
        taken
    }

    /// The store, to look at or change it directly.
    pub fn store(&self) -> MutexGuard<'_, MemoryStore> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One connection's view of a [`MemoryBackend`]: its iterator snapshots.
#[derive(Debug)]
pub struct MemoryConnection {
    backend: MemoryBackend,
    snapshots: MemorySnapshots,
    /// Tells this connection's waiting watch reads from those of others.
    id: u64,
}

impl Backend for MemoryBackend {
    type Connection = MemoryConnection;

    fn connection(&self) -> MemoryConnection {
        let id = {
            let mut waiting = self.waiting();
            waiting.next_connection += 1;
            waiting.next_connection
        };
        MemoryConnection { backend: self.clone(), snapshots: MemorySnapshots::default(), id }
    }

    fn server_config(&self) -> ServerConfig {
        ServerConfig { readonly: self.store().readonly, ..ServerConfig::default() }
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(()) // nothing is kept anywhere that could lag behind
    }
}

impl Executor for MemoryConnection {
    fn execute(&mut self, op: OpId, request: StoreRequest, completions: &Arc<dyn Completions>) -> Execution {
        let mut store = self.backend.store();
        if let StoreRequest::ReadChanges(read) = &request {
            return match store.read_changes(read) {
                Ok(Some(outcome)) => Execution::Ready(Ok(outcome)),
                Err(err) => Execution::Ready(Err(err)),
                Ok(None) => {
                    // Registered under the store's lock, so no commit slips in between.
                    let waiting = WaitingRead {
                        connection: self.id,
                        watch: read.watch,
                        op,
                        from: read.from,
                        completions: Arc::clone(completions),
                    };
                    self.backend.waiting().reads.push(waiting);
                    Execution::Queued
                }
            };
        }
        let head = store.changes.head();
        let result = store.execute(&mut self.snapshots, request);
        let committed = store.changes.head() != head;
        drop(store);
        if committed {
            self.backend.take_waiting(|_| true).into_iter().for_each(WaitingRead::wake);
        }
        Execution::Ready(result)
    }

    fn close_iterator(&mut self, iterator: u64) {
        self.snapshots.close(iterator);
    }

    fn close_watch(&mut self, watch: u64) {
        let id = self.id;
        self.backend
            .take_waiting(|read| read.connection == id && read.watch == watch)
            .into_iter()
            .for_each(WaitingRead::wake);
    }
}

impl Drop for MemoryConnection {
    fn drop(&mut self) {
        let id = self.id;
        drop(self.backend.take_waiting(|read| read.connection == id));
    }
}

impl BackendConnection for MemoryConnection {}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the store refuse writes, as a read-only database would.
    pub fn set_readonly(&mut self, readonly: bool) {
        self.readonly = readonly;
    }

    /// Runs `hooks` before every write, as a server's store does.
    pub fn set_hooks(&mut self, hooks: Hooks) {
        self.hooks = hooks;
    }

    /// The current contents.
    pub fn data(&self) -> &BTreeMap<Bytes, Bytes> {
        &self.data
    }

    /// Every `(session, request)` applied so far, in order; a write applied twice would show
    /// twice.
    pub fn applied(&self) -> &[(SessionId, u64)] {
        &self.applied
    }

    /// Every `(session, request)` evaluated against the data so far, in order: the applied
    /// writes, and the conditional writes and increments answered with a failed condition or
    /// a value that is not a number. Writes refused before (read-only, hooks) are not in it.
    pub fn handled(&self) -> &[(SessionId, u64)] {
        &self.handled
    }

    /// Carries out one request, with `snapshots` being those of the requesting connection.
    pub fn execute(&mut self, snapshots: &mut MemorySnapshots, request: StoreRequest) -> Result<Outcome, StoreError> {
        match request {
            StoreRequest::Get { key } => Ok(Outcome::Value(self.data.get(&key).cloned())),
            StoreRequest::GetMany { keys } => {
                Ok(Outcome::Values(keys.iter().map(|k| self.data.get(k).cloned()).collect()))
            }
            StoreRequest::Write(write) => self.write(write).map(Outcome::from),
            StoreRequest::OpenIterator { iterator } => {
                snapshots.open.insert(iterator, Arc::clone(&self.data));
                Ok(Outcome::IteratorOpened)
            }
            StoreRequest::Stats => Ok(Outcome::Stats(vec![("entries".into(), self.data.len() as u64)])),
            StoreRequest::ReadBatch(read) => {
                let snapshot = snapshots.open.get(&read.iterator).ok_or(StoreError::UnknownIterator)?;
                Ok(read_batch(snapshot, &read))
            }
            StoreRequest::OpenWatch { start, .. } => self.changes.open(start),
            // Never waits: with nothing new, a wake-up answer (no events, the same cursor).
            StoreRequest::ReadChanges(read) => {
                Ok(self.changes.read(&read)?.unwrap_or(Outcome::Changes { events: Vec::new(), next: read.from }))
            }
        }
    }

    /// The store's change log, e.g. to set how much of it is kept.
    pub fn change_log(&mut self) -> &mut ChangeLog {
        &mut self.changes
    }

    /// Answers a `ReadChanges`, or `None` when it must wait for a commit (see
    /// [`ChangeLog::read`]); [`execute`](Self::execute) answers those at once, with nothing.
    pub fn read_changes(&self, read: &ChangeRead) -> Result<Option<Outcome>, StoreError> {
        self.changes.read(read)
    }

    fn write(&mut self, write: WriteRequest) -> Result<WriteAnswer, StoreError> {
        // A client that never replays gets no record.
        let record = (write.session != NO_REPLAY_SESSION).then(|| self.sessions.entry(write.session).or_default());
        if let Some(record) = &record {
            match record.check(write.request, DEFAULT_REPLAY_WINDOW) {
                ReplayCheck::Replay(outcome) => return outcome,
                ReplayCheck::Expired => return Err(StoreError::ReplayExpired { request: write.request }),
                ReplayCheck::New => {}
            }
        }
        let verdict = if self.readonly { Err(StoreError::ReadOnly) } else { self.hooks.check(&write.op) };
        let outcome = verdict.and_then(|()| {
            self.handled.push((write.session, write.request));
            evaluate(&self.data, write.op)
        });
        if let Ok(Some(op)) = outcome.as_ref().map(|(_, op)| op) {
            let changes = apply(Arc::make_mut(&mut self.data), op.clone());
            self.changes.commit(changes);
            self.applied.push((write.session, write.request));
        }
        let outcome = outcome.map(|(answer, _)| answer);
        if let Some(record) = record {
            record.record(write.request, outcome.clone(), DEFAULT_REPLAY_WINDOW, 0);
        }
        outcome
    }
}

/// What a write answers and the plain write it comes down to (`None`: apply nothing), its
/// conditions checked and its counter computed against `data`.
fn evaluate(data: &Map, op: WriteOp) -> Result<(WriteAnswer, Option<WriteOp>), StoreError> {
    match op {
        WriteOp::Conditional { conditions, ops } => {
            let failed = first_failure::<()>(&conditions, |key| Ok(data.get(key).cloned())).unwrap_or(None);
            Ok(match failed {
                Some(failed) => (WriteAnswer::Failed(failed), None),
                None => (WriteAnswer::Done, Some(WriteOp::Batch(ops))),
            })
        }
        WriteOp::Increment { key, by } => {
            let value = increment(&key, data.get(&key).map(|v| &v[..]), by)?;
            Ok((WriteAnswer::Counter(value), Some(WriteOp::Put { key, value: encode_counter(value) })))
        }
        op => Ok((WriteAnswer::Done, Some(op))),
    }
}

/// Applies a plain write; returns its changes, in order (see [`crate::change`]).
fn apply(data: &mut Map, op: WriteOp) -> Vec<Change> {
    fn put(data: &mut Map, changes: &mut Vec<Change>, key: Bytes, value: Bytes) {
        data.insert(key.clone(), value.clone());
        changes.push(Change::Put { key, value });
    }
    fn del(data: &mut Map, changes: &mut Vec<Change>, key: Bytes) {
        if data.remove(&key).is_some() {
            changes.push(Change::Del { key });
        }
    }
    let mut changes = Vec::new();
    match op {
        WriteOp::Put { key, value } => put(data, &mut changes, key, value),
        WriteOp::Del { key } => del(data, &mut changes, key),
        WriteOp::Batch(ops) => {
            for op in ops {
                match op {
                    BatchOp::Put { key, value } => put(data, &mut changes, key, value),
                    BatchOp::Del { key } => del(data, &mut changes, key),
                }
            }
        }
        WriteOp::Clear { range, reverse, limit } => {
            let keys: Vec<Bytes> = {
                let iter = range_iter(data, &range);
                let limit = limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
                if reverse {
                    iter.rev().take(limit).map(|(k, _)| k.clone()).collect()
                } else {
                    iter.take(limit).map(|(k, _)| k.clone()).collect()
                }
            };
            for key in keys {
                data.remove(&key);
                changes.push(Change::Del { key });
            }
        }
        // `evaluate` turns these into the plain writes above.
        WriteOp::Conditional { .. } | WriteOp::Increment { .. } => {}
    }
    changes
}

/// The entries of `range`, in order; empty for an empty range, on which `BTreeMap::range`
/// would panic.
fn range_iter<'a>(data: &'a Map, range: &KeyRange) -> impl DoubleEndedIterator<Item = (&'a Bytes, &'a Bytes)> {
    let bounds: (Bound<Bytes>, Bound<Bytes>) = (range.lower.clone(), range.upper.clone());
    (!range.is_empty()).then(|| data.range::<Bytes, _>(bounds)).into_iter().flatten()
}

/// Reads one iterator batch from an ordered map, honouring the entry and byte caps.
pub fn read_batch(data: &BTreeMap<Bytes, Bytes>, read: &BatchRead) -> Outcome {
    let mut entries = Vec::new();
    let mut bytes = 0u64;
    let mut iter: Box<dyn Iterator<Item = (&Bytes, &Bytes)>> = if read.reverse {
        Box::new(range_iter(data, &read.range).rev())
    } else {
        Box::new(range_iter(data, &read.range))
    };
    loop {
        if entries.len() as u64 >= read.max_entries || bytes >= read.max_bytes {
            let exhausted = iter.next().is_none();
            return Outcome::Batch { entries, exhausted };
        }
        let Some((key, value)) = iter.next() else {
            return Outcome::Batch { entries, exhausted: true };
        };
        bytes += (key.len() + if read.values { value.len() } else { 0 }) as u64;
        entries.push((key.clone(), read.values.then(|| value.clone())));
    }
}
