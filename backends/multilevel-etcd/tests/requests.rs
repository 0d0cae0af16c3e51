//! Every store request against a real 3-member etcd cluster, started by the test.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use common::{Conn, backend, backend_with, bput, keys, put};
use multilevel_etcd::EtcdOptions;
use multilevel_proto::backend::Backend;
use multilevel_proto::hooks::Hooks;
use multilevel_proto::{BatchOp, KeyRange, NO_REPLAY_SESSION, Outcome, StoreError, StoreRequest, WriteOp};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[test]
fn every_request_kind() {
    let Some(cluster) = common::cluster() else { return };
    let backend = backend(&cluster, "kinds");
    assert!(backend.server_config().max_key_size >= 1024);
    let mut db = Conn::new(&backend);

    // put, get (including the empty key), del
    db.write(1, 1, put("a", "1")).unwrap();
    db.write(1, 2, put("", "empty")).unwrap();
    assert_eq!(db.get("a"), Some(b("1")));
    assert_eq!(db.get(""), Some(b("empty")));
    assert_eq!(db.get("missing"), None);
    db.write(1, 3, WriteOp::Del { key: b("") }).unwrap();
    assert_eq!(db.get(""), None);

    // a batch, with a key twice: the last operation wins
    let ops = vec![bput("b", "2"), bput("c", "3"), bput("b", "22"), BatchOp::Del { key: b("a") }, bput("d", "4")];
    db.write(1, 4, WriteOp::Batch(ops)).unwrap();
    let many = db.run(StoreRequest::GetMany { keys: vec![b("a"), b("b"), b("c"), b("zz")] });
    assert_eq!(many, Ok(Outcome::Values(vec![None, Some(b("22")), Some(b("3")), None])));
    assert_eq!(db.entries(), 3);

    // GetMany over more keys than one transaction holds
    let keys_200: Vec<Bytes> = (0..200).map(|i| Bytes::from(format!("k{i:03}"))).collect();
    for (i, chunk) in keys_200.chunks(100).enumerate() {
        let ops = chunk.iter().map(|k| bput(k, k)).collect();
        db.write(1, 5 + i as u64, WriteOp::Batch(ops)).unwrap();
    }
    match db.run(StoreRequest::GetMany { keys: keys_200.clone() }) {
        Ok(Outcome::Values(values)) => {
            assert_eq!(values.len(), 200);
            assert!(values.iter().zip(&keys_200).all(|(v, k)| v.as_ref() == Some(k)));
        }
        other => panic!("{other:?}"),
    }

    // clear with a limit, forward and reverse, then without
    let range = KeyRange::all().gte("k").lt("l");
    db.write(1, 7, WriteOp::Clear { range: range.clone(), reverse: false, limit: Some(3) }).unwrap();
    assert_eq!(db.get("k000"), None);
    assert_eq!(db.get("k002"), None);
    assert_eq!(db.get("k003"), Some(b("k003")));
    db.write(1, 8, WriteOp::Clear { range: range.clone(), reverse: true, limit: Some(2) }).unwrap();
    assert_eq!(db.get("k199"), None);
    assert_eq!(db.get("k198"), None);
    assert_eq!(db.get("k197"), Some(b("k197")));
    assert_eq!(db.entries(), 3 + 195);
    // a limit above what the range holds clears the range
    db.write(1, 9, WriteOp::Clear { range: range.clone(), reverse: true, limit: Some(10_000) }).unwrap();
    assert_eq!(db.entries(), 3);
    db.write(1, 10, WriteOp::Clear { range: KeyRange::all().gt("b"), reverse: false, limit: None }).unwrap();
    assert_eq!(db.get("b"), Some(b("22")));
    assert_eq!(db.entries(), 1);

    // a client that never replays: applied, no session record
    db.write(NO_REPLAY_SESSION, 1, put("n", "x")).unwrap();
    db.write(NO_REPLAY_SESSION, 1, put("n", "y")).unwrap();
    assert_eq!(db.get("n"), Some(b("y")), "no record: the same id applies again");

    // a key over the maximum
    let long = "x".repeat(backend.server_config().max_key_size as usize + 1);
    assert!(matches!(db.write(1, 11, put(&long, "v")), Err(StoreError::KeyTooLarge { .. })));

    // namespaces do not see each other
    let other = common::backend(&cluster, "other");
    let mut other = Conn::new(&other);
    assert_eq!(other.get("b"), None);
    assert_eq!(other.entries(), 0);
}

#[test]
fn hooks_and_readonly() {
    let Some(cluster) = common::cluster() else { return };
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let hooks = Hooks::new().preput(move |key, _| {
        counted.fetch_add(1, Ordering::SeqCst);
        if key.starts_with(b"bad") { Err("no bad keys".into()) } else { Ok(()) }
    });
    let options = EtcdOptions { namespace: b"hooks".to_vec(), hooks, ..EtcdOptions::default() };
    let hooked = backend_with(&cluster, options);
    let mut db = Conn::new(&hooked);
    assert_eq!(db.write(5, 1, put("bad1", "v")), Err(StoreError::Rejected("no bad keys".into())));
    assert_eq!(db.get("bad1"), None);
    db.write(5, 2, put("good", "v")).unwrap();
    // The replay of the rejected write gets the same rejection, without the hook running.
    let before = calls.load(Ordering::SeqCst);
    assert_eq!(db.write(5, 1, put("bad1", "v")), Err(StoreError::Rejected("no bad keys".into())));
    assert_eq!(calls.load(Ordering::SeqCst), before);

    let options = EtcdOptions { namespace: b"hooks".to_vec(), readonly: true, ..EtcdOptions::default() };
    let readonly = backend_with(&cluster, options);
    assert!(readonly.server_config().readonly);
    let mut ro = Conn::new(&readonly);
    assert_eq!(ro.write(6, 1, put("x", "v")), Err(StoreError::ReadOnly));
    assert_eq!(ro.get("good"), Some(b("v")), "reads still work");
    assert_eq!(ro.get("x"), None);
}

/// The same `(session, request)` twice, through one server and through two: the original
/// outcome, applied once.
#[test]
fn replays_apply_once_also_across_two_servers() {
    let Some(cluster) = common::cluster() else { return };
    let first = backend(&cluster, "replay");
    let second = backend(&cluster, "replay");
    let mut a = Conn::new(&first);
    let mut b2 = Conn::new(&second);

    a.write(9, 1, put("k", "original")).unwrap();
    // A replay with a different payload shows whether it was applied again.
    a.write(9, 1, put("k", "replayed")).unwrap();
    assert_eq!(a.get("k"), Some(b("original")));
    b2.write(9, 1, put("k", "replayed elsewhere")).unwrap();
    assert_eq!(b2.get("k"), Some(b("original")));

    // A non-idempotent write: a clear of one key, replayed on the other server, clears no second key.
    for (i, k) in ["c1", "c2", "c3"].iter().enumerate() {
        a.write(9, 2 + i as u64, put(k, "v")).unwrap();
    }
    let clear_one = WriteOp::Clear { range: KeyRange::all().gte("c").lt("d"), reverse: false, limit: Some(1) };
    a.write(9, 5, clear_one.clone()).unwrap();
    b2.write(9, 5, clear_one.clone()).unwrap();
    a.write(9, 5, clear_one).unwrap();
    assert_eq!((a.get("c1"), a.get("c2"), a.get("c3")), (None, Some(b("v")), Some(b("v"))));

    // The second server carries on the session; the first, with a stale view of the record,
    // still answers replays right and applies new writes once.
    b2.write(9, 6, put("k", "six")).unwrap();
    a.write(9, 6, put("k", "six again")).unwrap();
    a.write(9, 7, put("k", "seven")).unwrap();
    assert_eq!(b2.get("k"), Some(b("seven")));
    b2.write(9, 7, put("k", "seven again")).unwrap();
    assert_eq!(a.get("k"), Some(b("seven")));

    // Concurrent: the same write sent to both servers at once is applied once.
    for request in 10..30u64 {
        let key = format!("once{request}");
        let clear = WriteOp::Clear { range: KeyRange::all().gte("once").lt("oncf"), reverse: false, limit: Some(1) };
        a.write(9, request * 3, put(&key, "v")).unwrap();
        let op_a = a.send(StoreRequest::Write(multilevel_proto::WriteRequest {
            session: 9,
            request: request * 3 + 1,
            op: clear.clone(),
        }));
        let op_b = b2.send(StoreRequest::Write(multilevel_proto::WriteRequest {
            session: 9,
            request: request * 3 + 1,
            op: clear,
        }));
        assert!(op_a.is_ok() && op_b.is_ok());
        assert_eq!(a.answer().1, Ok(Outcome::Written));
        assert_eq!(b2.answer().1, Ok(Outcome::Written));
    }
    let mut check = Conn::new(&first);
    assert_eq!(check.get("once29"), None);
    // Every clear removed exactly its one key: the puts before it left exactly one each time.
    let iterator = check.open();
    let (entries, _) = check.scan(iterator, KeyRange::all().gte("once").lt("oncf"), false, false, 100, 1 << 20, None);
    assert!(entries.is_empty(), "each clear removed the one key: {:?}", keys(&entries));
}

#[test]
fn a_batch_over_the_txn_limit_is_refused_whole() {
    let Some(cluster) = common::cluster() else { return };
    let backend = backend(&cluster, "limits");
    let mut db = Conn::new(&backend);
    let big: Vec<BatchOp> = (0..200).map(|i| bput(format!("k{i}"), "v")).collect();
    let error = db.write(3, 1, WriteOp::Batch(big.clone())).unwrap_err();
    let StoreError::Internal(message) = &error else { panic!("{error:?}") };
    assert!(message.contains("--max-txn-ops") && message.contains("not applied"), "{message}");
    assert_eq!(db.entries(), 0, "nothing applied");
    // The replay gets the same refusal.
    assert_eq!(db.write(3, 1, WriteOp::Batch(big.clone())), Err(error));
    // 127 distinct keys (+ the session record) fit.
    db.write(3, 2, WriteOp::Batch(big[..127].to_vec())).unwrap();
    assert_eq!(db.entries(), 127);

    // Options that claim more than the cluster allows: etcd's refusal, reported the same way.
    let options = EtcdOptions { namespace: b"limits2".to_vec(), max_txn_ops: 10_000, ..EtcdOptions::default() };
    let optimistic = backend_with(&cluster, options);
    let mut db = Conn::new(&optimistic);
    let error = db.write(4, 1, WriteOp::Batch(big)).unwrap_err();
    assert!(error.to_string().contains("--max-txn-ops"), "{error}");
    assert_eq!(db.entries(), 0, "nothing applied");
}

#[test]
fn an_oversized_value_is_refused() {
    let Some(cluster) = common::cluster() else { return };
    let backend = backend(&cluster, "sizes");
    let mut db = Conn::new(&backend);
    let value = vec![7u8; 2 << 20];
    let error = db.write(3, 1, put("big", &value)).unwrap_err();
    assert!(error.to_string().contains("--max-request-bytes"), "{error}");
    assert_eq!(db.get("big"), None);
    db.write(3, 2, put("fits", vec![7u8; 1 << 20])).unwrap();
    assert_eq!(db.get("fits").map(|v| v.len()), Some(1 << 20));

    let options = EtcdOptions { namespace: b"sizes".to_vec(), max_request_bytes: 10 << 20, ..EtcdOptions::default() };
    let optimistic = backend_with(&cluster, options);
    let mut db = Conn::new(&optimistic);
    let error = db.write(4, 1, put("big", &value)).unwrap_err();
    assert!(error.to_string().contains("--max-request-bytes"), "etcd's own refusal, named: {error}");
    assert_eq!(db.get("big"), None);
}

/// Writes queued together on one connection commit as groups: in order, each once, replays
/// answered from the record, a clear in the middle seeing exactly the writes before it.
#[test]
fn pipelined_writes_commit_in_groups_in_order_and_once() {
    use std::time::Instant;

    use multilevel_proto::WriteRequest;

    let Some(cluster) = common::cluster() else { return };
    let hooks = Hooks::new().preput(|key, _| if key.ends_with(b"7") { Err("no sevens".into()) } else { Ok(()) });
    let options = EtcdOptions { namespace: b"groups".to_vec(), hooks, ..EtcdOptions::default() };
    let first = backend_with(&cluster, options.clone());
    let second = backend_with(&cluster, options);
    let mut db = Conn::new(&first);
    let count = 600u64;
    let write = |request: u64, tag: &str| {
        let op = if request == 300 {
            // Clears every key written before it; the keys after it survive.
            WriteOp::Clear { range: KeyRange::all().gte("p").lt("q"), reverse: false, limit: None }
        } else if request.is_multiple_of(50) {
            WriteOp::Batch(vec![bput(format!("p{request:04}"), tag), BatchOp::Del { key: b("p0001") }])
        } else {
            put(format!("p{request:04}"), tag)
        };
        StoreRequest::Write(WriteRequest { session: 11, request, op })
    };
    let started = Instant::now();
    for request in 1..=count {
        db.send(write(request, "original")).unwrap();
    }
    let mut answers: Vec<_> = (0..count).map(|_| db.answer()).collect();
    let elapsed = started.elapsed();
    eprintln!(
        "{count} pipelined writes on one connection: {elapsed:?} ({:.0}/s)",
        count as f64 / elapsed.as_secs_f64()
    );
    answers.sort_by_key(|(op, _)| op.0);
    for (i, (_, result)) in answers.iter().enumerate() {
        let request = i as u64 + 1;
        if request % 10 == 7 {
            assert_eq!(result, &Err(StoreError::Rejected("no sevens".into())), "request {request}");
        } else {
            assert_eq!(result, &Ok(Outcome::Written), "request {request}");
        }
    }
    let expected = (301..=count).filter(|r| r % 10 != 7).count() as u64;
    assert_eq!(db.entries(), expected);
    assert_eq!(db.get("p0299"), None, "cleared");
    assert_eq!(db.get("p0301").as_deref(), Some(&b"original"[..]));

    // Replays, pipelined, on this server and another: the original outcomes, nothing applied.
    let mut other = Conn::new(&second);
    for request in 1..=count {
        db.send(write(request, "replayed")).unwrap();
        other.send(write(request, "replayed elsewhere")).unwrap();
    }
    for conn in [&mut db, &mut other] {
        let mut answers: Vec<_> = (0..count).map(|_| conn.answer()).collect();
        answers.sort_by_key(|(op, _)| op.0);
        for (i, (_, result)) in answers.iter().enumerate() {
            let request = i as u64 + 1;
            let rejected = request % 10 == 7;
            assert_eq!(result.is_err(), rejected, "request {request}: {result:?}");
        }
    }
    assert_eq!(db.entries(), expected);
    assert_eq!(db.get("p0301").as_deref(), Some(&b"original"[..]));
    assert_eq!(db.get("p0550").as_deref(), Some(&b"original"[..]));

    // One in flight at a time, for comparison.
    let started = Instant::now();
    for request in count + 1..=count + 100 {
        db.write(11, request, put(format!("s{request}x"), "v")).unwrap();
    }
    eprintln!("100 writes one at a time: {:?} per write", started.elapsed() / 100);
}

/// Records of sessions idle past the retention are deleted; live ones stay.
#[test]
fn idle_sessions_are_forgotten() {
    use std::time::{Duration, Instant};

    let Some(cluster) = common::cluster() else { return };
    let options = EtcdOptions {
        namespace: b"forget".to_vec(),
        session_retention: Duration::from_secs(1),
        ..EtcdOptions::default()
    };
    let backend = backend_with(&cluster, options);
    let mut db = Conn::new(&backend);
    db.write(21, 1, put("a", "1")).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let endpoints = cluster.endpoints();
    let records = move || {
        let endpoints = endpoints.clone();
        runtime.block_on(async move {
            let mut client = etcd_client::Client::connect(&endpoints, None).await.unwrap();
            let options = etcd_client::GetOptions::new().with_range(b"forget\x02".to_vec()).with_count_only();
            client.get(b"forget\x01".to_vec(), Some(options)).await.unwrap().count()
        })
    };
    assert_eq!(records(), 1);
    let started = Instant::now();
    while records() > 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "the idle record was not forgotten");
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("an idle session's record was forgotten {:?} after its last write", started.elapsed());
    // Forgotten: a replay of its write would apply again; a new write starts a new record.
    db.write(21, 2, put("b", "2")).unwrap();
    assert_eq!(records(), 1);
}
