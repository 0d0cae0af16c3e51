//! The LMDB change log behind watches: the changes each kind of write records, positions that
//! survive a restart, retention and `Compacted`, waiting reads woken by a commit or answered by
//! `close_watch`, and reads split by their byte budget.

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use multilevel_proto::Condition;
use multilevel_proto::change::{Change, ChangeEvent, ChangeRead, Cursor, WatchStart};
use multilevel_store::{
    BatchOp, ChangeRetention, Completions, ConnectionStore, Execution, Executor, KeyRange, OpId, Outcome, Store,
    StoreError, StoreOptions, StoreRequest, WriteOp,
};

const WAIT: Duration = Duration::from_secs(60);

fn open(dir: &std::path::Path, retention: ChangeRetention) -> Store {
    Store::open(dir, StoreOptions::default().no_sync(true).change_retention(retention)).unwrap()
}

fn change_read(from: Cursor, max_bytes: u64) -> ChangeRead {
    ChangeRead { watch: 1, from, range: KeyRange::all(), values: true, max_bytes }
}

/// Reads the changes from `from`, which must be answered inline.
fn read_changes(conn: &mut ConnectionStore, read: ChangeRead) -> Result<(Vec<ChangeEvent>, Cursor), StoreError> {
    match conn.execute(StoreRequest::ReadChanges(read), |_| panic!("an inline read must not complete later")) {
        Execution::Ready(Ok(Outcome::Changes { events, next })) => Ok((events, next)),
        Execution::Ready(Ok(other)) => panic!("not changes: {other:?}"),
        Execution::Ready(Err(error)) => Err(error),
        Execution::Queued => panic!("the read waited"),
    }
}

/// The changes of the one commit at `position`, with every event's place checked.
fn commit(conn: &mut ConnectionStore, position: u64) -> Vec<Change> {
    let (events, next) = read_changes(conn, change_read(Cursor::at(position), u64::MAX)).unwrap();
    let count = events.iter().filter(|e| e.position == position).count();
    let commit: Vec<_> = events.iter().take(count).cloned().collect();
    for (index, event) in commit.iter().enumerate() {
        assert_eq!((event.position, event.index as usize), (position, index));
        assert_eq!(event.commit_end, index + 1 == count, "commit_end only on the commit's last event");
    }
    assert!(next.position > position);
    commit.into_iter().map(|e| e.change).collect()
}

fn head(conn: &mut ConnectionStore) -> u64 {
    match read(conn, StoreRequest::OpenWatch { watch: 9, start: WatchStart::Now }) {
        Ok(Outcome::WatchOpened(cursor)) => {
            assert_eq!(cursor.index, 0);
            cursor.position - 1
        }
        other => panic!("not opened: {other:?}"),
    }
}

fn stat(store: &Store, name: &str) -> u64 {
    store.stats().unwrap().pairs().into_iter().find(|(n, _)| n == name).map(|(_, v)| v).unwrap()
}

fn p(key: &str, value: &str) -> Change {
    Change::Put { key: b(key), value: b(value) }
}

fn d(key: &str) -> Change {
    Change::Del { key: b(key) }
}

#[test]
fn each_write_records_exactly_its_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), ChangeRetention::default());
    let mut conn = store.connection();
    assert_eq!(head(&mut conn), 0);
    let mut w = Writer::new(3);

    w.put(&mut conn, "a", "1"); // 1
    assert_eq!(commit(&mut conn, 1), vec![p("a", "1")]);
    w.del(&mut conn, "a"); // 2
    assert_eq!(commit(&mut conn, 2), vec![d("a")]);
    w.del(&mut conn, "a"); // absent: no commit
    assert_eq!(head(&mut conn), 2);

    let batch = WriteOp::Batch(vec![
        batch_put("b", "1"),
        BatchOp::Del { key: b("missing") },
        batch_put("c", "2"),
        BatchOp::Del { key: b("b") },
        batch_put("d", "3"),
    ]);
    assert_eq!(w.write(&mut conn, batch), Ok(Outcome::Written)); // 3
    assert_eq!(commit(&mut conn, 3), vec![p("b", "1"), p("c", "2"), d("b"), p("d", "3")]);

    w.put(&mut conn, "e", "4"); // 4
    let clear = WriteOp::Clear { range: KeyRange::all().gte("c"), reverse: true, limit: Some(2) };
    assert_eq!(w.write(&mut conn, clear), Ok(Outcome::Written)); // 5: the top two, highest first
    assert_eq!(commit(&mut conn, 5), vec![d("e"), d("d")]);
    let clear = WriteOp::Clear { range: KeyRange::all(), reverse: false, limit: None };
    assert_eq!(w.write(&mut conn, clear.clone()), Ok(Outcome::Written)); // 6
    assert_eq!(commit(&mut conn, 6), vec![d("c")]);
    assert_eq!(w.write(&mut conn, clear), Ok(Outcome::Written)); // nothing left: no commit
    assert_eq!(head(&mut conn), 6);

    assert_eq!(w.write(&mut conn, WriteOp::Increment { key: b("n"), by: 5 }), Ok(Outcome::Counter(5))); // 7
    assert_eq!(commit(&mut conn, 7), vec![p("n", "5")]);
    assert_eq!(w.write(&mut conn, WriteOp::Increment { key: b("n"), by: -7 }), Ok(Outcome::Counter(-2))); // 8
    assert_eq!(commit(&mut conn, 8), vec![p("n", "-2")]);

    let failing = WriteOp::Conditional { conditions: vec![Condition::absent("n")], ops: vec![batch_put("n", "never")] };
    assert!(matches!(w.write(&mut conn, failing), Ok(Outcome::ConditionFailed(_))));
    assert_eq!(head(&mut conn), 8, "a failed condition makes no commit");
    let holding =
        WriteOp::Conditional { conditions: vec![Condition::equals("n", "-2")], ops: vec![batch_put("m", "ok")] };
    assert_eq!(w.write(&mut conn, holding.clone()), Ok(Outcome::Written)); // 9
    let holding_request = w.next;
    assert_eq!(commit(&mut conn, 9), vec![p("m", "ok")]);
    let not_a_number = w.write(&mut conn, WriteOp::Increment { key: b("m"), by: 1 });
    assert!(matches!(not_a_number, Err(StoreError::NotANumber(_))), "{not_a_number:?}");
    assert_eq!(head(&mut conn), 9, "a refused increment makes no commit");

    // A replay is answered from the session record and makes no commit.
    assert_eq!(write(&mut conn, 3, holding_request, holding), Ok(Outcome::Written));
    assert_eq!(head(&mut conn), 9);
    assert_eq!(write(&mut conn, 4, 1, put("r", "x")), Ok(Outcome::Written)); // 10
    assert_eq!(write(&mut conn, 4, 1, put("r", "x")), Ok(Outcome::Written));
    assert_eq!(head(&mut conn), 10);
    assert_eq!(commit(&mut conn, 10), vec![p("r", "x")]);

    // Every commit from 1 in one read, in order, with nothing else.
    let (events, next) = read_changes(&mut conn, change_read(Cursor::at(1), u64::MAX)).unwrap();
    let positions: Vec<u64> = events.iter().map(|e| e.position).collect();
    assert_eq!(positions, vec![1, 2, 3, 3, 3, 3, 4, 5, 5, 6, 7, 8, 9, 10]);
    assert_eq!(next, Cursor::at(11));
    assert_eq!(stat(&store, "change_log_head"), 10);
    assert_eq!(stat(&store, "change_log_oldest"), 1);
}

#[test]
fn a_group_commit_gives_each_write_its_own_position() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), ChangeRetention::default());
    let mut conn = store.connection();
    let (tx, rx) = mpsc::channel();
    for request in 1..=50u64 {
        let tx = tx.clone();
        let op = put(format!("k{request:02}"), "v");
        let write = StoreRequest::Write(multilevel_store::WriteRequest { session: 5, request, op });
        let _ = conn.execute(write, move |result| tx.send(result).unwrap());
    }
    for _ in 0..50 {
        assert_eq!(rx.recv_timeout(WAIT).unwrap(), Ok(Outcome::Written));
    }
    let (events, next) = read_changes(&mut conn, change_read(Cursor::at(1), u64::MAX)).unwrap();
    assert_eq!(next, Cursor::at(51));
    for (i, event) in events.iter().enumerate() {
        let n = i as u64 + 1;
        assert_eq!((event.position, event.index, event.commit_end), (n, 0, true));
        assert_eq!(event.change, p(&format!("k{n:02}"), "v"), "writes commit in the order queued");
    }
    assert_eq!(events.len(), 50);
}

#[test]
fn positions_continue_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), ChangeRetention::default());
    let mut conn = store.connection();
    let mut w = Writer::new(1);
    w.put(&mut conn, "a", "1");
    w.put(&mut conn, "b", "2");
    drop(conn);
    assert!(store.close());

    let store = open(dir.path(), ChangeRetention::default());
    let mut conn = store.connection();
    assert_eq!(head(&mut conn), 2);
    let mut w = Writer::new(2);
    w.put(&mut conn, "c", "3");
    assert_eq!(head(&mut conn), 3);
    assert_eq!(commit(&mut conn, 1), vec![p("a", "1")]);
    assert_eq!(commit(&mut conn, 3), vec![p("c", "3")]);
    drop(conn);
    assert!(store.close());

    // A read-only open sees the same log.
    let store = Store::open(dir.path(), StoreOptions::default().readonly(true)).unwrap();
    let mut conn = store.connection();
    assert_eq!(head(&mut conn), 3);
    assert_eq!(commit(&mut conn, 2), vec![p("b", "2")]);
}

#[test]
fn retention_by_count_trims_and_reads_before_it_are_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let retention = ChangeRetention::default().max_commits(3);
    let store = open(dir.path(), retention);
    let mut conn = store.connection();
    let mut w = Writer::new(1);
    for i in 1..=5 {
        w.put(&mut conn, format!("k{i}"), "v");
    }
    let check = |conn: &mut ConnectionStore| {
        // Kept: 3, 4, 5.
        assert_eq!(read_changes(conn, change_read(Cursor::at(2), 1 << 20)), Err(StoreError::Compacted { oldest: 3 }));
        assert_eq!(
            read_changes(conn, change_read(Cursor { position: 1, index: 4 }, 1 << 20)),
            Err(StoreError::Compacted { oldest: 3 })
        );
        let mut open = |start| read(conn, StoreRequest::OpenWatch { watch: 2, start });
        assert_eq!(open(WatchStart::after(1)), Err(StoreError::Compacted { oldest: 3 }));
        assert_eq!(open(WatchStart::after(2)), Ok(Outcome::WatchOpened(Cursor::at(3))));
        let (events, next) = read_changes(conn, change_read(Cursor::at(3), 1 << 20)).unwrap();
        assert_eq!(events.iter().map(|e| e.position).collect::<Vec<_>>(), vec![3, 4, 5]);
        assert_eq!(events[0].change, p("k3", "v"));
        assert_eq!(next, Cursor::at(6));
    };
    check(&mut conn);
    assert_eq!(stat(&store, "change_log_oldest"), 3);
    drop(conn);
    assert!(store.close());

    let store = open(dir.path(), retention);
    let mut conn = store.connection();
    check(&mut conn);
    assert_eq!((stat(&store, "change_log_head"), stat(&store, "change_log_oldest")), (5, 3));
    // One more commit moves the window by one.
    Writer::new(2).put(&mut conn, "k6", "v");
    assert_eq!(read_changes(&mut conn, change_read(Cursor::at(3), 1 << 20)), Err(StoreError::Compacted { oldest: 4 }));
    assert_eq!(read_changes(&mut conn, change_read(Cursor::at(4), 1 << 20)).unwrap().0.len(), 3);
}

#[test]
fn retention_by_bytes_keeps_the_newest_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), ChangeRetention::default().max_bytes(300));
    let mut conn = store.connection();
    let mut w = Writer::new(1);
    for i in 1..=4 {
        w.put(&mut conn, format!("k{i}"), vec![b'x'; 100]);
    }
    // Each commit is a little over 100 bytes: two fit in 300.
    assert_eq!(stat(&store, "change_log_oldest"), 3);
    assert!(stat(&store, "change_log_bytes") <= 300);
    w.put(&mut conn, "big", vec![b'y'; 1000]);
    assert_eq!(stat(&store, "change_log_oldest"), 5, "only the newest, larger than the limit, is kept");
    assert_eq!(commit(&mut conn, 5), vec![Change::Put { key: b("big"), value: b(vec![b'y'; 1000]) }]);
}

#[test]
fn a_read_at_head_waits_and_is_woken_by_a_commit_of_another_connection() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), ChangeRetention::default());
    let mut watcher = store.connection();
    let mut other = store.connection();
    Writer::new(1).put(&mut other, "before", "0");

    let Ok(Outcome::WatchOpened(from)) =
        read(&mut watcher, StoreRequest::OpenWatch { watch: 1, start: WatchStart::Now })
    else {
        panic!("not opened");
    };
    assert_eq!(from, Cursor::at(2));
    let (tx, rx) = mpsc::channel();
    let request = StoreRequest::ReadChanges(change_read(from, 1 << 20));
    assert_eq!(watcher.execute(request, move |result| tx.send(result).unwrap()), Execution::Queued);
    assert_eq!(stat(&store, "waiting_watch_reads"), 1);
    assert!(rx.recv_timeout(Duration::from_millis(100)).is_err(), "nothing to deliver yet");

    Writer::new(2).put(&mut other, "k", "v");
    let woken = rx.recv_timeout(WAIT).expect("the commit did not wake the read");
    assert_eq!(woken, Ok(Outcome::Changes { events: vec![], next: from }), "a wake-up: read again");
    assert_eq!(stat(&store, "waiting_watch_reads"), 0);
    let (events, next) = read_changes(&mut watcher, change_read(from, 1 << 20)).unwrap();
    assert_eq!(events, vec![ChangeEvent { position: 2, index: 0, commit_end: true, change: p("k", "v") }]);
    assert_eq!(next, Cursor::at(3));
}

/// Completions that record what they are given.
#[derive(Default)]
struct Recorded(Mutex<Vec<(OpId, Result<Outcome, StoreError>)>>);

impl Completions for Recorded {
    fn complete(&self, op: OpId, result: Result<Outcome, StoreError>) {
        self.0.lock().unwrap().push((op, result));
    }
}

#[test]
fn close_watch_answers_a_waiting_read_and_a_dropped_connection_forgets_its_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), ChangeRetention::default());
    let recorded = Arc::new(Recorded::default());
    let completions: Arc<dyn Completions> = recorded.clone();
    let mut conn = store.connection();
    let mut read_of = |watch: u64, op: u64| {
        let read = ChangeRead { watch, ..change_read(Cursor::at(1), 1 << 20) };
        Executor::execute(&mut conn, OpId(op), StoreRequest::ReadChanges(read), &completions)
    };
    assert_eq!(read_of(1, 10), Execution::Queued);
    assert_eq!(read_of(2, 11), Execution::Queued);
    Executor::close_watch(&mut conn, 7); // unknown: ignored
    assert!(recorded.0.lock().unwrap().is_empty());
    Executor::close_watch(&mut conn, 1);
    let expected = Ok(Outcome::Changes { events: vec![], next: Cursor::at(1) });
    assert_eq!(*recorded.0.lock().unwrap(), vec![(OpId(10), expected.clone())]);
    assert_eq!(stat(&store, "waiting_watch_reads"), 1);

    // The connection goes away with watch 2 still waiting: its read is dropped, not answered.
    drop(conn);
    assert_eq!(stat(&store, "waiting_watch_reads"), 0);
    Writer::new(1).put(&mut store.connection(), "k", "v");
    assert_eq!(recorded.0.lock().unwrap().len(), 1);
    assert_eq!(Arc::strong_count(&recorded), 2, "the dropped read released its completions");
}

#[test]
fn a_small_budget_splits_a_large_clear_across_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), ChangeRetention::default());
    let mut conn = store.connection();
    let mut w = Writer::new(1);
    let keys: Vec<String> = (0..10).map(|i| format!("key{i}")).collect();
    let batch = WriteOp::Batch(keys.iter().map(|k| batch_put(k, "v")).collect());
    assert_eq!(w.write(&mut conn, batch), Ok(Outcome::Written)); // 1
    let clear = WriteOp::Clear { range: KeyRange::all(), reverse: false, limit: None };
    assert_eq!(w.write(&mut conn, clear), Ok(Outcome::Written)); // 2
    w.put(&mut conn, "after", "x"); // 3

    // Watch only part of the clear, and resume from each `next` with a budget of about two events.
    let range = KeyRange::all().gte("key2").lt("key9");
    let mut from = Cursor::at(2);
    let mut got = Vec::new();
    let mut reads = 0;
    while from.position < 4 {
        let read = ChangeRead { watch: 1, from, range: range.clone(), values: false, max_bytes: 1 };
        let (events, next) = read_changes(&mut conn, read).unwrap();
        assert!(next > from, "every read moves on");
        if let Some(last) = events.last() {
            assert!(next >= last.next_cursor());
        }
        got.extend(events);
        from = next;
        reads += 1;
    }
    assert_eq!(reads, 8, "one event per read with a 1-byte budget, and one read past commit 3");
    let expected: Vec<ChangeEvent> = (2..9)
        .map(|i| ChangeEvent {
            position: 2,
            index: i,
            commit_end: i == 8,
            change: Change::Del { key: b(format!("key{i}")) },
        })
        .collect();
    assert_eq!(got, expected);
    assert_eq!(from, Cursor::at(4), "commit 3 was looked at and skipped: outside the range");

    // With a budget of two events' cost, the same commit takes four reads.
    let cost = expected[0].cost();
    let read = |from| ChangeRead { watch: 1, from, range: range.clone(), values: false, max_bytes: 2 * cost };
    let (events, next) = read_changes(&mut conn, read(Cursor::at(2))).unwrap();
    assert_eq!(events, expected[..2].to_vec());
    assert_eq!(next, Cursor { position: 2, index: 4 });
    let (events, next) = read_changes(&mut conn, read(Cursor { position: 2, index: 8 })).unwrap();
    assert_eq!(events, expected[6..].to_vec());
    assert!(events[0].commit_end);
    assert_eq!(next, Cursor::at(4), "commit 3 has nothing in the range: looked at and passed");
}

#[test]
fn a_read_only_open_of_a_database_without_a_change_log_reads_it_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    {
        // A database as stores made it before change logs: "data" and "sessions" only.
        let mut options = heed::EnvOpenOptions::new().read_txn_without_tls();
        options.map_size(1 << 20).max_dbs(4);
        // SAFETY: a fresh directory that nothing else opens while this environment lives.
        #[allow(unsafe_code)]
        let env = unsafe { options.open(dir.path()) }.unwrap();
        use heed::types::Bytes as Raw;
        let wtxn = env.write_txn().unwrap();
        let created = env
            .create_databases_and_commit(wtxn, |opener, wtxn| -> heed::Result<_> {
                let data = opener.create_database::<Raw, Raw>(wtxn, Some("data"))?;
                opener.create_database::<Raw, Raw>(wtxn, Some("sessions"))?;
                Ok(heed::CommitOrAbort::<_, ()>::Commit(data))
            })
            .unwrap();
        let data = created.commit().unwrap();
        let mut wtxn = env.write_txn().unwrap();
        data.put(&mut wtxn, b"\0old", b"value").unwrap();
        wtxn.commit().unwrap();
        env.prepare_for_closing().wait();
    }
    let store = Store::open(dir.path(), StoreOptions::default().readonly(true)).unwrap();
    let mut conn = store.connection();
    assert_eq!(get(&mut conn, "old"), Some(b("value")));
    assert_eq!(head(&mut conn), 0);
    assert_eq!((stat(&store, "change_log_head"), stat(&store, "change_log_oldest")), (0, 1));
    assert_eq!(read_changes(&mut conn, change_read(Cursor::at(0), 1 << 20)), Err(StoreError::Compacted { oldest: 1 }));
    let request = StoreRequest::ReadChanges(change_read(Cursor::at(1), 1 << 20));
    assert_eq!(conn.execute(request, |_| {}), Execution::Queued, "nothing to read yet: it waits");
    conn.close_watch(1);
    assert_eq!(stat(&store, "waiting_watch_reads"), 0);
}

#[test]
fn retention_by_age_drops_old_commits_when_a_new_one_is_appended() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), ChangeRetention::default().max_age(Some(Duration::from_millis(200))));
    let mut conn = store.connection();
    let mut w = Writer::new(1);
    w.put(&mut conn, "a", "1");
    w.put(&mut conn, "b", "2");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(stat(&store, "change_log_oldest"), 1, "nothing is trimmed without a new commit");
    w.put(&mut conn, "c", "3");
    assert_eq!(read_changes(&mut conn, change_read(Cursor::at(2), 1 << 20)), Err(StoreError::Compacted { oldest: 3 }));
    assert_eq!(commit(&mut conn, 3), vec![p("c", "3")]);
}

#[test]
fn a_read_looks_at_a_bounded_number_of_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), ChangeRetention::default());
    let mut conn = store.connection();
    let total = 10_005u64;
    let (tx, rx) = mpsc::channel();
    for request in 1..=total {
        let tx = tx.clone();
        let write = StoreRequest::Write(multilevel_store::WriteRequest { session: 1, request, op: put("noise", "v") });
        let _ = conn.execute(write, move |result| tx.send(result).unwrap());
    }
    for _ in 0..total {
        assert_eq!(rx.recv_timeout(WAIT).unwrap(), Ok(Outcome::Written));
    }
    // Nothing in the range: the first read stops after 10 000 commits, the next reaches the end.
    let read = |from| ChangeRead { watch: 1, from, range: KeyRange::all().gte("x"), values: true, max_bytes: 1 << 20 };
    let (events, next) = read_changes(&mut conn, read(Cursor::at(1))).unwrap();
    assert!(events.is_empty());
    assert_eq!(next, Cursor::at(10_001));
    let (events, next) = read_changes(&mut conn, read(next)).unwrap();
    assert!(events.is_empty());
    assert_eq!(next, Cursor::at(total + 1));
}
