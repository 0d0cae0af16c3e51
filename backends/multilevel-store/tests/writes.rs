//! Hooks, read-only stores, group commit and at-most-once writes.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::*;
use multilevel_store::{
    BatchOp, Execution, Hooks, KeyRange, Outcome, Store, StoreError, StoreOptions, StoreRequest, WriteOp, WriteRequest,
};

fn counting_hooks(calls: &Arc<AtomicUsize>) -> Hooks {
    let (a, b, c) = (Arc::clone(calls), Arc::clone(calls), Arc::clone(calls));
    Hooks::new()
        .preput(move |key, value| {
            a.fetch_add(1, Ordering::SeqCst);
            if key.starts_with(b"x") {
                return Err(format!("keys must not start with x (value was {} bytes)", value.len()));
            }
            if key == b"panic" {
                panic!("hook bug");
            }
            Ok(())
        })
        .predel(move |key| {
            b.fetch_add(1, Ordering::SeqCst);
            if key == b"keep" { Err("keep stays".into()) } else { Ok(()) }
        })
        .prebatch(move |ops: &[BatchOp]| {
            c.fetch_add(1, Ordering::SeqCst);
            if ops.len() > 2 { Err(format!("batches of {} ops are too long", ops.len())) } else { Ok(()) }
        })
}

#[test]
fn hooks_reject_with_their_message_and_replays_do_not_rerun_them() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let store = Store::open(dir.path(), StoreOptions::default().hooks(counting_hooks(&calls))).unwrap();
    let mut conn = store.connection();
    let s = 42;
    assert_eq!(write(&mut conn, s, 1, put("ok", "1")), Ok(Outcome::Written));
    let rejected = Err(StoreError::Rejected("keys must not start with x (value was 3 bytes)".into()));
    assert_eq!(write(&mut conn, s, 2, put("xy", "abc")), rejected);
    assert_eq!(get(&mut conn, "xy"), None);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // The replay gets the same rejection, and the hook does not run again.
    assert_eq!(write(&mut conn, s, 2, put("xy", "abc")), rejected);
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    assert_eq!(write(&mut conn, s, 3, put("keep", "1")), Ok(Outcome::Written));
    assert_eq!(write(&mut conn, s, 4, WriteOp::Del { key: b("keep") }), Err(StoreError::Rejected("keep stays".into())));
    assert_eq!(get(&mut conn, "keep"), Some(b("1")));
    let long = WriteOp::Batch(vec![BatchOp::Del { key: b("keep") }, batch_put("a", ""), batch_put("b", "")]);
    assert_eq!(write(&mut conn, s, 5, long), Err(StoreError::Rejected("batches of 3 ops are too long".into())));
    assert_eq!(get(&mut conn, "keep"), Some(b("1")));
    assert_eq!(get(&mut conn, "a"), None);
    assert_eq!(calls.load(Ordering::SeqCst), 5);

    // A panicking hook rejects the write and the store goes on.
    let panicked = write(&mut conn, s, 6, put("panic", ""));
    assert!(matches!(panicked, Err(StoreError::Rejected(ref m)) if m.contains("panicked")), "{panicked:?}");
    assert_eq!(write(&mut conn, s, 7, put("fine", "")), Ok(Outcome::Written));

    // Oversized keys are refused before the hook runs; Clear runs no hook.
    let before = calls.load(Ordering::SeqCst);
    assert!(matches!(write(&mut conn, s, 8, put([b'o'; 600], "")), Err(StoreError::KeyTooLarge { .. })));
    let clear = WriteOp::Clear { range: KeyRange::all(), reverse: false, limit: None };
    assert_eq!(write(&mut conn, s, 9, clear), Ok(Outcome::Written));
    assert_eq!(calls.load(Ordering::SeqCst), before);
    assert_eq!(get(&mut conn, "keep"), None);
}

#[test]
fn readonly_stores_refuse_writes_without_running_hooks() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let mut conn = store.connection();
        assert_eq!(write(&mut conn, 5, 1, put("k", "v")), Ok(Outcome::Written));
        drop(conn);
        assert!(store.close());
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let options = StoreOptions::default().readonly(true).hooks(counting_hooks(&calls));
    let store = Store::open(dir.path(), options).unwrap();
    assert!(store.server_config().readonly);
    let mut conn = store.connection();
    assert_eq!(get(&mut conn, "k"), Some(b("v")));
    assert_eq!(write(&mut conn, 5, 2, put("k", "w")), Err(StoreError::ReadOnly));
    assert_eq!(write(&mut conn, 6, 1, WriteOp::Del { key: b("k") }), Err(StoreError::ReadOnly));
    let clear = WriteOp::Clear { range: KeyRange::all(), reverse: false, limit: None };
    assert_eq!(write(&mut conn, 6, 2, clear), Err(StoreError::ReadOnly));
    assert_eq!(write(&mut conn, 6, 3, WriteOp::Batch(vec![batch_put("a", "")])), Err(StoreError::ReadOnly));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // A replay of a write made before gets its original outcome.
    assert_eq!(write(&mut conn, 5, 1, put("k", "other")), Ok(Outcome::Written));
    assert_eq!(get(&mut conn, "k"), Some(b("v")));
    assert_eq!(scan(&mut conn, 1, KeyRange::all(), false), vec![(b("k"), b("v"))]);
    store.sync().unwrap();
}

#[test]
fn concurrent_writes_are_group_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let store = store.clone();
            thread::spawn(move || {
                let mut conn = store.connection();
                // Issue writes in windows of 50 without waiting for each, as a client with
                // requests in flight does.
                for window in 0..4u64 {
                    let (tx, rx) = mpsc::channel();
                    for i in 0..50u64 {
                        let n = window * 50 + i;
                        let key = format!("t{t}-{n:03}");
                        let request = WriteRequest { session: t, request: n + 1, op: put(&key, n.to_be_bytes()) };
                        let tx = tx.clone();
                        let queued = conn.execute(StoreRequest::Write(request), move |r| tx.send(r).unwrap());
                        assert_eq!(queued, Execution::Queued);
                    }
                    drop(tx);
                    let results: Vec<_> = rx.iter().collect();
                    assert_eq!(results.len(), 50);
                    assert!(results.iter().all(|r| *r == Ok(Outcome::Written)));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = store.stats().unwrap();
    assert_eq!(stats.entries, 1600);
    assert_eq!(stats.writes, 1600);
    assert!(stats.commits < stats.writes / 4, "{} commits for {} writes", stats.commits, stats.writes);
    let mut conn = store.connection();
    for t in 0..8 {
        for n in 0..200u64 {
            assert_eq!(get(&mut conn, format!("t{t}-{n:03}")), Some(b(n.to_be_bytes())));
        }
    }
}

#[test]
fn a_replayed_write_is_applied_once_and_gets_the_original_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let hooks = Hooks::new().preput(|key, _| if key == b"bad" { Err("no bad keys".into()) } else { Ok(()) });
    let store = Store::open(dir.path(), StoreOptions::default().hooks(hooks)).unwrap();
    let mut conn = store.connection();
    let s = 0xfeed;
    assert_eq!(write(&mut conn, s, 5, put("k", "first")), Ok(Outcome::Written));
    assert_eq!(write(&mut conn, s, 5, put("k", "second")), Ok(Outcome::Written));
    assert_eq!(get(&mut conn, "k"), Some(b("first")));

    // A replayed Clear does not remove keys written after the original.
    let clear = WriteOp::Clear { range: KeyRange::all().gte("c"), reverse: false, limit: None };
    assert_eq!(write(&mut conn, s, 6, clear.clone()), Ok(Outcome::Written));
    assert_eq!(get(&mut conn, "k"), None);
    assert_eq!(write(&mut conn, 7, 1, put("k", "later")), Ok(Outcome::Written));
    assert_eq!(write(&mut conn, s, 6, clear), Ok(Outcome::Written));
    assert_eq!(get(&mut conn, "k"), Some(b("later")));

    // A replay queued right behind its original, in the same group.
    let (tx, rx) = mpsc::channel();
    for value in ["one", "two"] {
        let tx = tx.clone();
        let request = WriteRequest { session: s, request: 8, op: put("g", value) };
        let _ = conn.execute(StoreRequest::Write(request), move |r| tx.send(r).unwrap());
    }
    assert_eq!(rx.recv().unwrap(), Ok(Outcome::Written));
    assert_eq!(rx.recv().unwrap(), Ok(Outcome::Written));
    assert_eq!(get(&mut conn, "g"), Some(b("one")));

    assert_eq!(write(&mut conn, s, 9, put("bad", "")), Err(StoreError::Rejected("no bad keys".into())));

    // After a restart, without the hook, the records still hold.
    drop(conn);
    assert!(store.close());
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let mut conn = store.connection();
    assert_eq!(write(&mut conn, s, 5, put("k", "third")), Ok(Outcome::Written));
    assert_eq!(get(&mut conn, "k"), Some(b("later")));
    assert_eq!(write(&mut conn, s, 9, put("bad", "")), Err(StoreError::Rejected("no bad keys".into())));
    assert_eq!(get(&mut conn, "bad"), None);
    // New requests of the session go through.
    assert_eq!(write(&mut conn, s, 10, put("bad", "now")), Ok(Outcome::Written));
    assert_eq!(get(&mut conn, "bad"), Some(b("now")));
}

#[test]
fn forgotten_outcomes_expire() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default().replay_window(2)).unwrap();
    let mut conn = store.connection();
    for request in 1..=4 {
        assert_eq!(write(&mut conn, 1, request, put("k", request.to_string())), Ok(Outcome::Written));
    }
    assert_eq!(write(&mut conn, 1, 1, put("k", "again")), Err(StoreError::ReplayExpired { request: 1 }));
    assert_eq!(write(&mut conn, 1, 2, put("k", "again")), Err(StoreError::ReplayExpired { request: 2 }));
    assert_eq!(write(&mut conn, 1, 4, put("k", "again")), Ok(Outcome::Written));
    assert_eq!(get(&mut conn, "k"), Some(b("4")));
}

#[test]
fn idle_sessions_are_forgotten_after_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default().session_retention(Duration::from_secs(1))).unwrap();
    let mut conn = store.connection();
    assert_eq!(write(&mut conn, 1, 1, put("k", "a")), Ok(Outcome::Written));
    assert_eq!(store.stats().unwrap().sessions, 1);
    thread::sleep(Duration::from_millis(2200));
    // Any write lets the writer sweep; sync waits for the sweep after that group.
    assert_eq!(write(&mut conn, 2, 1, put("other", "")), Ok(Outcome::Written));
    store.sync().unwrap();
    assert_eq!(store.stats().unwrap().sessions, 1);
    // The documented bound: a replay after the retention is applied again.
    assert_eq!(write(&mut conn, 1, 1, put("k", "b")), Ok(Outcome::Written));
    assert_eq!(get(&mut conn, "k"), Some(b("b")));
}
