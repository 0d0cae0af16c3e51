//! Every operation end to end: blocking client, blocking server, LMDB.

mod common;

use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use bytes::Bytes;
use common::TestServer;
use multilevel_blocking::{Client, ClientOptions, Error, IterOptions, KeyRange, Transport};
use multilevel_proto::{ErrorCode, IssueError, RequestError};
use multilevel_store::{Hooks, StoreOptions};

fn keys(client: &Client, options: IterOptions) -> Vec<Bytes> {
    client.iter(options).unwrap().map(|e| e.unwrap().key).collect()
}

fn remote_code(err: Error) -> ErrorCode {
    match err {
        Error::Request(RequestError::Remote(remote)) => remote.code,
        other => panic!("expected a server error, got {other:?}"),
    }
}

#[test]
fn get_put_del_get_many() {
    let server = TestServer::start(StoreOptions::default());
    let db = server.client();
    assert_eq!(db.get("a").unwrap(), None, "not found is not an error");
    db.put("a", "1").unwrap();
    db.put("b", "2").unwrap();
    assert_eq!(db.get("a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(db.get_many(["a", "x", "b"]).unwrap(), vec![Some(Bytes::from("1")), None, Some(Bytes::from("2"))]);
    db.del("a").unwrap();
    db.del("never-there").unwrap();
    assert_eq!(db.get("a").unwrap(), None);
}

#[test]
fn batch_is_atomic_and_clear_takes_ranges() {
    let server = TestServer::start(StoreOptions::default());
    let db = server.client();
    db.batch().put("k1", "v1").put("k2", "v2").put("k3", "v3").del("k2").write().unwrap();
    assert_eq!(keys(&db, IterOptions::default()), vec![Bytes::from("k1"), Bytes::from("k3")]);
    db.batch().put("k4", "").put("k5", "").write().unwrap();
    db.clear_with(KeyRange::all().gte("k3"), true, Some(2)).unwrap();
    assert_eq!(keys(&db, IterOptions::default()), vec![Bytes::from("k1"), Bytes::from("k3")]);
    db.clear(KeyRange::all()).unwrap();
    assert!(keys(&db, IterOptions::default()).is_empty());
}

#[test]
fn the_empty_key_and_binary_edges_work() {
    let server = TestServer::start(StoreOptions::default());
    let db = server.client();
    for key in [&b""[..], &[0], &[0, 0], &[0xff], &[0xff, 0xff]] {
        db.put(key, key).unwrap();
    }
    assert_eq!(db.get(b"").unwrap().as_deref(), Some(&b""[..]));
    let forward = keys(&db, IterOptions::default());
    assert_eq!(forward, [&b""[..], &[0], &[0, 0], &[0xff], &[0xff, 0xff]].map(Bytes::copy_from_slice));
    let reverse = keys(&db, IterOptions { reverse: true, ..IterOptions::default() });
    assert_eq!(reverse.iter().rev().cloned().collect::<Vec<_>>(), forward);
    let after_empty = keys(&db, IterOptions { range: KeyRange::all().gt(b""), ..IterOptions::default() });
    assert_eq!(after_empty.len(), 4);
    db.del(b"").unwrap();
    assert_eq!(db.get(b"").unwrap(), None);
}

#[test]
fn keys_over_the_limit_are_refused_before_sending() {
    let server = TestServer::start(StoreOptions::default());
    let db = server.client();
    let longest = vec![7u8; 510];
    db.put(&longest, "fits").unwrap(); // also completes the handshake, which announces the limit
    assert_eq!(db.get(&longest).unwrap().as_deref(), Some(&b"fits"[..]));
    let too_long = vec![7u8; 511];
    assert_eq!(db.put(&too_long, "x"), Err(Error::Issue(IssueError::KeyTooLarge { len: 511, max: 510 })));
    assert_eq!(db.get(&too_long), Err(Error::Issue(IssueError::KeyTooLarge { len: 511, max: 510 })));
}

#[test]
fn iterators_take_ranges_limits_reverse_and_shapes() {
    let server = TestServer::start(StoreOptions::default());
    let db = server.client();
    for i in 0u8..20 {
        db.put([i], [i + 100]).unwrap();
    }
    let opts = |range: KeyRange, reverse: bool, limit: Option<u64>| IterOptions {
        range,
        reverse,
        limit,
        ..IterOptions::default()
    };
    let range = KeyRange::all().gt([3]).lte([9]);
    assert_eq!(
        keys(&db, opts(range.clone(), false, None)),
        (4u8..=9).map(|i| Bytes::from(vec![i])).collect::<Vec<_>>()
    );
    assert_eq!(keys(&db, opts(range.clone(), true, Some(2))), vec![Bytes::from(vec![9]), Bytes::from(vec![8])]);
    let values: Vec<Bytes> = db
        .iter(IterOptions { keys: false, range: KeyRange::all().gte([18]), ..IterOptions::default() })
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            assert!(e.key.is_empty(), "a values-only entry has an empty key");
            e.value
        })
        .collect();
    assert_eq!(values, vec![Bytes::from(vec![118]), Bytes::from(vec![119])]);
    let mut it = db.iter(IterOptions { values: false, ..IterOptions::default() }).unwrap();
    assert!(it.next().unwrap().unwrap().value.is_empty());
    it.seek([15]);
    assert_eq!(it.next().unwrap().unwrap().key, Bytes::from(vec![15]));
    let batch = it.next_batch(3).unwrap();
    assert_eq!(batch.len(), 3);
}

#[test]
fn a_second_client_sees_the_first_ones_writes_and_iterators_keep_their_snapshot() {
    let server = TestServer::start(StoreOptions::default());
    let first = server.client();
    let second = server.client();
    first.put("shared", "yes").unwrap();
    assert_eq!(second.get("shared").unwrap().as_deref(), Some(&b"yes"[..]));

    for i in 0..100u32 {
        first.put(format!("k{i:03}"), "v").unwrap();
    }
    let mut a = second.iter(IterOptions::default()).unwrap();
    let mut b = first.iter(IterOptions { reverse: true, ..IterOptions::default() }).unwrap();
    let a_first = a.next().unwrap().unwrap();
    let b_first = b.next().unwrap().unwrap();
    first.put("k999", "late").unwrap();
    let a_rest: Vec<_> = a.map(|e| e.unwrap().key).collect();
    let b_rest: Vec<_> = b.map(|e| e.unwrap().key).collect();
    assert_eq!(a_first.key, Bytes::from("k000"));
    assert_eq!(b_first.key, Bytes::from("shared"));
    assert_eq!(a_rest.len(), 100, "k001..k099 and shared; the later put is not in the snapshot");
    assert_eq!(b_rest.len(), 100);
}

#[test]
fn hooks_reject_with_their_message_and_readonly_skips_them() {
    let calls = Arc::new(Mutex::new(0));
    let counted = Arc::clone(&calls);
    let hooks = Hooks::new()
        .preput(move |key, _| {
            *counted.lock().unwrap() += 1;
            if key.starts_with(b"_") { Err("keys starting with _ are reserved".into()) } else { Ok(()) }
        })
        .predel(|key| if key == b"keep" { Err("keep stays".into()) } else { Ok(()) })
        .prebatch(|ops| if ops.len() > 2 { Err("batches hold at most 2 operations".into()) } else { Ok(()) });
    let server = TestServer::start(StoreOptions::default().hooks(hooks.clone()));
    let db = server.client();
    db.put("ok", "1").unwrap();
    let err = db.put("_secret", "1").unwrap_err();
    assert!(err.to_string().contains("keys starting with _ are reserved"), "{err}");
    assert_eq!(remote_code(err), ErrorCode::Rejected);
    db.put("keep", "1").unwrap();
    assert_eq!(remote_code(db.del("keep").unwrap_err()), ErrorCode::Rejected);
    assert_eq!(
        remote_code(db.batch().put("a", "").put("b", "").put("c", "").write().unwrap_err()),
        ErrorCode::Rejected
    );
    assert_eq!(db.get("_secret").unwrap(), None);
    assert_eq!(db.get("a").unwrap(), None, "a rejected batch writes nothing");

    let before = *calls.lock().unwrap();
    let readonly = TestServer::start(StoreOptions::default().readonly(true).hooks(hooks));
    let ro = readonly.client();
    assert_eq!(remote_code(ro.put("x", "1").unwrap_err()), ErrorCode::ReadOnly);
    assert_eq!(ro.get("x").unwrap(), None, "reads still work");
    assert_eq!(*calls.lock().unwrap(), before, "hooks do not run for writes readonly refuses");
}

#[test]
fn many_threads_pipeline_on_one_client() {
    let server = TestServer::start(StoreOptions::default());
    let db = server.client();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let db = db.clone();
            thread::spawn(move || {
                for i in 0..100 {
                    db.put(format!("t{t}-{i:03}"), format!("{i}")).unwrap();
                    assert_eq!(db.get(format!("t{t}-{i:03}")).unwrap().unwrap(), format!("{i}"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(db.iter(IterOptions::default()).unwrap().count(), 800);
}

#[test]
fn map_full_grows_the_map() {
    let server = TestServer::start(StoreOptions::default().map_size(1 << 20));
    let db = server.client();
    let value = vec![1u8; 64 * 1024];
    for i in 0..64u32 {
        db.put(i.to_be_bytes(), &value).unwrap(); // 4 MiB into a 1 MiB map
    }
    assert_eq!(db.iter(IterOptions { values: false, ..IterOptions::default() }).unwrap().count(), 64);
    assert!(server.store.stats().unwrap().map_size > 1 << 20);
}

#[test]
fn a_dropped_connection_is_replaced_for_later_requests() {
    let server = TestServer::start(StoreOptions::default());
    let addr = server.addr;
    let current: Arc<Mutex<Option<TcpStream>>> = Arc::default();
    let saved = Arc::clone(&current);
    let db = Client::new(
        move || {
            let stream = TcpStream::connect(addr)?;
            *saved.lock().unwrap() = Some(stream.try_clone()?);
            Transport::tcp(stream)
        },
        ClientOptions::default(),
    );
    db.put("a", "1").unwrap();
    let first = current.lock().unwrap().take().unwrap();
    first.shutdown(Shutdown::Both).unwrap();
    // The client notices, connects again, and later requests go through. (A request issued
    // before it noticed would fail with ConnectionLost: retry is off.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while current.lock().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "no reconnect");
        thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(db.wait_connected(std::time::Duration::from_secs(10)));
    assert_eq!(db.get("a").unwrap().as_deref(), Some(&b"1"[..]));
}
