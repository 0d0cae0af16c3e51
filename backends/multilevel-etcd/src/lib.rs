//! A multilevel backend on a replicated [etcd](https://etcd.io) cluster: the same servers and
//! clients, with the data in an engine that survives the loss of any one host.
//!
//! [`EtcdBackend::connect`] joins a cluster; the backend implements
//! [`multilevel_proto::backend::Backend`], so every multilevel server adapter serves it:
//!
//! ```no_run
//! use multilevel_etcd::{EtcdBackend, EtcdOptions};
//!
//! let options = EtcdOptions { namespace: b"app".to_vec(), ..EtcdOptions::default() };
//! let backend = EtcdBackend::connect(&["http://127.0.0.1:2379"], options)?;
//! let server = multilevel_blocking::Server::new(backend);
//! server.serve_tcp(std::net::TcpListener::bind("127.0.0.1:7300")?)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The backend owns a small tokio runtime (two threads) for the etcd client, so servers on any
//! runtime, or none, can use it. Every request is answered later ([`Execution::Queued`]), from
//! that runtime.
//!
//! # How each request maps onto etcd
//!
//! - **Keys**: `namespace ‖ 0x00 ‖ user key`; session records under
//!   `namespace ‖ 0x01 ‖ session id`, holding [`SessionRecord::to_stored`](multilevel_proto::store::SessionRecord::to_stored) bytes (the bytes the
//!   LMDB store keeps too). Several namespaces share a cluster without seeing each other.
//! - **Get**: a linearizable range read (a quorum round trip), so a read sees every write
//!   acknowledged before it was sent. **GetMany**: one read-only transaction of ranges per
//!   [`EtcdOptions::max_txn_ops`] keys, the later ones at the first one's revision.
//! - **Writes** (put, del, batch, clear): one transaction each, which compares the session
//!   record's `mod_revision` (or its absence) and, if unchanged, applies the write and puts
//!   the updated record; otherwise it reads the record and the write is answered from it (a
//!   replay: applied before, by this or another server) or tried again. At most once, also
//!   across servers. Writes of one connection are applied in arrival order by one task per
//!   connection; connections (and so sessions) write in parallel. Puts, deletes and batches
//!   of one session queued together commit as one transaction (group commit: the last
//!   operation per key across the group, and the record updated for each write, within
//!   etcd's limits), which leaves the same state and record as committing them one by one.
//! - **Session records** of sessions idle for [`EtcdOptions::session_retention`] (default 7
//!   days) are deleted by a sweep every minute, as the LMDB store does, so records of clients
//!   long gone do not fill the quota; a record that changed since it was read is kept.
//! - **Batches** keep the last operation per key (etcd refuses a key twice in a transaction;
//!   the resulting state is the same).
//! - **Clear** without a limit: one range delete. With a limit: the first (last, if reverse)
//!   keys are read at a revision R, then deleted in a transaction that checks none of them
//!   vanished and nothing in the deleted span changed since R; a reverse limited clear reads
//!   its keys with an etcd `DESCEND` range, which costs the whole range once.
//! - **Iterators** take the current revision at open; each batch is a range at that revision.
//!   See [the cost of reverse iteration](#reverse-iteration).
//! - **Watches** (the change feed): a position is the etcd revision of a commit (one write,
//!   or one group of a session's writes, is one transaction, so one revision); a change's
//!   index is its place among that revision's events in the watched range, in transaction
//!   order (session records live under another prefix and never appear). As etcd refuses a
//!   key twice in a transaction, a batch's events are those of its last operation per key,
//!   and writes of one session committed as a group share one revision (one commit, holding
//!   the last operation per key across the group). `OpenWatch` from
//!   now answers the cursor after the current revision (a linearizable read). Each watch's
//!   reads share one etcd watch stream over `namespace ‖ 0x00 ‖ range`, opened at the read's
//!   cursor and reopened when a read asks from elsewhere or the stream fails (another member
//!   serves it); the stream is read only when a read finds nothing buffered, and at most one
//!   etcd response is buffered per watch. A read with nothing new waits until a commit or
//!   [`Executor::close_watch`]. etcd's progress notifications (every 10 minutes by default)
//!   move a quiet watch's cursor on. History lasts until compaction: etcd keeps the state
//!   at its compaction revision `C` but not all of `C`'s events, so a feed from a position
//!   `<= C` fails with [`StoreError::Compacted`] naming `C + 1`. With
//!   [`EtcdOptions::compaction`], an open watch holds compaction at its cursor like an
//!   iterator (and, idle longer than [`Compaction::idle_timeout`], no more).
//! - **Stats**: `entries` (keys in the namespace, a count-only range) and `revision`.
//! - **Read-only**: writes are refused with [`StoreError::ReadOnly`] without contacting
//!   etcd. **Hooks**: [`multilevel_proto::hooks::verdict`] runs before a write is applied;
//!   its refusal is recorded like the LMDB store's.
//!
//! # What etcd cannot do, and what happens instead
//!
//! Each of these fails with a clear message before anything of the write is applied (the
//! refusal is recorded in the session record, so a replay gets the same answer):
//! - a write needing more operations than one transaction may hold (`--max-txn-ops`, default
//!   128: a batch of up to 127 distinct keys; a limited clear of up to 126 keys when the range
//!   holds more): [`EtcdError::TooManyOperations`]. Never split: that would break atomicity.
//! - a write larger than one request may be (`--max-request-bytes`, default 1.5 MiB):
//!   [`EtcdError::RequestTooLarge`]. Set [`EtcdOptions::max_txn_ops`] and
//!   [`EtcdOptions::max_request_bytes`] to the cluster's flags; if they are higher than the
//!   cluster's, etcd's own refusal is reported the same way.
//! - a full quota: [`StoreError::StorageFull`] with what the operator must do.
//!
//! An iterator whose revision was compacted fails with [`EtcdError::Compacted`] (as
//! [`StoreError::Internal`], message "... was compacted ..."): it never silently reads a newer
//! state. Compaction is the cluster's business (`--auto-compaction-retention`); keep it longer
//! than the longest iteration.
//!
//! Calls that fail because no member could be reached are retried for
//! [`EtcdOptions::retry_for`]; so are calls whose fate is unknown (leader change, timeout) when
//! repeating them is safe: reads, and writes guarded by a session record (the repeat finds the
//! record changed and answers from it). A write of a client that never replays carries no
//! record and is only retried when it never reached a member.
//!
//! # Reverse iteration
//!
//! etcd serves a `DESCEND` range by reading every key of the range and sorting, so paging
//! backwards that way costs the whole remaining range per batch (quadratic over an
//! iteration). Instead, an iterator's first reverse batch makes one forward keys-only pass
//! over its range at its revision (pages of 4096 keys) and keeps every 1024th key as a
//! checkpoint (memory: one key per 1024). Each reverse batch then reads forward only the at
//! most 1024 keys between the nearest checkpoint below its upper bound and that bound (keys
//! only), takes its entries from their end, and reads the values of those alone. Cost: the
//! pass once per iterator (O(range) keys, no values), then O(1024 keys + the batch) per
//! batch, and two round trips per batch when values are wanted.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod call;
mod compact;
mod error;
mod iter;
mod keys;
mod sweep;
#[cfg(feature = "testing")]
pub mod testing;
mod watch;
mod write;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{ConnectOptions, GetOptions, Txn, TxnOp, TxnOpResponse};
use multilevel_proto::backend::{Backend, BackendConnection, Completions, Execution, Executor};
use multilevel_proto::hooks::Hooks;
use multilevel_proto::{OpId, Outcome, ServerConfig, StoreError, StoreRequest, WriteRequest};
use tokio::sync::mpsc;

use crate::call::{Retry, Shared};
pub use crate::compact::Compaction;
pub use crate::error::EtcdError;
use crate::iter::IterState;
use crate::keys::Layout;
use crate::watch::WatchState;

/// Request ids whose outcomes each session record remembers by default; see
/// [`SessionRecord`](multilevel_proto::store::SessionRecord).
pub const DEFAULT_REPLAY_WINDOW: u64 = 1 << 20;

/// How to use the cluster.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Prefix of every key this database stores, so several databases can share a cluster.
    /// May be empty; must not contain the bytes 0x00 or 0x01. Default empty.
    pub namespace: Vec<u8>,
    /// Refuse every write with [`StoreError::ReadOnly`]. Default off.
    pub readonly: bool,
    /// Checks run before each write is applied. Default none.
    pub hooks: Hooks,
    /// The cluster's `--max-txn-ops` (default 128): writes needing more are refused.
    pub max_txn_ops: usize,
    /// The cluster's `--max-request-bytes` (default 1.5 MiB): larger writes are refused.
    pub max_request_bytes: usize,
    /// Longest user key accepted (announced to clients). Default 4096.
    pub max_key_size: usize,
    /// Request ids whose outcomes are remembered per session. Default
    /// [`DEFAULT_REPLAY_WINDOW`].
    pub replay_window: u64,
    /// How long calls that could not reach a member (or whose fate is unknown, where a repeat
    /// is safe) are retried before the request fails. Default 10 s.
    pub retry_for: Duration,
    /// Longest wait for one etcd call. Default 5 s.
    pub request_timeout: Duration,
    /// Longest wait to connect to one member. Default 2 s.
    pub connect_timeout: Duration,
    /// Compact the cluster every so often, sparing the revisions open iterators read; see
    /// [`Compaction`]. Turn it on for every multilevel server of a cluster, or for none (then
    /// leave compaction to etcd's `--auto-compaction-retention`, and iterators older than it
    /// fail as compacted). Default off.
    pub compaction: Option<Compaction>,
    /// Forget the record of a session that has not written for this long (checked every
    /// minute, or every retention if shorter): a replay of one of its writes after that would
    /// be applied again. Default 7 days, as the LMDB store.
    pub session_retention: Duration,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        Self {
            namespace: Vec::new(),
            readonly: false,
            hooks: Hooks::default(),
            max_txn_ops: 128,
            max_request_bytes: 3 << 19,
            max_key_size: 4096,
            replay_window: DEFAULT_REPLAY_WINDOW,
            retry_for: Duration::from_secs(10),
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            compaction: None,
            session_retention: Duration::from_secs(7 * 24 * 60 * 60),
        }
    }
}

/// The runtime the etcd client lives on. Shut down without waiting when the last handle
/// goes, so dropping a backend inside another runtime does not panic.
struct Runtime(Option<tokio::runtime::Runtime>);

impl Runtime {
    fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().map(|rt| rt.handle()).expect("the runtime lives until drop")
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// A backend on an etcd cluster; see the [crate docs](crate). Cheap to clone.
#[derive(Clone)]
pub struct EtcdBackend {
    shared: Arc<Shared>,
    runtime: Arc<Runtime>,
}

impl std::fmt::Debug for EtcdBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdBackend")
            .field("endpoints", &self.shared.endpoints)
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl EtcdBackend {
    /// Connects to the cluster whose client URLs are `endpoints` (e.g.
    /// `http://127.0.0.1:2379`), and checks that it answers a linearizable read within
    /// [`EtcdOptions::retry_for`]. Blocks; may be called from inside an async runtime.
    pub fn connect<E: AsRef<str>>(endpoints: &[E], options: EtcdOptions) -> Result<EtcdBackend, EtcdError> {
        let endpoints: Vec<String> = endpoints.iter().map(|e| e.as_ref().to_string()).collect();
        if endpoints.is_empty() {
            return Err(EtcdError::NoEndpoints);
        }
        if !keys::valid_namespace(&options.namespace) {
            return Err(EtcdError::InvalidNamespace(options.namespace.clone()));
        }
        if options.max_txn_ops < 2 {
            return Err(EtcdError::InvalidOption("max_txn_ops must be at least 2".into()));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("multilevel-etcd")
            .enable_all()
            .build()
            .map_err(|e| EtcdError::Runtime(e.to_string()))?;
        let runtime = Arc::new(Runtime(Some(runtime)));
        let connect_options = ConnectOptions::new()
            .with_timeout(options.request_timeout)
            .with_connect_timeout(options.connect_timeout)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        let joined = endpoints.join(",");
        let (tx, rx) = std::sync::mpsc::channel();
        let connecting = endpoints.clone();
        runtime.handle().spawn(async move {
            let result = etcd_client::Client::connect(connecting, Some(connect_options)).await;
            let _ = tx.send(result);
        });
        let client = rx
            .recv()
            .map_err(|_| EtcdError::Runtime("the connect task stopped".into()))?
            .map_err(|e| EtcdError::Etcd(format!("connecting to {joined}: {e}")))?;
        let layout = Layout::new(&options.namespace);
        let compaction = options.compaction;
        let snapshots = Arc::default();
        let shared = Arc::new(Shared { client, layout, options, endpoints: joined, snapshots });
        let backend = EtcdBackend { shared, runtime };
        let shared = Arc::clone(&backend.shared);
        backend.block_on(async move { shared.current_revision().await })?;
        if !backend.shared.options.readonly {
            let weak = Arc::downgrade(&backend.shared);
            backend.runtime.handle().spawn(sweep::run(weak, backend.shared.options.session_retention));
        }
        if let Some(config) = compaction {
            // Published before serving: every iterator opened later reads at or above it.
            let id = backend_id();
            let shared = Arc::clone(&backend.shared);
            backend.block_on(async move { compact::publish(&shared, config, id).await })?;
            let weak = Arc::downgrade(&backend.shared);
            backend.runtime.handle().spawn(compact::run(weak, config, id));
        }
        Ok(backend)
    }

    /// Runs `work` on the backend's runtime and waits for it.
    fn block_on<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, EtcdError>> + Send + 'static,
    ) -> Result<T, EtcdError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.runtime.handle().spawn(async move {
            let _ = tx.send(work.await);
        });
        rx.recv().map_err(|_| EtcdError::Runtime("the backend's task stopped".into()))?
    }

    /// The namespace this backend reads and writes.
    pub fn namespace(&self) -> &[u8] {
        &self.shared.options.namespace
    }
}

/// An id for this backend's compaction floor, unique enough among the servers of a cluster.
fn backend_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher
        .write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    hasher.finish()
}

impl Shared {
    /// The cluster's current revision, by a linearizable read of one (absent) key.
    async fn current_revision(&self) -> Result<i64, EtcdError> {
        let probe = self.layout.record_key(0);
        let response = self
            .call(Retry::Idempotent, None, |mut kv| {
                let probe = probe.clone();
                async move { kv.get(probe, Some(GetOptions::new().with_keys_only())).await }
            })
            .await?;
        Ok(response.header().map_or(0, |h| h.revision()))
    }

    async fn get(&self, key: &[u8]) -> Result<Outcome, StoreError> {
        let key = self.layout.data_key(key);
        let mut response = self
            .call(Retry::Idempotent, None, |mut kv| {
                let key = key.clone();
                async move { kv.get(key, None).await }
            })
            .await?;
        let value = response.take_kvs().into_iter().next().map(|kv| bytes::Bytes::from(kv.into_key_value().1));
        Ok(Outcome::Value(value))
    }

    async fn get_many(&self, keys: &[bytes::Bytes]) -> Result<Outcome, StoreError> {
        let mut values = Vec::with_capacity(keys.len());
        let mut revision = 0;
        for chunk in keys.chunks(self.options.max_txn_ops.max(1)) {
            let options = GetOptions::new().with_revision(revision);
            let ops: Vec<TxnOp> =
                chunk.iter().map(|k| TxnOp::get(self.layout.data_key(k), Some(options.clone()))).collect();
            let txn = Txn::new().and_then(ops);
            let named = (revision > 0).then_some(revision);
            let response = self
                .call(Retry::Idempotent, named, |mut kv| {
                    let txn = txn.clone();
                    async move { kv.txn(txn).await }
                })
                .await?;
            if revision == 0 {
                revision = response.header().map_or(0, |h| h.revision());
            }
            for op in response.op_responses() {
                if let TxnOpResponse::Get(mut get) = op {
                    let kv = get.take_kvs().into_iter().next();
                    values.push(kv.map(|kv| bytes::Bytes::from(kv.into_key_value().1)));
                }
            }
        }
        Ok(Outcome::Values(values))
    }

    async fn stats(&self) -> Result<Outcome, StoreError> {
        let (start, end) = self.layout.all_data();
        let response = self
            .call(Retry::Idempotent, None, |mut kv| {
                let (start, end) = (start.clone(), end.clone());
                async move { kv.get(start, Some(GetOptions::new().with_range(end).with_count_only())).await }
            })
            .await?;
        let revision = response.header().map_or(0, |h| h.revision());
        Ok(Outcome::Stats(vec![
            ("entries".into(), u64::try_from(response.count()).unwrap_or(0)),
            ("revision".into(), u64::try_from(revision).unwrap_or(0)),
        ]))
    }
}

impl Backend for EtcdBackend {
    type Connection = EtcdConnection;

    fn connection(&self) -> EtcdConnection {
        EtcdConnection {
            shared: Arc::clone(&self.shared),
            runtime: Arc::clone(&self.runtime),
            iterators: Arc::new(Mutex::new(HashMap::new())),
            watches: HashMap::new(),
            writer: None,
        }
    }

    fn server_config(&self) -> ServerConfig {
        ServerConfig {
            max_key_size: u32::try_from(self.shared.options.max_key_size).unwrap_or(u32::MAX),
            readonly: self.shared.options.readonly,
            ..ServerConfig::default()
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(()) // etcd acknowledges a write once a quorum has it durably
    }
}

type Iterators = Arc<Mutex<HashMap<u64, Arc<tokio::sync::Mutex<IterState>>>>>;

/// A write waiting for its connection's writer task.
struct WriteJob {
    op: OpId,
    request: WriteRequest,
    completions: Arc<dyn Completions>,
}

/// One connection's view of an [`EtcdBackend`]: its iterators' revisions, its watches, and
/// the task that applies its writes in order.
pub struct EtcdConnection {
    shared: Arc<Shared>,
    runtime: Arc<Runtime>,
    iterators: Iterators,
    watches: HashMap<u64, Arc<WatchState>>,
    writer: Option<mpsc::UnboundedSender<WriteJob>>,
}

impl std::fmt::Debug for EtcdConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdConnection").finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl EtcdConnection {
    /// The sender to this connection's writer task, started on first use.
    fn writer(&mut self) -> &mpsc::UnboundedSender<WriteJob> {
        self.writer.get_or_insert_with(|| {
            let (tx, mut rx) = mpsc::unbounded_channel::<WriteJob>();
            let shared = Arc::clone(&self.shared);
            self.runtime.handle().spawn(async move {
                let mut records = write::RecordCache::new();
                let mut queued = std::collections::VecDeque::new();
                while let Some(job) = rx.recv().await {
                    queued.push_back(job);
                    while queued.len() < write::MAX_GROUP {
                        match rx.try_recv() {
                            Ok(job) => queued.push_back(job),
                            Err(_) => break,
                        }
                    }
                    while !queued.is_empty() {
                        let group = take_group(&shared, &mut queued);
                        let requests: Vec<WriteRequest> = group.iter().map(|job| job.request.clone()).collect();
                        let results = if requests.len() == 1 {
                            vec![write::write_one(&shared, &mut records, requests[0].clone()).await]
                        } else {
                            write::write_group(&shared, &mut records, &requests).await
                        };
                        for (job, result) in group.into_iter().zip(results) {
                            job.completions.complete(job.op, result.map(Outcome::from));
                        }
                    }
                }
            });
            tx
        })
    }
}

/// The next writes to commit together: the first queued, and the groupable writes of its
/// session right behind it, within etcd's limits.
fn take_group(shared: &Shared, queued: &mut std::collections::VecDeque<WriteJob>) -> Vec<WriteJob> {
    let Some(first) = queued.pop_front() else { return Vec::new() };
    let mut group = vec![first];
    if !write::groupable(&group[0].request) {
        return group;
    }
    let session = group[0].request.session;
    let mut ops = write::op_count(&group[0].request.op);
    let mut bytes = write::op_bytes(&group[0].request.op);
    while let Some(next) = queued.front() {
        let (next_ops, next_bytes) = (write::op_count(&next.request.op), write::op_bytes(&next.request.op));
        if next.request.session != session
            || !write::groupable(&next.request)
            || ops + next_ops + 1 > shared.options.max_txn_ops
            || bytes + next_bytes + 256 > shared.options.max_request_bytes
        {
            break;
        }
        ops += next_ops;
        bytes += next_bytes;
        group.extend(queued.pop_front());
    }
    group
}

impl Executor for EtcdConnection {
    fn execute(&mut self, op: OpId, request: StoreRequest, completions: &Arc<dyn Completions>) -> Execution {
        let completions = Arc::clone(completions);
        let shared = Arc::clone(&self.shared);
        match request {
            StoreRequest::Write(_) if shared.options.readonly => Execution::Ready(Err(StoreError::ReadOnly)),
            StoreRequest::Write(request) => match self.writer().send(WriteJob { op, request, completions }) {
                Ok(()) => Execution::Queued,
                Err(_) => Execution::Ready(Err(StoreError::Internal("the etcd writer task stopped".into()))),
            },
            StoreRequest::Get { key } => self.spawn(op, completions, async move { shared.get(&key).await }),
            StoreRequest::GetMany { keys } => self.spawn(op, completions, async move { shared.get_many(&keys).await }),
            StoreRequest::Stats => self.spawn(op, completions, async move { shared.stats().await }),
            StoreRequest::OpenIterator { iterator } => {
                let iterators = Arc::clone(&self.iterators);
                self.spawn(op, completions, async move {
                    let revision = shared.current_revision().await?;
                    let registration = compact::Registration::new(&shared.snapshots, revision);
                    let state = Arc::new(tokio::sync::Mutex::new(IterState::new(revision, registration)));
                    lock(&iterators).insert(iterator, state);
                    Ok(Outcome::IteratorOpened)
                })
            }
            StoreRequest::ReadBatch(read) => {
                let state = lock(&self.iterators).get(&read.iterator).cloned();
                let Some(state) = state else {
                    return Execution::Ready(Err(StoreError::UnknownIterator));
                };
                self.spawn(op, completions, async move {
                    let mut state = state.lock().await;
                    iter::read_batch(&shared, &mut state, &read).await
                })
            }
            StoreRequest::OpenWatch { watch, start } => {
                let state = Arc::clone(self.watches.entry(watch).or_insert_with(|| Arc::new(WatchState::new())));
                self.spawn(op, completions, async move { state.open(&shared, start).await })
            }
            StoreRequest::ReadChanges(read) => {
                let state = Arc::clone(self.watches.entry(read.watch).or_insert_with(|| Arc::new(WatchState::new())));
                self.spawn(op, completions, async move { state.read(&shared, &read).await })
            }
        }
    }

    fn close_iterator(&mut self, iterator: u64) {
        lock(&self.iterators).remove(&iterator);
    }

    fn close_watch(&mut self, watch: u64) {
        if let Some(state) = self.watches.remove(&watch) {
            state.close();
        }
    }
}

impl Drop for EtcdConnection {
    fn drop(&mut self) {
        // Reads still waiting answer now, and let go of their etcd streams.
        for state in self.watches.values() {
            state.close();
        }
    }
}

impl EtcdConnection {
    fn spawn(
        &self,
        op: OpId,
        completions: Arc<dyn Completions>,
        work: impl Future<Output = Result<Outcome, StoreError>> + Send + 'static,
    ) -> Execution {
        self.runtime.handle().spawn(async move {
            completions.complete(op, work.await);
        });
        Execution::Queued
    }
}

impl BackendConnection for EtcdConnection {}
