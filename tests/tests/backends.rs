//! Every server adapter serves any backend through the contract: the in-memory backend, which
//! answers at once, and a backend that answers every request later from a thread of its own
//! (as a backend on a remote engine does). The same operations give the same results, and
//! `Stats` reports the server's connections either way.

use std::sync::Arc;
use std::sync::mpsc::{self, Sender};

use bytes::Bytes;
use multilevel_proto::backend::{Backend, BackendConnection, Completions, Execution, Executor};
use multilevel_proto::{
    BatchOp, ClientOptions, IterOptions, KeyRange, MemoryBackend, MemoryConnection, MemoryStore, OpId, ServerConfig,
    StoreError, StoreRequest,
};
use multilevel_tests::adapters::{ALL, AnyClient, BackendServer};

type Job = Box<dyn FnOnce() + Send>;

/// The in-memory backend, with every request queued to one worker thread and answered from
/// there: nothing is [`Execution::Ready`].
#[derive(Clone)]
struct Deferred {
    memory: MemoryBackend,
    worker: Sender<Job>,
}

impl Deferred {
    fn new() -> Self {
        let (worker, jobs) = mpsc::channel::<Job>();
        std::thread::spawn(move || jobs.into_iter().for_each(|job| job()));
        Self { memory: MemoryBackend::new(MemoryStore::new()), worker }
    }
}

struct DeferredConnection {
    /// Shared with the worker, which runs this connection's requests in order.
    memory: Arc<std::sync::Mutex<MemoryConnection>>,
    worker: Sender<Job>,
}

impl Backend for Deferred {
    type Connection = DeferredConnection;

    fn connection(&self) -> DeferredConnection {
        let memory = Arc::new(std::sync::Mutex::new(self.memory.connection()));
        DeferredConnection { memory, worker: self.worker.clone() }
    }

    fn server_config(&self) -> ServerConfig {
        self.memory.server_config()
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl Executor for DeferredConnection {
    fn execute(&mut self, op: OpId, request: StoreRequest, completions: &Arc<dyn Completions>) -> Execution {
        let (memory, completions) = (Arc::clone(&self.memory), Arc::clone(completions));
        let job = Box::new(move || {
            let mut memory = memory.lock().unwrap();
            let result = match memory.execute(op, request, &completions) {
                Execution::Ready(result) => result,
                Execution::Queued => unreachable!("the in-memory backend answers at once"),
            };
            completions.complete(op, result);
        });
        match self.worker.send(job) {
            Ok(()) => Execution::Queued,
            Err(_) => Execution::Ready(Err(StoreError::Internal("the worker stopped".into()))),
        }
    }

    fn close_iterator(&mut self, iterator: u64) {
        let memory = Arc::clone(&self.memory);
        let _ = self.worker.send(Box::new(move || memory.lock().unwrap().close_iterator(iterator)));
    }
}

impl BackendConnection for DeferredConnection {}

fn keys(entries: &[multilevel_proto::Entry]) -> Vec<Bytes> {
    entries.iter().map(|e| e.key.clone()).collect()
}

/// The same operations, with the same answers, on any backend behind any server adapter.
fn exercise(db: &AnyClient, what: &str) {
    db.put("b", "2").unwrap();
    db.batch(vec![
        BatchOp::Put { key: "a".into(), value: "1".into() },
        BatchOp::Put { key: "c".into(), value: "3".into() },
        BatchOp::Del { key: "b".into() },
    ])
    .unwrap();
    assert_eq!(db.get("a").unwrap().as_deref(), Some(&b"1"[..]), "{what}");
    assert_eq!(db.get("b").unwrap(), None, "{what}");
    let values = db.get_many(&["c", "zz"]).unwrap();
    assert_eq!(values, vec![Some(Bytes::from("3")), None], "{what}");
    let all = db.scan(IterOptions::default(), None).unwrap();
    assert_eq!(keys(&all), vec![Bytes::from("a"), Bytes::from("c")], "{what}");
    let reverse = db.scan(IterOptions { reverse: true, ..IterOptions::default() }, None).unwrap();
    assert_eq!(keys(&reverse), vec![Bytes::from("c"), Bytes::from("a")], "{what}");
    db.clear_with(KeyRange::all().lt("c"), false, None).unwrap();
    assert_eq!(keys(&db.scan(IterOptions::default(), None).unwrap()), vec![Bytes::from("c")], "{what}");
    let stats = db.stats().unwrap();
    let connections = stats.iter().find(|(name, _)| name == "connections").map(|(_, n)| *n);
    assert_eq!(connections, Some(1), "{what}: stats {stats:?}");
}

#[test]
fn every_server_serves_the_in_memory_backend() {
    for adapter in ALL {
        let server = BackendServer::start(adapter, MemoryBackend::new(MemoryStore::new()));
        let db = AnyClient::connect(adapter, server.addr, ClientOptions::default());
        exercise(&db, &format!("{adapter:?} on memory"));
    }
}

#[test]
fn every_server_serves_a_backend_that_answers_later() {
    for adapter in ALL {
        let server = BackendServer::start(adapter, Deferred::new());
        let db = AnyClient::connect(adapter, server.addr, ClientOptions::default());
        exercise(&db, &format!("{adapter:?} on a deferred backend"));
    }
}
