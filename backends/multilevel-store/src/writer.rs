//! The writer thread: the only place write transactions live (LMDB wants a write transaction
//! to begin and commit on one thread), with group commit.
//!
//! It blocks for the first queued write, drains whatever else is queued (up to
//! [`MAX_GROUP_WRITES`] writes or [`MAX_GROUP_BYTES`] bytes), applies them all in one
//! transaction, commits once (one fsync for the group), and only then calls each write's `done`.
//!
//! Every applied write that changed something is one commit of the change log, appended in the
//! same transaction (see [`crate::changes`]); after the commit, the watch reads waiting for one
//! are woken.
//!
//! Per write, in order: the at-most-once check (a replay gets the recorded outcome and is not
//! applied again; a forgotten one gets `ReplayExpired`), the key size check, the hook, then the
//! write itself. Refusals are recorded like successes, so a replay gets the same answer. A
//! refused write does not touch the transaction, so it cannot affect the others of its group.
//!
//! If LMDB fails in the middle of the group, the transaction is aborted and the group redone:
//! - map full: the map is grown (doubled up to `max_map_size`) and the group redone; at the
//!   ceiling, the writes are redone one transaction each, and only those that do not fit fail
//!   with `StorageFull`;
//! - any other error while applying one write: that write fails with `Internal` (unrecorded, so
//!   a replay may try again) and the group is redone without it.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use heed::MdbError;
use metrics::Histogram;
use multilevel_proto::condition::WriteAnswer;
use multilevel_proto::store::{ReplayCheck, SessionRecord};
use multilevel_proto::{BatchOp, NO_REPLAY_SESSION, Outcome, SessionId, StoreError, WriteOp, WriteRequest};

use crate::env::Shared;
use crate::error::internal;
use crate::record;
use crate::{apply, changes};

/// Most writes committed in one transaction.
pub(crate) const MAX_GROUP_WRITES: usize = 1024;
/// Most bytes of keys and values committed in one transaction (a single larger write still
/// goes through, alone).
pub(crate) const MAX_GROUP_BYTES: usize = 8 << 20;
/// Longest time between two sweeps of idle sessions.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Called once with a write's result, on the writer thread.
pub(crate) type Done = Box<dyn FnOnce(Result<Outcome, StoreError>) + Send>;

/// Work for the writer.
pub(crate) enum Job {
    /// A write and who to tell.
    Write(WriteRequest, Done),
    /// Signal once every write queued before this one is committed.
    Flush(Sender<()>),
}

/// Starts the writer thread. It stops once every sender is dropped and the queue is drained.
pub(crate) fn spawn(shared: Arc<Shared>) -> io::Result<(Sender<Job>, JoinHandle<()>)> {
    let (tx, rx) = channel();
    let mut writer = Writer {
        shared,
        last_sweep: None,
        commit_writes: metrics::histogram!(crate::metrics::COMMIT_WRITES),
        commit_duration: metrics::histogram!(crate::metrics::COMMIT_DURATION),
    };
    let handle = thread::Builder::new().name("multilevel-writer".into()).spawn(move || writer.run(rx))?;
    Ok((tx, handle))
}

fn write_bytes(op: &WriteOp) -> usize {
    match op {
        WriteOp::Put { key, value } => key.len() + value.len(),
        WriteOp::Del { key } => key.len(),
        WriteOp::Batch(ops) | WriteOp::Conditional { ops, .. } => ops
            .iter()
            .map(|op| match op {
                BatchOp::Put { key, value } => key.len() + value.len(),
                BatchOp::Del { key } => key.len(),
            })
            .sum(),
        WriteOp::Clear { range, .. } => range.key_bytes(),
        WriteOp::Increment { key, .. } => key.len() + 20,
    }
}

/// A write of the current group.
struct Pending {
    request: WriteRequest,
    /// The key check and hook verdict, kept so a redone group does not run the hook twice.
    verdict: Option<Result<(), StoreError>>,
    /// The final result, once known.
    result: Option<Result<WriteAnswer, StoreError>>,
}

/// Why a group's transaction failed.
enum Failure {
    /// The map is full.
    MapFull,
    /// The transaction holds too many dirty pages.
    TxnFull,
    /// Applying one write failed: it fails alone.
    Write(usize, StoreError),
    /// The transaction itself failed: every write of the attempt fails.
    Txn(StoreError),
}

impl Failure {
    fn of_write(index: usize) -> impl FnOnce(heed::Error) -> Failure {
        move |e| match e {
            heed::Error::Mdb(MdbError::MapFull) => Failure::MapFull,
            heed::Error::Mdb(MdbError::TxnFull) => Failure::TxnFull,
            e => Failure::Write(index, internal("applying a write", &e)),
        }
    }

    fn of_txn(context: &'static str) -> impl FnOnce(heed::Error) -> Failure {
        move |e| match e {
            heed::Error::Mdb(MdbError::MapFull) => Failure::MapFull,
            heed::Error::Mdb(MdbError::TxnFull) => Failure::TxnFull,
            e => Failure::Txn(internal(context, &e)),
        }
    }
}

struct Writer {
    shared: Arc<Shared>,
    last_sweep: Option<Instant>,
    /// Writes per committed transaction.
    commit_writes: Histogram,
    /// Time each commit took.
    commit_duration: Histogram,
}

impl Writer {
    fn run(&mut self, rx: Receiver<Job>) {
        let job_bytes = |job: &Job| match job {
            Job::Write(request, _) => write_bytes(&request.op),
            Job::Flush(_) => 0,
        };
        while let Ok(first) = rx.recv() {
            let mut bytes = job_bytes(&first);
            let mut jobs = vec![first];
            while jobs.len() < MAX_GROUP_WRITES && bytes < MAX_GROUP_BYTES {
                match rx.try_recv() {
                    Ok(job) => {
                        bytes += job_bytes(&job);
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            self.run_group(jobs);
        }
        tracing::debug!("writer thread stopping: no more handles");
    }

    fn run_group(&mut self, jobs: Vec<Job>) {
        let mut writes = Vec::with_capacity(jobs.len());
        let mut dones = Vec::with_capacity(jobs.len());
        let mut flushes = Vec::new();
        for job in jobs {
            match job {
                Job::Write(request, done) => {
                    writes.push(Pending { request, verdict: None, result: None });
                    dones.push(done);
                }
                Job::Flush(tx) => flushes.push(tx),
            }
        }
        if !writes.is_empty() {
            if self.shared.options.readonly {
                self.answer_readonly(&mut writes);
            } else {
                self.commit((0..writes.len()).collect(), &mut writes);
            }
            self.shared.writes.fetch_add(writes.len() as u64, Ordering::Relaxed);
        }
        for (write, done) in writes.into_iter().zip(dones) {
            let result =
                write.result.unwrap_or_else(|| Err(StoreError::Internal("the write was not processed".into())));
            if catch_unwind(AssertUnwindSafe(move || done(result.map(Outcome::from)))).is_err() {
                tracing::error!("a write completion callback panicked");
            }
        }
        for flush in flushes {
            let _ = flush.send(());
        }
        if !self.shared.options.readonly {
            self.maybe_forget_sessions();
        }
    }

    /// Commits the writes at `indices`, setting each one's result.
    fn commit(&mut self, mut indices: Vec<usize>, writes: &mut [Pending]) {
        while !indices.is_empty() {
            match self.try_commit(&indices, writes) {
                Ok(results) => {
                    for (&i, result) in indices.iter().zip(results) {
                        writes[i].result = Some(result);
                    }
                    return;
                }
                Err(Failure::MapFull) if self.grow() => {}
                Err(Failure::MapFull | Failure::TxnFull) if indices.len() > 1 => {
                    // Too much for one transaction: give each write its own, so only those
                    // that do not fit fail.
                    for i in indices {
                        self.commit(vec![i], writes);
                    }
                    return;
                }
                Err(Failure::MapFull) => {
                    let error = self.storage_full();
                    self.record_failure(indices[0], writes, &error);
                    writes[indices[0]].result = Some(Err(error));
                    return;
                }
                Err(Failure::TxnFull) => {
                    writes[indices[0]].result =
                        Some(Err(StoreError::Internal("the write is too large for one LMDB transaction".into())));
                    return;
                }
                Err(Failure::Write(index, error)) => {
                    tracing::error!(%error, "write failed in LMDB; redoing its group without it");
                    writes[index].result = Some(Err(error));
                    indices.retain(|&i| i != index);
                }
                Err(Failure::Txn(error)) => {
                    tracing::error!(%error, "write transaction failed");
                    for i in indices {
                        writes[i].result = Some(Err(error.clone()));
                    }
                    return;
                }
            }
        }
    }

    /// One attempt at committing the writes at `indices` in one transaction.
    fn try_commit(
        &self,
        indices: &[usize],
        writes: &mut [Pending],
    ) -> Result<Vec<Result<WriteAnswer, StoreError>>, Failure> {
        let shared = &*self.shared;
        let mut txn = shared.write_txn().map_err(Failure::of_txn("beginning a write transaction"))?;
        let log = shared.changes.map(|db| changes::Appender::begin(db, &txn.txn));
        let mut log = log.transpose().map_err(Failure::of_txn("reading the change log"))?;
        let mut changed = Vec::new();
        let mut records: HashMap<SessionId, (SessionRecord, bool)> = HashMap::new();
        let now = record::now_secs();
        let mut results = Vec::with_capacity(indices.len());
        for &i in indices {
            let write = &mut writes[i];
            let (session, request) = (write.request.session, write.request.request);
            // A client that never replays gets no record: nothing to load, check or save.
            let mut record = None;
            if session != NO_REPLAY_SESSION {
                let (loaded, dirty) = match records.entry(session) {
                    Entry::Occupied(entry) => entry.into_mut(),
                    Entry::Vacant(entry) => {
                        let loaded = record::load(shared.sessions, &txn.txn, session).map_err(Failure::of_write(i))?;
                        entry.insert((loaded, false))
                    }
                };
                match loaded.check(request, shared.options.replay_window) {
                    ReplayCheck::Replay(outcome) => {
                        results.push(outcome);
                        continue;
                    }
                    ReplayCheck::Expired => {
                        results.push(Err(StoreError::ReplayExpired { request }));
                        continue;
                    }
                    ReplayCheck::New => record = Some((loaded, dirty)),
                }
            }
            let verdict = write
                .verdict
                .get_or_insert_with(|| {
                    multilevel_proto::hooks::verdict(&write.request.op, shared.max_key_size, &shared.options.hooks)
                })
                .clone();
            // A failed condition or a counter that is not a number applies nothing and is
            // recorded like a refusal: the rest of the group goes on.
            changed.clear();
            let outcome = match verdict {
                Ok(()) => apply::apply_answered(shared.data, &mut txn.txn, &write.request.op, &mut changed)
                    .map_err(Failure::of_write(i))?,
                Err(error) => Err(error),
            };
            // Each applied write that changed something is one commit of the change log.
            if let Some(log) = &mut log {
                log.append(&mut txn.txn, &changed).map_err(Failure::of_write(i))?;
            }
            if let Some((record, dirty)) = record {
                record.record(request, outcome.clone(), shared.options.replay_window, now);
                *dirty = true;
            }
            results.push(outcome);
        }
        for (session, (record, dirty)) in &records {
            if *dirty {
                record::save(shared.sessions, &mut txn.txn, *session, record)
                    .map_err(Failure::of_txn("saving a session record"))?;
            }
        }
        let head = match log {
            Some(log) => log
                .finish(&mut txn.txn, &shared.options.change_retention)
                .map_err(Failure::of_txn("trimming the change log"))?,
            None => None,
        };
        let started = Instant::now();
        txn.commit().map_err(Failure::of_txn("committing"))?;
        self.commit_duration.record(started.elapsed());
        self.commit_writes.record(indices.len() as f64);
        shared.commits.fetch_add(1, Ordering::Relaxed);
        if let Some(head) = head {
            // Durable and visible now: wake the watch reads waiting for a commit.
            shared.watchers.committed(head);
        }
        Ok(results)
    }

    /// Remembers that a write failed for lack of space, if even that fits, so its replay gets
    /// the same answer.
    fn record_failure(&self, index: usize, writes: &[Pending], error: &StoreError) {
        let shared = &*self.shared;
        let request = &writes[index].request;
        if request.session == NO_REPLAY_SESSION {
            return; // never replayed: nothing to remember
        }
        let attempt = || -> heed::Result<()> {
            let mut txn = shared.write_txn()?;
            let mut record = record::load(shared.sessions, &txn.txn, request.session)?;
            if record.check(request.request, shared.options.replay_window) == ReplayCheck::New {
                record.record(request.request, Err(error.clone()), shared.options.replay_window, record::now_secs());
                record::save(shared.sessions, &mut txn.txn, request.session, &record)?;
            }
            txn.commit()
        };
        if let Err(e) = attempt() {
            tracing::debug!(%e, "could not record a storage-full outcome");
        }
    }

    /// Grows the map one step; false at the ceiling or if LMDB refuses.
    fn grow(&self) -> bool {
        let current = self.shared.map_size();
        let Some(new_size) = self.shared.next_map_size(current) else { return false };
        match self.shared.remap(new_size) {
            Ok(()) => {
                tracing::info!(from = current, to = new_size, "grew the LMDB map");
                true
            }
            Err(e) => {
                tracing::error!(%e, from = current, to = new_size, "could not grow the LMDB map");
                false
            }
        }
    }

    fn storage_full(&self) -> StoreError {
        StoreError::StorageFull(format!(
            "the database map is full at {} bytes and may not grow past max_map_size ({} bytes); \
             delete data or reopen the store with a larger max_map_size",
            self.shared.map_size(),
            self.shared.max_map_size
        ))
    }

    /// A read-only store: replays get their recorded outcome, everything else `ReadOnly`.
    /// Nothing is written, not even session records.
    fn answer_readonly(&self, writes: &mut [Pending]) {
        let txn = match self.shared.read_txn() {
            Ok(txn) => txn,
            Err(error) => {
                writes.iter_mut().for_each(|w| w.result = Some(Err(error.clone())));
                return;
            }
        };
        let mut records = HashMap::new();
        for write in writes {
            let session = write.request.session;
            if session == NO_REPLAY_SESSION {
                write.result = Some(Err(StoreError::ReadOnly));
                continue;
            }
            let record = match records.entry(session) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => match record::load(self.shared.sessions, &txn.txn, session) {
                    Ok(record) => entry.insert(record),
                    Err(e) => {
                        write.result = Some(Err(internal("reading a session record", &e)));
                        continue;
                    }
                },
            };
            write.result = Some(match record.check(write.request.request, self.shared.options.replay_window) {
                ReplayCheck::Replay(outcome) => outcome,
                ReplayCheck::Expired => Err(StoreError::ReplayExpired { request: write.request.request }),
                ReplayCheck::New => Err(StoreError::ReadOnly),
            });
        }
    }

    /// Deletes the records of idle sessions, at most once per [`SWEEP_INTERVAL`] (or per
    /// `session_retention` if shorter).
    fn maybe_forget_sessions(&mut self) {
        let retention = self.shared.options.session_retention;
        let interval = SWEEP_INTERVAL.min(retention.max(Duration::from_secs(1)));
        if self.last_sweep.is_some_and(|last| last.elapsed() < interval) {
            return;
        }
        self.last_sweep = Some(Instant::now());
        let shared = &*self.shared;
        let sweep = || -> heed::Result<usize> {
            let mut txn = shared.write_txn()?;
            let forgotten = record::forget_idle(shared.sessions, &mut txn.txn, record::now_secs(), retention)?;
            if forgotten > 0 {
                txn.commit()?;
            }
            Ok(forgotten)
        };
        match sweep() {
            Ok(0) => {}
            Ok(forgotten) => tracing::debug!(forgotten, "forgot idle sessions"),
            Err(e) => tracing::warn!(%e, "could not forget idle sessions"),
        }
    }
}
