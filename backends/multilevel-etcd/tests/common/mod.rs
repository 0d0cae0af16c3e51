//! Driving an etcd backend's connection directly, as a server would: every request queued,
//! answered through the completions.

#![allow(dead_code, unreachable_pub)]

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use multilevel_etcd::testing::EtcdCluster;
use multilevel_etcd::{EtcdBackend, EtcdConnection, EtcdOptions};
use multilevel_proto::backend::{Backend, Completions, Execution, Executor};
use multilevel_proto::store::BatchRead;
use multilevel_proto::{BatchOp, KeyRange, OpId, Outcome, StoreError, StoreRequest, WriteOp, WriteRequest};

/// Entries of an iterator batch.
pub type Entries = Vec<(Bytes, Option<Bytes>)>;

/// Sends every completion down a channel.
struct Channel(Mutex<Sender<(OpId, Result<Outcome, StoreError>)>>);

impl Completions for Channel {
    fn complete(&self, op: OpId, result: Result<Outcome, StoreError>) {
        let _ = self.0.lock().unwrap().send((op, result));
    }
}

/// One connection, used one request at a time.
pub struct Conn {
    pub conn: EtcdConnection,
    completions: Arc<dyn Completions>,
    answers: Receiver<(OpId, Result<Outcome, StoreError>)>,
    next_op: u64,
    next_iterator: u64,
}

impl Conn {
    pub fn new(backend: &EtcdBackend) -> Self {
        let (tx, answers) = mpsc::channel();
        Conn {
            conn: backend.connection(),
            completions: Arc::new(Channel(Mutex::new(tx))),
            answers,
            next_op: 0,
            next_iterator: 0,
        }
    }

    /// Queues `request` without waiting; returns its op.
    pub fn send(&mut self, request: StoreRequest) -> Result<OpId, Result<Outcome, StoreError>> {
        self.next_op += 1;
        let op = OpId(self.next_op);
        match self.conn.execute(op, request, &self.completions) {
            Execution::Queued => Ok(op),
            Execution::Ready(result) => Err(result),
        }
    }

    /// The next answer to arrive.
    pub fn answer(&mut self) -> (OpId, Result<Outcome, StoreError>) {
        self.answers.recv_timeout(Duration::from_secs(30)).expect("an answer within 30 s")
    }

    /// The next answer, if one arrives within `wait`.
    pub fn answer_within(&mut self, wait: Duration) -> Option<(OpId, Result<Outcome, StoreError>)> {
        self.answers.recv_timeout(wait).ok()
    }

    pub fn run(&mut self, request: StoreRequest) -> Result<Outcome, StoreError> {
        match self.send(request) {
            Err(ready) => ready,
            Ok(op) => {
                let (answered, result) = self.answer();
                assert_eq!(answered, op, "answers come for the request sent");
                result
            }
        }
    }

    pub fn get(&mut self, key: &str) -> Option<Bytes> {
        match self.run(StoreRequest::Get { key: Bytes::copy_from_slice(key.as_bytes()) }) {
            Ok(Outcome::Value(value)) => value,
            other => panic!("get {key}: {other:?}"),
        }
    }

    pub fn write(&mut self, session: u64, request: u64, op: WriteOp) -> Result<(), StoreError> {
        self.run(StoreRequest::Write(WriteRequest { session, request, op })).map(|outcome| {
            assert_eq!(outcome, Outcome::Written);
        })
    }

    pub fn entries(&mut self) -> u64 {
        match self.run(StoreRequest::Stats) {
            Ok(Outcome::Stats(stats)) => stats.iter().find(|(name, _)| name == "entries").map(|(_, n)| *n).unwrap(),
            other => panic!("stats: {other:?}"),
        }
    }

    pub fn open(&mut self) -> u64 {
        self.next_iterator += 1;
        let iterator = self.next_iterator;
        assert_eq!(self.run(StoreRequest::OpenIterator { iterator }), Ok(Outcome::IteratorOpened));
        iterator
    }

    /// One batch.
    pub fn batch(&mut self, read: BatchRead) -> Result<(Entries, bool), StoreError> {
        match self.run(StoreRequest::ReadBatch(read))? {
            Outcome::Batch { entries, exhausted } => Ok((entries, exhausted)),
            other => panic!("not a batch: {other:?}"),
        }
    }

    /// Every entry of `range` through batches of at most `per_batch` entries and `max_bytes`
    /// bytes, narrowing the range after each batch as the server machine does, and at most
    /// `limit` entries.
    #[allow(clippy::too_many_arguments)]
    pub fn scan(
        &mut self,
        iterator: u64,
        range: KeyRange,
        reverse: bool,
        values: bool,
        per_batch: u64,
        max_bytes: u64,
        limit: Option<u64>,
    ) -> (Entries, usize) {
        let mut out = Vec::new();
        let mut range = range;
        let mut batches = 0;
        loop {
            let left = limit.map_or(per_batch, |l| per_batch.min(l - out.len() as u64));
            if left == 0 {
                return (out, batches);
            }
            let read = BatchRead { iterator, range: range.clone(), reverse, max_entries: left, max_bytes, values };
            let (entries, exhausted) = self.batch(read).expect("a batch");
            batches += 1;
            assert!(entries.len() as u64 <= left, "no more entries than asked");
            if let Some((last, _)) = entries.last() {
                range = if reverse { range.before(last) } else { range.after(last) };
            }
            let empty = entries.is_empty();
            out.extend(entries);
            if exhausted {
                return (out, batches);
            }
            assert!(!empty, "a batch that is not the last has entries");
        }
    }
}

/// A cluster and a backend on it, or `None` if etcd is missing (outside CI).
pub fn cluster() -> Option<EtcdCluster> {
    EtcdCluster::start()
}

pub fn backend(cluster: &EtcdCluster, namespace: &str) -> EtcdBackend {
    backend_with(cluster, EtcdOptions { namespace: namespace.as_bytes().to_vec(), ..EtcdOptions::default() })
}

pub fn backend_with(cluster: &EtcdCluster, options: EtcdOptions) -> EtcdBackend {
    EtcdBackend::connect(&cluster.endpoints(), options).expect("connect to the test cluster")
}

pub fn put(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> WriteOp {
    WriteOp::Put { key: Bytes::copy_from_slice(key.as_ref()), value: Bytes::copy_from_slice(value.as_ref()) }
}

pub fn bput(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> BatchOp {
    BatchOp::Put { key: Bytes::copy_from_slice(key.as_ref()), value: Bytes::copy_from_slice(value.as_ref()) }
}

pub fn keys(entries: &[(Bytes, Option<Bytes>)]) -> Vec<Bytes> {
    entries.iter().map(|(k, _)| k.clone()).collect()
}

impl Conn {
    /// Closes an iterator, as the server does on `CloseIterator`.
    pub fn conn_close(&mut self, iterator: u64) {
        self.conn.close_iterator(iterator);
    }
}
