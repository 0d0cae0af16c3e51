//! Conditional writes and increments against a real 3-member etcd cluster: conditions as
//! compares next to the session record's, failures recorded with the value read, replays
//! answered from the record (also by another server), and increments racing from several
//! servers counted exactly once.

mod common;

use std::thread;

use bytes::Bytes;
use common::{Conn, backend, put};
use multilevel_proto::{BatchOp, Condition, ConditionFailed, Outcome, StoreError, StoreRequest, WriteOp, WriteRequest};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn run(db: &mut Conn, session: u64, request: u64, op: WriteOp) -> Result<Outcome, StoreError> {
    db.run(StoreRequest::Write(WriteRequest { session, request, op }))
}

fn claim(key: &str, value: &str) -> WriteOp {
    WriteOp::Conditional {
        conditions: vec![Condition::absent(key)],
        ops: vec![BatchOp::Put { key: b(key), value: b(value) }],
    }
}

#[test]
fn conditions_increments_and_their_replays() {
    let Some(cluster) = common::cluster() else { return };
    let first = backend(&cluster, "conditions");
    let mut db = Conn::new(&first);
    for session in [0, 7] {
        // Session 0 keeps no record (a one-shot client), 7 does.
        let key = format!("name{session}");
        assert_eq!(run(&mut db, session, 1, claim(&key, "a")), Ok(Outcome::Written));
        let failed = ConditionFailed { index: 0, current: Some(b("a")) };
        assert_eq!(run(&mut db, session, 2, claim(&key, "b")), Ok(Outcome::ConditionFailed(failed)));
        let counter = format!("n{session}");
        let incr = |by| WriteOp::Increment { key: b(&counter), by };
        assert_eq!(run(&mut db, session, 3, incr(4)), Ok(Outcome::Counter(4)));
        assert_eq!(run(&mut db, session, 4, incr(-6)), Ok(Outcome::Counter(-2)));
        assert_eq!(db.get(&counter), Some(b("-2")));
        db.write(session, 5, put(&counter, "x")).unwrap();
        assert!(matches!(run(&mut db, session, 6, incr(1)), Err(StoreError::NotANumber(_))));
        assert_eq!(db.get(&counter), Some(b("x")));
    }
    // Equality on values, several conditions, the first failure reported.
    let both = WriteOp::Conditional {
        conditions: vec![Condition::equals("name7", "a"), Condition::absent("n7")],
        ops: vec![BatchOp::Del { key: b("name7") }],
    };
    let failed = ConditionFailed { index: 1, current: Some(b("x")) };
    assert_eq!(run(&mut db, 7, 7, both), Ok(Outcome::ConditionFailed(failed.clone())));

    // Another session changes everything; the replays of session 7 answer what they answered,
    // on this server and on another one.
    db.write(8, 1, WriteOp::Del { key: b("name7") }).unwrap();
    db.write(8, 2, WriteOp::Del { key: b("n7") }).unwrap();
    let second = backend(&cluster, "conditions");
    let mut other = Conn::new(&second);
    for db in [&mut db, &mut other] {
        let seen = ConditionFailed { index: 0, current: Some(b("a")) };
        assert_eq!(run(db, 7, 2, claim("name7", "b")), Ok(Outcome::ConditionFailed(seen)));
        assert_eq!(run(db, 7, 3, WriteOp::Increment { key: b("n7"), by: 4 }), Ok(Outcome::Counter(4)));
        assert!(matches!(run(db, 7, 6, WriteOp::Increment { key: b("n7"), by: 1 }), Err(StoreError::NotANumber(_))));
        let both = WriteOp::Conditional { conditions: vec![], ops: vec![] };
        assert_eq!(run(db, 7, 7, both), Ok(Outcome::ConditionFailed(failed.clone())));
        assert_eq!((db.get("name7"), db.get("n7")), (None, None), "replays applied nothing");
    }
}

#[test]
fn increments_racing_from_several_servers_count_exactly_once() {
    let Some(cluster) = common::cluster() else { return };
    let workers: Vec<_> = (0..3u64)
        .map(|session| {
            let backend = backend(&cluster, "race");
            thread::spawn(move || {
                let mut db = Conn::new(&backend);
                let mut values = Vec::new();
                for request in 1..=30 {
                    let op = WriteOp::Increment { key: b("shared"), by: 1 };
                    match run(&mut db, session + 1, request, op) {
                        Ok(Outcome::Counter(value)) => values.push(value),
                        other => panic!("increment answered {other:?}"),
                    }
                }
                values
            })
        })
        .collect();
    let mut values: Vec<i64> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    values.sort_unstable();
    assert_eq!(values, (1..=90).collect::<Vec<i64>>(), "each increment returned its own value once");
    let mut db = Conn::new(&backend(&cluster, "race"));
    assert_eq!(db.get("shared"), Some(b("90")));
}
