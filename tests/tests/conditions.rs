//! Conditional writes and increments (issue 16) on every client, over LMDB and over a real etcd
//! cluster: compare-and-swap success and failure with the current value, put-if-absent,
//! increments and what is not a number, conditional batches, sublevels; and writers racing
//! through connection-cutting proxies to two servers, one stopped halfway, with retry on:
//! every acknowledged increment counted exactly once and every name claimed exactly once.
//! `MULTILEVEL_CONDITIONS_ROUNDS` (LMDB) and `MULTILEVEL_CONDITIONS_ETCD_ROUNDS` set the rounds
//! per writer.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use multilevel_etcd::testing::EtcdCluster;
use multilevel_etcd::{EtcdBackend, EtcdOptions};
use multilevel_proto::{BatchOp, ClientOptions, Condition, ConditionFailed, ErrorKind};
use multilevel_store::{Store, StoreOptions};
use multilevel_tests::adapters::{ALL, Adapter, AnyClient, BackendServer, TestServer, runtime};
use multilevel_tests::knob;
use multilevel_tests::proxy::CuttingProxy;

fn b(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

/// The conditional operations of one client; `what` names the pair in failures.
fn scenario(db: &AnyClient, what: &str) {
    // Compare-and-swap: from absent, then from a value, then a stale one that fails.
    assert_eq!(db.compare_and_swap("cas", None, Some(b"1")).unwrap(), Ok(()), "{what}");
    assert_eq!(db.compare_and_swap("cas", Some(b"1"), Some(b"2")).unwrap(), Ok(()), "{what}");
    assert_eq!(db.compare_and_swap("cas", Some(b"1"), Some(b"3")).unwrap(), Err(Some(b("2"))), "{what}");
    assert_eq!(db.compare_and_swap("cas", None, Some(b"3")).unwrap(), Err(Some(b("2"))), "{what}");
    assert_eq!(db.get("cas").unwrap(), Some(b("2")), "{what}: a failed swap changes nothing");
    // To absent (a delete), and a swap of an absent key that expected a value.
    assert_eq!(db.compare_and_swap("cas", Some(b"2"), None).unwrap(), Ok(()), "{what}");
    assert_eq!(db.get("cas").unwrap(), None, "{what}");
    assert_eq!(db.compare_and_swap("cas", Some(b"2"), Some(b"4")).unwrap(), Err(None), "{what}");

    // Put-if-absent claims once; the loser learns the winner's value.
    assert_eq!(db.put_if_absent("name/alice", "first").unwrap(), Ok(()), "{what}");
    assert_eq!(db.put_if_absent("name/alice", "second").unwrap(), Err(b("first")), "{what}");
    assert_eq!(db.get("name/alice").unwrap(), Some(b("first")), "{what}");

    // Increments count from an absent key, go down, and are decimal text.
    assert_eq!(db.increment("counter", 5).unwrap(), 5, "{what}");
    assert_eq!(db.increment("counter", -7).unwrap(), -2, "{what}");
    assert_eq!(db.get("counter").unwrap(), Some(b("-2")), "{what}: counters are decimal ASCII");
    db.put("counter", "40").unwrap();
    assert_eq!(db.increment("counter", 2).unwrap(), 42, "{what}: a counter written as text counts on");
    db.put("not a number", "forty").unwrap();
    let error = db.increment("not a number", 1).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotANumber, "{what}: {error}");
    assert_eq!(db.get("not a number").unwrap(), Some(b("forty")), "{what}: nothing applied");
    db.put("max", i64::MAX.to_string()).unwrap();
    assert_eq!(db.increment("max", 1).unwrap_err().kind(), ErrorKind::NotANumber, "{what}: overflow");

    // A batch with several conditions: all must hold; the first that fails is reported with
    // its key's value, and none of the writes is applied.
    let ops = vec![BatchOp::Put { key: b("order/1"), value: b("paid") }, BatchOp::Del { key: b("cart/1") }];
    db.put("cart/1", "full").unwrap();
    let conditions = vec![Condition::equals("cart/1", "full"), Condition::absent("order/1"), Condition::absent("x")];
    assert_eq!(db.batch_if(conditions.clone(), ops.clone()).unwrap(), Ok(()), "{what}");
    assert_eq!(db.get("order/1").unwrap(), Some(b("paid")), "{what}");
    assert_eq!(db.get("cart/1").unwrap(), None, "{what}");
    db.put("cart/1", "full").unwrap();
    let failed = db.batch_if(conditions, vec![BatchOp::Put { key: b("order/1"), value: b("twice") }]).unwrap();
    assert_eq!(failed, Err(ConditionFailed { index: 1, current: Some(b("paid")) }), "{what}");
    assert_eq!(db.get("order/1").unwrap(), Some(b("paid")), "{what}: nothing applied");
    // No conditions: a plain batch.
    assert_eq!(db.batch_if(vec![], vec![BatchOp::Del { key: b("cart/1") }]).unwrap(), Ok(()), "{what}");
}

/// The same operations on a sublevel of each adapter: the conditions' keys are the sublevel's.
macro_rules! sublevel_scenario {
    ($sub:expr, $root:expr, $run:expr, $what:expr) => {{
        let sub = $sub;
        assert_eq!($run(sub.put_if_absent("k", "v")).unwrap(), Ok(()), "{}", $what);
        assert_eq!($run(sub.put_if_absent("k", "w")).unwrap(), Err(b("v")), "{}", $what);
        assert_eq!($run(sub.compare_and_swap("k", Some(b"v"), Some(b"w"))).unwrap(), Ok(()), "{}", $what);
        assert_eq!($run(sub.increment("n", 3)).unwrap(), 3, "{}", $what);
        assert_eq!($root.get("!sub!k").unwrap(), Some(b("w")), "{}: stored under the sublevel", $what);
        assert_eq!($root.get("!sub!n").unwrap(), Some(b("3")), "{}", $what);
        assert_eq!($root.get("k").unwrap(), None, "{}: the parent's key is untouched", $what);
    }};
}

fn sublevels(db: &AnyClient, what: &str) {
    match db {
        AnyClient::Blocking(c) => sublevel_scenario!(c.sublevel("sub"), db, |r| r, what),
        AnyClient::Tokio(c) => sublevel_scenario!(c.sublevel("sub"), db, |f| runtime().block_on(f), what),
        AnyClient::Smol(c) => sublevel_scenario!(c.sublevel("sub"), db, smol::block_on, what),
    }
}

#[test]
fn conditional_writes_on_every_client_over_lmdb() {
    for adapter in ALL {
        let server = TestServer::start(adapter, StoreOptions::default().no_sync(true));
        let db = AnyClient::connect(adapter, server.addr, ClientOptions::default());
        let what = format!("{adapter:?} on LMDB");
        scenario(&db, &what);
        sublevels(&db, &what);
    }
}

#[test]
fn conditional_writes_on_every_client_over_etcd() {
    let Some(cluster) = EtcdCluster::start() else { return };
    for adapter in ALL {
        let namespace = format!("conditions-{adapter:?}").into_bytes();
        let options = EtcdOptions { namespace, ..EtcdOptions::default() };
        let backend = EtcdBackend::connect(&cluster.endpoints(), options).expect("connect to the test cluster");
        let server = BackendServer::start(adapter, backend);
        for retry in [false, true] {
            // Sessions that keep records (retry on) and those that do not take different paths.
            let db = AnyClient::connect(adapter, server.addr, ClientOptions::default().retry(retry));
            let what = format!("{adapter:?} on etcd, retry {retry}");
            db.clear_with(multilevel_proto::KeyRange::all(), false, None).unwrap();
            scenario(&db, &what);
            sublevels(&db, &what);
        }
    }
}

/// A retrying client of `adapter` given several addresses.
fn client(adapter: Adapter, addrs: Vec<SocketAddr>) -> AnyClient {
    multilevel_tests::adapters::AnyClient::connect_any(adapter, addrs, ClientOptions::default().retry(true))
}

/// Two servers of one backend, each behind a proxy that cuts connections every few hundred
/// bytes to a few KiB; writers on every client, with retry on and both addresses, increment
/// shared counters and claim names while the first server is stopped halfway. Each counter
/// ends at the number of acknowledged increments (and the values they returned are exactly
/// 1..=n, each once), and every name is claimed by exactly one writer, whose value it holds.
fn race(first: BackendServer, second: &BackendServer, what: &str, rounds: usize) {
    const COUNTERS: usize = 3;
    const NAMES: usize = 40;
    const WRITERS: usize = 6;
    let proxies = [first.addr, second.addr].map(|addr| CuttingProxy::start(addr, 0x5eed, 9.0, 13.0));
    let addrs: Vec<SocketAddr> = proxies.iter().map(|p| p.addr).collect();
    let progress = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for (n, adapter) in ALL.into_iter().cycle().take(WRITERS).enumerate() {
        let (addrs, progress) = (addrs.clone(), Arc::clone(&progress));
        workers.push(thread::spawn(move || {
            let db = client(adapter, addrs);
            let mut returned: Vec<Vec<i64>> = vec![Vec::new(); COUNTERS];
            let mut claimed = Vec::new();
            for round in 0..rounds {
                let counter = (n + round) % COUNTERS;
                let value = db.increment(format!("race/counter/{counter}"), 1);
                returned[counter].push(value.unwrap_or_else(|e| panic!("{adapter:?}: increment: {e}")));
                let name = (n * 7 + round) % NAMES;
                let claim = db.put_if_absent(format!("race/name/{name:02}"), format!("writer {n}"));
                if claim.unwrap_or_else(|e| panic!("{adapter:?}: put_if_absent: {e}")).is_ok() {
                    claimed.push(name);
                }
                progress.fetch_add(1, Ordering::Relaxed);
            }
            (n, returned, claimed)
        }));
    }
    // The first server goes away halfway; its proxy then drops every connection.
    while progress.load(Ordering::Relaxed) < WRITERS * rounds / 2 && !workers.iter().all(|w| w.is_finished()) {
        thread::sleep(Duration::from_millis(5));
    }
    drop(first);
    let mut returned: Vec<Vec<i64>> = vec![Vec::new(); COUNTERS];
    let mut owners: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for worker in workers {
        let (n, values, claimed) = worker.join().expect("a writer failed");
        for (all, mine) in returned.iter_mut().zip(values) {
            all.extend(mine);
        }
        for name in claimed {
            owners.entry(name).or_default().push(n);
        }
    }
    let direct = AnyClient::connect(Adapter::Blocking, second.addr, ClientOptions::default());
    for (counter, mut values) in returned.into_iter().enumerate() {
        let stored = direct.get(format!("race/counter/{counter}")).unwrap();
        assert_eq!(stored, Some(Bytes::from(values.len().to_string())), "{what}: counter {counter}");
        values.sort_unstable();
        let want: Vec<i64> = (1..=values.len() as i64).collect();
        assert_eq!(values, want, "{what}: counter {counter}: every increment returned its own value once");
    }
    for name in 0..NAMES {
        let stored = direct.get(format!("race/name/{name:02}")).unwrap();
        match owners.get(&name) {
            Some(owners) => {
                assert_eq!(owners.len(), 1, "{what}: name {name} claimed by {owners:?}");
                assert_eq!(stored, Some(Bytes::from(format!("writer {}", owners[0]))), "{what}: name {name}");
            }
            None => assert_eq!(stored, None, "{what}: name {name} stored but never acknowledged"),
        }
    }
    let cuts: u64 = proxies.iter().map(CuttingProxy::cuts).sum();
    println!("{what}: {WRITERS} writers x {rounds} rounds, {cuts} cuts, one server stopped halfway");
    assert!(cuts > 0, "{what}: the proxies cut no connection");
}

#[test]
fn racing_writers_through_cuts_and_a_stopped_server_count_and_claim_exactly_once_on_lmdb() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = Store::open(dir.path(), StoreOptions::default().no_sync(true)).expect("the store opens");
    let first = BackendServer::start(Adapter::Tokio, store.clone());
    let second = BackendServer::start(Adapter::Blocking, store);
    race(first, &second, "LMDB", knob("MULTILEVEL_CONDITIONS_ROUNDS", 1000) as usize);
}

#[test]
fn racing_writers_through_cuts_and_a_stopped_server_count_and_claim_exactly_once_on_etcd() {
    let Some(cluster) = EtcdCluster::start() else { return };
    let servers = [Adapter::Smol, Adapter::Tokio].map(|adapter| {
        let options = EtcdOptions { namespace: b"race".to_vec(), ..EtcdOptions::default() };
        let backend = EtcdBackend::connect(&cluster.endpoints(), options).expect("connect to the test cluster");
        BackendServer::start(adapter, backend)
    });
    let [first, second] = servers;
    race(first, &second, "etcd", knob("MULTILEVEL_CONDITIONS_ETCD_ROUNDS", 120) as usize);
}
