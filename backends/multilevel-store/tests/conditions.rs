//! Conditional writes and increments in the LMDB store: checked inside the writer's
//! transaction, a failed condition or a counter that is not a number leaves the other writes
//! of its group alone, and replays (also after a restart) answer the original outcome.

mod common;

use std::sync::mpsc;

use common::*;
use multilevel_proto::{Condition, ConditionFailed};
use multilevel_store::{BatchOp, Outcome, Store, StoreError, StoreOptions, StoreRequest, WriteOp, WriteRequest};

fn claim(key: &str, value: &str) -> WriteOp {
    WriteOp::Conditional {
        conditions: vec![Condition::absent(key)],
        ops: vec![BatchOp::Put { key: b(key), value: b(value) }],
    }
}

fn incr(key: &str, by: i64) -> WriteOp {
    WriteOp::Increment { key: b(key), by }
}

#[test]
fn a_failed_condition_does_not_abort_the_rest_of_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default().no_sync(true)).unwrap();
    let mut conn = store.connection();
    // Queued back to back, so the writer commits them as one group (or a few).
    let writes = [
        (1, claim("name", "first")),
        (2, claim("name", "second")),
        (3, incr("n", 2)),
        (4, put("text", "abc")),
        (5, incr("text", 1)),
        (6, incr("n", 3)),
        (7, put("after", "x")),
    ];
    let (tx, rx) = mpsc::channel();
    for (request, op) in writes.iter().cloned() {
        let tx = tx.clone();
        let write = StoreRequest::Write(WriteRequest { session: 9, request, op });
        let _ = conn.execute(write, move |result| tx.send((request, result)).unwrap());
    }
    let mut results: Vec<_> = (0..writes.len()).map(|_| rx.recv().unwrap()).collect();
    results.sort_by_key(|(request, _)| *request);
    let failed = ConditionFailed { index: 0, current: Some(b("first")) };
    assert_eq!(results[0].1, Ok(Outcome::Written));
    assert_eq!(results[1].1, Ok(Outcome::ConditionFailed(failed.clone())));
    assert_eq!(results[2].1, Ok(Outcome::Counter(2)));
    assert_eq!(results[3].1, Ok(Outcome::Written));
    assert!(matches!(results[4].1, Err(StoreError::NotANumber(_))), "{:?}", results[4]);
    assert_eq!(results[5].1, Ok(Outcome::Counter(5)));
    assert_eq!(results[6].1, Ok(Outcome::Written));
    assert_eq!(get(&mut conn, "name"), Some(b("first")));
    assert_eq!(get(&mut conn, "n"), Some(b("5")));
    assert_eq!(get(&mut conn, "text"), Some(b("abc")));
    assert_eq!(get(&mut conn, "after"), Some(b("x")));

    // Another session changes everything; replays still answer what they answered, and after
    // a restart too.
    assert_eq!(write(&mut conn, 10, 1, WriteOp::Del { key: b("name") }), Ok(Outcome::Written));
    assert_eq!(write(&mut conn, 10, 2, put("n", "100")), Ok(Outcome::Written));
    let check_replays = |conn: &mut multilevel_store::ConnectionStore, when: &str| {
        assert_eq!(write(conn, 9, 2, claim("name", "second")), Ok(Outcome::ConditionFailed(failed.clone())), "{when}");
        assert_eq!(write(conn, 9, 3, incr("n", 2)), Ok(Outcome::Counter(2)), "{when}");
        assert_eq!(write(conn, 9, 6, incr("n", 3)), Ok(Outcome::Counter(5)), "{when}");
        assert!(matches!(write(conn, 9, 5, incr("text", 1)), Err(StoreError::NotANumber(_))), "{when}");
        assert_eq!(get(conn, "name"), None, "{when}: the replay applied nothing");
        assert_eq!(get(conn, "n"), Some(b("100")), "{when}");
    };
    check_replays(&mut conn, "before the restart");
    drop(conn);
    assert!(store.close());
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let mut conn = store.connection();
    check_replays(&mut conn, "after the restart");
    // New writes of the session are evaluated against the current state.
    assert_eq!(write(&mut conn, 9, 8, incr("n", 1)), Ok(Outcome::Counter(101)));
    assert_eq!(write(&mut conn, 9, 9, claim("name", "third")), Ok(Outcome::Written));
}

#[test]
fn conditions_compare_whole_values_and_absence() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default().no_sync(true)).unwrap();
    let mut conn = store.connection();
    let mut w = Writer::new(1);
    w.put(&mut conn, "k", "value");
    w.put(&mut conn, "empty", "");
    let cas = |conditions: Vec<Condition>| WriteOp::Conditional {
        conditions,
        ops: vec![BatchOp::Put { key: b("done"), value: b("") }, BatchOp::Del { key: b("k") }],
    };
    let cases = [
        (vec![Condition::equals("k", "valu")], Some((0, Some("value")))),
        (vec![Condition::equals("k", "value2")], Some((0, Some("value")))),
        (vec![Condition::absent("empty")], Some((0, Some("")))),
        (vec![Condition::equals("missing", "")], Some((0, None))),
        (
            vec![Condition::absent("missing"), Condition::equals("empty", ""), Condition::absent("k")],
            Some((2, Some("value"))),
        ),
        (vec![Condition::absent("missing"), Condition::equals("empty", ""), Condition::equals("k", "value")], None),
    ];
    for (conditions, want) in cases {
        let got = w.write(&mut conn, cas(conditions.clone()));
        match want {
            Some((index, current)) => {
                let failed = ConditionFailed { index, current: current.map(b) };
                assert_eq!(got, Ok(Outcome::ConditionFailed(failed)), "{conditions:?}");
                assert_eq!(get(&mut conn, "done"), None);
            }
            None => {
                assert_eq!(got, Ok(Outcome::Written), "{conditions:?}");
                assert_eq!((get(&mut conn, "done"), get(&mut conn, "k")), (Some(b("")), None));
            }
        }
    }
}
