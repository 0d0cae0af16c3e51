//! Watches through every client and server: the exact events of each kind of write, sublevel
//! watches, exact resumption through a proxy that cuts connections at random bytes, trimmed
//! history, and a watcher that does not read.

use std::time::{Duration, Instant};

use bytes::Bytes;
use multilevel_proto::{
    BatchOp, Change, ChangeEvent, ClientOptions, ErrorKind, KeyRange, MemoryBackend, MemoryStore, WatchOptions,
};
use multilevel_store::{Store, StoreOptions};
use multilevel_tests::adapters::{ALL, Adapter, AnyClient, AnyWatch, BackendServer, runtime};
use multilevel_tests::knob;
use multilevel_tests::proxy::CuttingProxy;

const WAIT: Duration = Duration::from_secs(10);

fn b(data: &[u8]) -> Bytes {
    Bytes::copy_from_slice(data)
}

fn put(key: &[u8], value: &[u8]) -> Change {
    Change::Put { key: b(key), value: b(value) }
}

fn del(key: &[u8]) -> Change {
    Change::Del { key: b(key) }
}

/// The backends a watch must work on here (etcd has its own tests, `tests/etcd.rs`).
#[derive(Debug, Clone, Copy)]
enum Kind {
    Memory,
    Lmdb,
}

const BACKENDS: [Kind; 2] = [Kind::Memory, Kind::Lmdb];

/// A server of `adapter` on a fresh backend of `kind` (and the directory it lives in).
fn start(kind: Kind, adapter: Adapter) -> (BackendServer, Option<tempfile::TempDir>) {
    match kind {
        Kind::Memory => (BackendServer::start(adapter, MemoryBackend::new(MemoryStore::new())), None),
        Kind::Lmdb => {
            let dir = tempfile::tempdir().expect("a temp dir");
            let store = Store::open(dir.path(), StoreOptions::default()).expect("the store opens");
            (BackendServer::start(adapter, store), Some(dir))
        }
    }
}

/// `(position offset from the first, commit_end, change)` of each event.
fn shape(events: &[ChangeEvent]) -> Vec<(u64, bool, Change)> {
    let first = events.first().map_or(0, |e| e.position);
    events.iter().map(|e| (e.position - first, e.commit_end, e.change.clone())).collect()
}

#[test]
fn every_client_sees_each_kind_of_write_on_every_server_and_backend() {
    for backend in BACKENDS {
        for server_adapter in ALL {
            let (server, _dir) = start(backend, server_adapter);
            for adapter in ALL {
                let what = format!("{adapter:?} client, {server_adapter:?} server, {backend:?}");
                let writer = AnyClient::connect(Adapter::Tokio, server.addr, ClientOptions::default());
                writer.put("before", "0").unwrap();
                let watcher = AnyClient::connect(adapter, server.addr, ClientOptions::default());
                let watch = watcher.watch(WatchOptions::new().range(KeyRange::prefix(b"w/"))).unwrap();
                // The watch is open once a request after it is answered (one connection, in order).
                watcher.get("sync").unwrap();
                writer.put("w/a", "1").unwrap();
                writer.put("elsewhere", "x").unwrap();
                writer.del("w/absent").unwrap();
                let ops = vec![
                    BatchOp::Put { key: b(b"w/b"), value: b(b"2") },
                    BatchOp::Del { key: b(b"w/a") },
                    BatchOp::Put { key: b(b"other"), value: b(b"y") },
                    BatchOp::Put { key: b(b"w/c"), value: b(b"3") },
                ];
                writer.batch(ops).unwrap();
                writer.increment("w/n", 5).unwrap();
                writer.clear_with(KeyRange::prefix(b"w/"), false, None).unwrap();
                let events = watch.take(8, WAIT);
                assert_eq!(
                    shape(&events),
                    vec![
                        (0, true, put(b"w/a", b"1")),
                        (2, false, put(b"w/b", b"2")),
                        (2, false, del(b"w/a")),
                        (2, true, put(b"w/c", b"3")),
                        (3, true, put(b"w/n", b"5")),
                        (4, false, del(b"w/b")),
                        (4, false, del(b"w/c")),
                        (4, true, del(b"w/n")),
                    ],
                    "{what}"
                );
                assert!(watch.next_within(Duration::from_millis(100)).is_none(), "{what}: nothing more");
                writer.clear_with(KeyRange::all(), false, None).unwrap();
            }
        }
    }
}

#[test]
fn a_sublevel_watch_sees_its_keys_without_the_prefix_and_replays_from_a_position() {
    let (server, _dir) = start(Kind::Lmdb, Adapter::Tokio);
    for adapter in ALL {
        let db = AnyClient::connect(adapter, server.addr, ClientOptions::default());
        let AnyClient::Tokio(client) = AnyClient::connect(Adapter::Tokio, server.addr, ClientOptions::default()) else {
            unreachable!()
        };
        let users = client.sublevel("users");
        runtime().block_on(users.put("ann", "1")).unwrap();
        db.put("ann", "root").unwrap();
        runtime().block_on(users.del("ann")).unwrap();
        // Replayed from the start of the history kept, then live.
        let options = WatchOptions::new().after(0);
        let watch = match &db {
            AnyClient::Tokio(c) => AnyWatch::tokio(c.sublevel("users").watch(options).unwrap()),
            AnyClient::Smol(c) => AnyWatch::smol(c.sublevel("users").watch(options).unwrap()),
            AnyClient::Blocking(c) => AnyWatch::blocking(c.sublevel("users").watch(options).unwrap()),
        };
        runtime().block_on(users.put("bob", "2")).unwrap();
        let changes: Vec<Change> = watch.take(3, WAIT).into_iter().map(|event| event.change).collect();
        assert_eq!(changes[..2], [put(b"ann", b"1"), del(b"ann")], "{adapter:?}");
        assert_eq!(changes[2], put(b"bob", b"2"), "{adapter:?}");
        runtime().block_on(client.clear_with(KeyRange::all(), false, None)).unwrap();
    }
}

/// With retry on, a watcher behind a proxy that cuts its connection every few hundred bytes
/// receives every commit exactly once, in order, while a writer puts keys directly.
#[test]
fn watchers_resume_exactly_through_a_cutting_proxy() {
    let writes = knob("WATCH_WRITES", 400) as usize;
    for backend in BACKENDS {
        let (server, _dir) = start(backend, Adapter::Tokio);
        let proxy = CuttingProxy::start(server.addr, 7, 7.0, 11.0);
        let writer = AnyClient::connect(Adapter::Tokio, server.addr, ClientOptions::default());
        let watchers: Vec<_> = ALL
            .iter()
            .map(|&adapter| {
                let client = AnyClient::connect(adapter, proxy.addr, ClientOptions::default().retry(true));
                client.get("sync").unwrap();
                let watch = client.watch(WatchOptions::new().range(KeyRange::prefix(b"k"))).unwrap();
                client.get("sync").unwrap();
                (adapter, client, watch)
            })
            .collect();
        for i in 0..writes {
            writer.put(format!("k{i:05}"), format!("{i}")).unwrap();
            if i % 10 == 0 {
                writer.put("noise", "n").unwrap();
            }
        }
        for (adapter, _client, watch) in &watchers {
            let events = watch.take(writes, WAIT);
            let keys: Vec<String> =
                events.iter().map(|e| String::from_utf8_lossy(e.change.key()).into_owned()).collect();
            let want: Vec<String> = (0..writes).map(|i| format!("k{i:05}")).collect();
            assert_eq!(keys, want, "{adapter:?} watcher on {backend:?}");
            assert!(events.windows(2).all(|w| w[0].position < w[1].position), "{adapter:?}: positions increase");
            assert!(watch.next_within(Duration::from_millis(200)).is_none(), "{adapter:?}: nothing repeated");
        }
        println!("{backend:?}: {writes} writes, {} cuts", proxy.cuts());
        assert!(proxy.cuts() > 3, "the proxy cut connections ({})", proxy.cuts());
    }
}

#[test]
fn a_watch_from_a_trimmed_position_fails_naming_the_oldest_kept() {
    let mut store = MemoryStore::new();
    store.change_log().set_keep(5);
    let server = BackendServer::start(Adapter::Tokio, MemoryBackend::new(store));
    for adapter in ALL {
        let db = AnyClient::connect(adapter, server.addr, ClientOptions::default());
        for i in 0..10 {
            db.put(format!("k{i}"), "v").unwrap();
        }
        let oldest = match db.watch(WatchOptions::new().after(1)).unwrap().next_within(WAIT) {
            Some(Err(err)) => {
                assert_eq!(err.kind(), ErrorKind::Compacted, "{adapter:?}: {err}");
                let multilevel_proto::CallError::Request(multilevel_proto::RequestError::Compacted { oldest }) = err
                else {
                    panic!("{adapter:?}: {err:?}")
                };
                oldest
            }
            other => panic!("{adapter:?}: {other:?}"),
        };
        // From the oldest kept on, the history is there.
        let watch = db.watch(WatchOptions::new().after(oldest - 1)).unwrap();
        let first = watch.take(1, WAIT);
        assert_eq!(first[0].position, oldest, "{adapter:?}");
    }
}

/// A watcher that never reads holds the server to its credit: the writers carry on at their
/// pace, and the watcher, once it reads, gets everything in order.
#[test]
fn a_watcher_that_does_not_read_costs_the_writers_nothing_and_misses_nothing() {
    let writes = knob("WATCH_SLOW_WRITES", 2000) as usize;
    let (server, _dir) = start(Kind::Lmdb, Adapter::Tokio);
    let writer = AnyClient::connect(Adapter::Tokio, server.addr, ClientOptions::default());
    let value = "v".repeat(1000);
    let rate = |from: usize| {
        let start = Instant::now();
        for i in from..from + writes {
            writer.put(format!("k{i:06}"), &value).unwrap();
        }
        writes as f64 / start.elapsed().as_secs_f64()
    };
    let alone = rate(0);
    let AnyClient::Tokio(slow) = AnyClient::connect(Adapter::Tokio, server.addr, ClientOptions::default()) else {
        unreachable!()
    };
    let mut watch = slow.watch(WatchOptions::new().after(writes as u64)).unwrap();
    runtime().block_on(slow.get("sync")).unwrap();
    let with_slow_watcher = rate(writes);
    println!("writer: {alone:.0}/s alone, {with_slow_watcher:.0}/s with a watcher that does not read");
    assert!(with_slow_watcher > alone * 0.5, "the watcher slowed the writer: {alone:.0}/s -> {with_slow_watcher:.0}/s");
    // Now it reads: every write of the second run, in order.
    use futures_util::StreamExt;
    let keys: Vec<String> = runtime().block_on(async {
        let mut keys = Vec::new();
        while keys.len() < writes {
            let event = tokio::time::timeout(WAIT, watch.next()).await.expect("an event in time").unwrap().unwrap();
            keys.push(String::from_utf8_lossy(event.change.key()).into_owned());
        }
        keys
    });
    let want: Vec<String> = (writes..2 * writes).map(|i| format!("k{i:06}")).collect();
    assert_eq!(keys, want);
}

/// A watcher that falls behind the history LMDB keeps is told so, after the events it had
/// received, with the oldest position still kept; it is never silently skipped ahead.
#[test]
fn a_watcher_that_falls_behind_the_retention_is_told_so() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let retention = multilevel_store::ChangeRetention::default().max_commits(50);
    let store = Store::open(dir.path(), StoreOptions::default().change_retention(retention)).expect("the store opens");
    let server = BackendServer::start(Adapter::Tokio, store);
    let writer = AnyClient::connect(Adapter::Tokio, server.addr, ClientOptions::default());
    let AnyClient::Tokio(slow) = AnyClient::connect(Adapter::Tokio, server.addr, ClientOptions::default()) else {
        unreachable!()
    };
    // Values of 100 KiB: the watcher's 256 KiB window holds two or three of them.
    let mut watch = slow.watch(WatchOptions::new()).unwrap();
    runtime().block_on(slow.get("sync")).unwrap();
    let value = vec![b'v'; 100 << 10];
    for i in 0..200 {
        writer.put(format!("k{i:03}"), &value).unwrap();
    }
    use futures_util::StreamExt;
    let (events, error) = runtime().block_on(async {
        let mut events = Vec::new();
        loop {
            match tokio::time::timeout(WAIT, watch.next()).await.expect("an event or the error in time") {
                Some(Ok(event)) => events.push(event.position),
                Some(Err(err)) => return (events, err),
                None => panic!("the watch ended without an error"),
            }
        }
    });
    assert!(!events.is_empty() && events.len() < 150, "{} events before the error", events.len());
    assert!(events.windows(2).all(|w| w[1] == w[0] + 1), "no event skipped before the error: {events:?}");
    assert_eq!(error.kind(), ErrorKind::Compacted, "{error}");
    let multilevel_proto::CallError::Request(multilevel_proto::RequestError::Compacted { oldest }) = error else {
        panic!("{error:?}")
    };
    assert!(oldest > events.last().unwrap() + 1, "the oldest kept ({oldest}) is past what the watcher had");
}
