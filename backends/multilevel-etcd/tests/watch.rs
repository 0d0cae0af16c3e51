//! Watches on a real etcd cluster, driven through the backend's `Executor` as a server would:
//! the events each write makes, where a watch starts, waiting reads, closing, compaction,
//! reads split by the byte budget, and a watch across the loss of the leader.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Conn, backend, backend_with, bput, put};
use multilevel_etcd::testing::EtcdCluster;
use multilevel_etcd::{Compaction, EtcdOptions};
use multilevel_proto::backend::{Backend, Executor};
use multilevel_proto::change::{Change, ChangeEvent, ChangeRead, Cursor, WatchStart};
use multilevel_proto::{KeyRange, Outcome, StoreError, StoreRequest, WriteOp};

/// The cluster's current revision (the backend's `revision` stat).
fn revision(db: &mut Conn) -> u64 {
    match db.run(StoreRequest::Stats) {
        Ok(Outcome::Stats(stats)) => stats.iter().find(|(name, _)| name == "revision").map(|(_, n)| *n).unwrap(),
        other => panic!("stats: {other:?}"),
    }
}

fn open(db: &mut Conn, watch: u64, start: WatchStart) -> Result<Cursor, StoreError> {
    match db.run(StoreRequest::OpenWatch { watch, start })? {
        Outcome::WatchOpened(cursor) => Ok(cursor),
        other => panic!("not an open: {other:?}"),
    }
}

fn request(watch: u64, from: Cursor, range: &KeyRange, values: bool, max_bytes: u64) -> StoreRequest {
    StoreRequest::ReadChanges(ChangeRead { watch, from, range: range.clone(), values, max_bytes })
}

fn changes(result: Result<Outcome, StoreError>) -> Result<(Vec<ChangeEvent>, Cursor), StoreError> {
    match result? {
        Outcome::Changes { events, next } => Ok((events, next)),
        other => panic!("not changes: {other:?}"),
    }
}

/// One read of every key's changes, with values.
fn read(db: &mut Conn, watch: u64, from: Cursor, max_bytes: u64) -> Result<(Vec<ChangeEvent>, Cursor), StoreError> {
    changes(db.run(request(watch, from, &KeyRange::all(), true, max_bytes)))
}

/// Reads until the feed is past `position`; returns the events and where it stopped.
fn read_through(
    db: &mut Conn,
    watch: u64,
    mut from: Cursor,
    range: &KeyRange,
    values: bool,
    position: u64,
) -> (Vec<ChangeEvent>, Cursor) {
    let mut out = Vec::new();
    while from.position <= position {
        let (events, next) = changes(db.run(request(watch, from, range, values, 1 << 20))).expect("a read");
        assert!(next > from, "a read moves on: {from:?} -> {next:?}");
        if let Some(last) = events.last() {
            assert!(last.next_cursor() <= next);
        }
        out.extend(events);
        from = next;
    }
    (out, from)
}

fn ev(position: u64, index: u32, commit_end: bool, change: Change) -> ChangeEvent {
    ChangeEvent { position, index, commit_end, change }
}

fn p(key: &str, value: &[u8]) -> Change {
    Change::Put { key: Bytes::copy_from_slice(key.as_bytes()), value: Bytes::copy_from_slice(value) }
}

fn d(key: &str) -> Change {
    Change::Del { key: Bytes::copy_from_slice(key.as_bytes()) }
}

fn del(key: &str) -> WriteOp {
    WriteOp::Del { key: Bytes::copy_from_slice(key.as_bytes()) }
}

fn clear(range: KeyRange, limit: Option<u64>) -> WriteOp {
    WriteOp::Clear { range, reverse: false, limit }
}

#[test]
fn every_write_makes_its_events() {
    let Some(cluster) = common::cluster() else { return };
    let backend = backend(&cluster, "events");
    let mut db = Conn::new(&backend);
    let mut watcher = Conn::new(&backend);
    db.write(1, 1, put("before", "x")).unwrap();
    let start = open(&mut watcher, 1, WatchStart::Now).unwrap();
    assert_eq!(start, Cursor::after(revision(&mut db)));

    db.write(1, 2, put("a", "1")).unwrap();
    let r1 = revision(&mut db);
    db.write(
        1,
        3,
        WriteOp::Batch(vec![bput("b", "2"), bput("c", "3"), multilevel_proto::BatchOp::Del { key: "a".into() }]),
    )
    .unwrap();
    let r2 = revision(&mut db);
    db.write(1, 4, del("absent")).unwrap(); // changes nothing: no event
    db.write(1, 5, put("d", "4")).unwrap();
    let r4 = revision(&mut db);
    db.write(1, 6, clear(KeyRange::all().gte("c").lt("e"), None)).unwrap();
    let r5 = revision(&mut db);
    assert_eq!(
        db.run(StoreRequest::Write(multilevel_proto::WriteRequest {
            session: 1,
            request: 7,
            op: WriteOp::Increment { key: "n".into(), by: 5 },
        })),
        Ok(Outcome::Counter(5))
    );
    let r6 = revision(&mut db);
    db.write(1, 8, clear(KeyRange::all(), Some(1))).unwrap(); // removes "b", the first key
    let r7 = revision(&mut db);
    // etcd refuses a key twice in one transaction: a batch keeps the last operation per key.
    db.write(1, 9, WriteOp::Batch(vec![bput("e", "1"), bput("e", "2")])).unwrap();
    let r8 = revision(&mut db);
    assert!(r1 < r2 && r2 < r4 && r4 < r5 && r5 < r6 && r6 < r7 && r7 < r8);

    let counter = multilevel_proto::condition::encode_counter(5);
    let expected = vec![
        ev(r1, 0, true, p("a", b"1")),
        ev(r2, 0, false, p("b", b"2")),
        ev(r2, 1, false, p("c", b"3")),
        ev(r2, 2, true, d("a")),
        ev(r4, 0, true, p("d", b"4")),
        ev(r5, 0, false, d("c")),
        ev(r5, 1, true, d("d")),
        ev(r6, 0, true, p("n", &counter)),
        ev(r7, 0, true, d("b")),
        ev(r8, 0, true, p("e", b"2")),
    ];
    let (events, next) = read_through(&mut watcher, 1, start, &KeyRange::all(), true, r8);
    assert_eq!(events, expected);
    assert_eq!(next, Cursor::after(r8));

    // Keys only: the same events, values empty.
    let (events, _) = read_through(&mut watcher, 2, start, &KeyRange::all(), false, r8);
    let keys_only: Vec<ChangeEvent> =
        expected.iter().cloned().map(|e| ChangeEvent { change: e.change.without_value(), ..e }).collect();
    assert_eq!(events, keys_only);

    // Part of the keys: indices count the events in the range.
    let range = KeyRange::all().gte("b").lt("d");
    let (events, _) = read_through(&mut watcher, 3, start, &range, true, r7);
    assert_eq!(
        events,
        vec![
            ev(r2, 0, false, p("b", b"2")),
            ev(r2, 1, true, p("c", b"3")),
            ev(r5, 0, true, d("c")),
            ev(r7, 0, true, d("b")),
        ]
    );
}

#[test]
fn now_sees_later_writes_and_a_position_replays_history() {
    let Some(cluster) = common::cluster() else { return };
    let backend = backend(&cluster, "history");
    let mut db = Conn::new(&backend);
    db.write(1, 1, put("x1", "1")).unwrap();
    let r1 = revision(&mut db);
    db.write(1, 2, put("x2", "2")).unwrap();

    let now = open(&mut db, 1, WatchStart::Now).unwrap();
    db.write(1, 3, put("x3", "3")).unwrap();
    let r3 = revision(&mut db);
    let (events, next) = read(&mut db, 1, now, 1 << 20).unwrap();
    assert_eq!(events, vec![ev(r3, 0, true, p("x3", b"3"))]);
    assert_eq!(next, Cursor::after(r3));

    let from = open(&mut db, 2, WatchStart::At(Cursor::at(r1))).unwrap();
    assert_eq!(from, Cursor::at(r1));
    let (events, _) = read_through(&mut db, 2, from, &KeyRange::all(), true, r3);
    let keys: Vec<&[u8]> = events.iter().map(|e| &e.change.key()[..]).collect();
    assert_eq!(keys, vec![&b"x1"[..], b"x2", b"x3"]);
    assert_eq!(events[0], ev(r1, 0, true, p("x1", b"1")));
    assert!(events.iter().all(|e| e.commit_end && e.index == 0));
}

#[test]
fn a_waiting_read_is_answered_by_a_write_or_by_closing() {
    let Some(cluster) = common::cluster() else { return };
    // Waits longer than one etcd request may take: the stream is not a request.
    let options = EtcdOptions {
        namespace: b"waiting".to_vec(),
        request_timeout: Duration::from_secs(2),
        ..EtcdOptions::default()
    };
    let backend = backend_with(&cluster, options);
    let mut watcher = Conn::new(&backend);
    let mut db = Conn::new(&backend);
    let start = open(&mut watcher, 1, WatchStart::Now).unwrap();
    let op = watcher.send(request(1, start, &KeyRange::all(), true, 1 << 20)).expect("queued");
    assert!(watcher.answer_within(Duration::from_secs(3)).is_none(), "nothing to read yet");
    db.write(1, 1, put("k", "v")).unwrap();
    let r = revision(&mut db);
    let (answered, result) = watcher.answer_within(Duration::from_secs(10)).expect("answered by the write");
    assert_eq!(answered, op);
    let (events, next) = changes(result).unwrap();
    assert_eq!(events, vec![ev(r, 0, true, p("k", b"v"))]);
    assert_eq!(next, Cursor::after(r));

    // Waiting again, then closed: answered at once, empty, where it was.
    let op = watcher.send(request(1, next, &KeyRange::all(), true, 1 << 20)).expect("queued");
    assert!(watcher.answer_within(Duration::from_millis(500)).is_none());
    watcher.conn.close_watch(1);
    let (answered, result) = watcher.answer_within(Duration::from_secs(2)).expect("answered by the close");
    assert_eq!(answered, op);
    assert_eq!(result, Ok(Outcome::Changes { events: vec![], next }));

    // A write after the close is not delivered to it; a new watch from there sees it.
    db.write(1, 2, put("k", "w")).unwrap();
    let r2 = revision(&mut db);
    assert!(watcher.answer_within(Duration::from_millis(300)).is_none());
    assert_eq!(open(&mut watcher, 2, WatchStart::At(next)).unwrap(), next);
    let (events, _) = read(&mut watcher, 2, next, 1 << 20).unwrap();
    assert_eq!(events, vec![ev(r2, 0, true, p("k", b"w"))]);

    // Dropping the connection answers a read still waiting.
    let op = watcher.send(request(2, Cursor::after(r2), &KeyRange::all(), true, 1 << 20)).expect("queued");
    assert!(watcher.answer_within(Duration::from_millis(300)).is_none());
    drop(std::mem::replace(&mut watcher.conn, backend.connection()));
    let (answered, result) = watcher.answer_within(Duration::from_secs(2)).expect("answered by the drop");
    assert_eq!(answered, op);
    assert_eq!(result, Ok(Outcome::Changes { events: vec![], next: Cursor::after(r2) }));
}

/// Compacts the cluster at `revision` with a client of its own.
fn compact(endpoints: Vec<String>, revision: u64) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let mut client = etcd_client::Client::connect(endpoints, None).await.unwrap();
        let options = etcd_client::CompactionOptions::new().with_physical();
        client.compact(revision as i64, Some(options)).await.unwrap();
    });
}

#[test]
fn history_before_the_compaction_is_refused_with_the_oldest_position() {
    let Some(cluster) = common::cluster() else { return };
    let backend = backend(&cluster, "compacted");
    let mut db = Conn::new(&backend);
    db.write(1, 1, put("k1", "1")).unwrap();
    let r1 = revision(&mut db);
    db.write(1, 2, del("k1")).unwrap();
    let r2 = revision(&mut db);
    db.write(1, 3, put("k2", "2")).unwrap();
    let r3 = revision(&mut db);
    // A watch reading from r1 before the compaction.
    assert_eq!(open(&mut db, 9, WatchStart::At(Cursor::at(r1))), Ok(Cursor::at(r1)));
    let (events, _) = read(&mut db, 9, Cursor::at(r1), 1).unwrap();
    assert_eq!(events, vec![ev(r1, 0, true, p("k1", b"1"))]);

    // etcd keeps the state at r2 but not r2's delete event: the feed starts at r2 + 1.
    compact(cluster.endpoints(), r2);
    let oldest = r2 + 1;
    for position in [1, r1, r2] {
        let opened = open(&mut db, 1, WatchStart::At(Cursor::at(position)));
        assert_eq!(opened, Err(StoreError::Compacted { oldest }), "open at {position}");
        let read = read(&mut db, 2, Cursor::at(position), 1 << 20);
        assert_eq!(read, Err(StoreError::Compacted { oldest }), "read at {position}");
    }
    // The watch that was reading goes on: its stream had the history before the compaction.
    let (events, _) = read(&mut db, 9, Cursor::after(r1), 1 << 20).unwrap();
    assert_eq!(events, vec![ev(r2, 0, true, d("k1")), ev(r3, 0, true, p("k2", b"2"))]);
    assert_eq!(open(&mut db, 3, WatchStart::At(Cursor::at(oldest))), Ok(Cursor::at(oldest)));
    let (events, next) = read(&mut db, 3, Cursor::at(oldest), 1 << 20).unwrap();
    assert_eq!(events, vec![ev(r3, 0, true, p("k2", b"2"))]);
    assert_eq!(next, Cursor::after(r3));
    assert_eq!(open(&mut db, 4, WatchStart::Now), Ok(Cursor::after(r3)));
}

#[test]
fn a_small_budget_splits_a_clear_with_exact_cursors() {
    let Some(cluster) = common::cluster() else { return };
    let backend = backend(&cluster, "split");
    let mut db = Conn::new(&backend);
    let keys = ["k1", "k2", "k3", "k4", "k5"];
    db.write(1, 1, WriteOp::Batch(keys.iter().map(|k| bput(k, "v")).collect())).unwrap();
    let start = open(&mut db, 1, WatchStart::Now).unwrap();
    db.write(1, 2, clear(KeyRange::all(), None)).unwrap();
    let r = revision(&mut db);
    assert_eq!(start, Cursor::at(r));

    let mut from = start;
    for (i, key) in keys.iter().enumerate() {
        let (events, next) = read(&mut db, 1, from, 1).unwrap();
        let last = i == keys.len() - 1;
        assert_eq!(events, vec![ev(r, i as u32, last, d(key))]);
        let expected = if last { Cursor::after(r) } else { Cursor { position: r, index: i as u32 + 1 } };
        assert_eq!(next, expected);
        from = next;
    }

    // A budget of two events' cost returns two.
    let cost = ev(r, 0, false, d("k1")).cost();
    let (events, next) = read(&mut db, 2, start, 2 * cost).unwrap();
    assert_eq!(events.iter().map(|e| e.index).collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(next, Cursor { position: r, index: 2 });
    // The same watch asked from elsewhere (a resumed client): it reopens there.
    let (events, next) = read(&mut db, 2, Cursor { position: r, index: 3 }, 1 << 20).unwrap();
    assert_eq!(events, vec![ev(r, 3, false, d("k4")), ev(r, 4, true, d("k5"))]);
    assert_eq!(next, Cursor::after(r));
    // A new watch resumed mid-commit.
    let resumed = Cursor { position: r, index: 2 };
    assert_eq!(open(&mut db, 3, WatchStart::At(resumed)), Ok(resumed));
    let (events, _) = read(&mut db, 3, resumed, 1 << 20).unwrap();
    assert_eq!(events.iter().map(|e| e.index).collect::<Vec<_>>(), vec![2, 3, 4]);
}

/// Kills the leader, then each other member in turn (restarting the one before), so that the
/// member serving the watch's stream dies at least once: the waiting read is answered by the
/// writes made meanwhile, each once, in order.
#[test]
fn a_watch_survives_the_loss_of_the_leader() {
    let Some(mut cluster) = common::cluster() else { return };
    let options = EtcdOptions {
        namespace: b"failover".to_vec(),
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_millis(500),
        ..EtcdOptions::default()
    };
    let backend = backend_with(&cluster, options);
    let mut watcher = Conn::new(&backend);
    let mut db = Conn::new(&backend);
    let mut from = open(&mut watcher, 1, WatchStart::Now).unwrap();
    db.write(1, 1, put("k", "1")).unwrap();
    let (events, next) = read(&mut watcher, 1, from, 1 << 20).unwrap();
    assert_eq!(events, vec![ev(from.position, 0, true, p("k", b"1"))]);
    from = next;

    let leader = cluster.leader().expect("a leader");
    let mut request = 1;
    for victim in [leader, (leader + 1) % 3, (leader + 2) % 3] {
        let op = watcher.send(request_for(from)).expect("queued");
        cluster.kill(victim);
        let mut written = Vec::new();
        for _ in 0..3 {
            request += 1;
            db.write(1, request, put("k", request.to_string())).expect("a write with a member down");
            written.push(request.to_string());
        }
        let (answered, result) = watcher.answer_within(Duration::from_secs(20)).expect("the waiting read is answered");
        assert_eq!(answered, op);
        let (mut events, mut next) = changes(result).unwrap();
        while events.len() < written.len() {
            let (more, after) = read(&mut watcher, 1, next, 1 << 20).expect("a read with a member down");
            events.extend(more);
            next = after;
        }
        let values: Vec<String> =
            events.iter().map(|e| String::from_utf8(e.change.value().unwrap().to_vec()).unwrap()).collect();
        assert_eq!(values, written, "every write once, in order (member {victim} down)");
        assert!(events.iter().all(|e| e.position >= from.position && e.index == 0 && e.commit_end));
        assert!(events.windows(2).all(|w| w[0].position < w[1].position));
        from = next;
        cluster.restart(victim);
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn request_for(from: Cursor) -> StoreRequest {
    request(1, from, &KeyRange::all(), true, 1 << 20)
}

/// A watch of keys nobody writes still moves on: etcd's progress notifications (every 300 ms
/// here) answer its reads with no events and a cursor past the commits elsewhere.
#[test]
fn a_quiet_watch_moves_on_with_progress_notifications() {
    let Some(cluster) = EtcdCluster::start_with(&["--experimental-watch-progress-notify-interval=300ms"]) else {
        return;
    };
    let backend = backend(&cluster, "progress");
    let mut db = Conn::new(&backend);
    let quiet = KeyRange::all().gte("q").lt("r");
    let mut from = open(&mut db, 1, WatchStart::Now).unwrap();
    for request in 1..=3 {
        db.write(1, request, put("a", "busy")).unwrap();
    }
    let written = revision(&mut db);
    let mut reads = 0;
    while from.position <= written {
        reads += 1;
        assert!(reads <= 40, "progress within 40 reads: at {from:?}, writes up to {written}");
        let (events, next) = changes(db.run(request(1, from, &quiet, true, 1 << 20))).unwrap();
        assert_eq!(events, vec![], "nothing in the quiet range");
        assert!(next >= from);
        from = next;
    }
    // Still exact: the next write in the range comes with its own position.
    db.write(1, 4, put("q1", "x")).unwrap();
    let r = revision(&mut db);
    let (events, next) = changes(db.run(request(1, from, &quiet, true, 1 << 20))).unwrap();
    assert_eq!(events, vec![ev(r, 0, true, p("q1", b"x"))]);
    assert_eq!(next, Cursor::after(r));
}

/// With the backend's compaction on, a watch in use holds compaction before its cursor, like
/// an iterator; idle past the timeout it no longer does, and its live stream goes on anyway;
/// once closed, its old position is refused as compacted.
#[test]
fn compaction_spares_watches_in_use() {
    let Some(cluster) = common::cluster() else { return };
    let compaction = Compaction { interval: Duration::from_millis(200), idle_timeout: Duration::from_secs(2) };
    let options =
        EtcdOptions { namespace: b"compacting".to_vec(), compaction: Some(compaction), ..EtcdOptions::default() };
    let backend = backend_with(&cluster, options);
    let mut db = Conn::new(&backend);
    let mut watcher = Conn::new(&backend);
    let start = open(&mut watcher, 1, WatchStart::Now).unwrap();
    for request in 1..=5 {
        db.write(1, request, put(format!("k{request}"), "v")).unwrap();
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let endpoints = cluster.endpoints();
    let oldest_readable = move || {
        let endpoints = endpoints.clone();
        runtime.block_on(async move {
            let mut client = etcd_client::Client::connect(&endpoints, None).await.unwrap();
            let mut revision = 1;
            while client.get("x", Some(etcd_client::GetOptions::new().with_revision(revision))).await.is_err() {
                revision += 1;
            }
            revision as u64
        })
    };
    // Read one event every 300 ms: compaction never passes the revision before the cursor.
    let mut from = start;
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(300));
        let (events, next) = read(&mut watcher, 1, from, 1).expect("a watch in use is spared");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].position, from.position);
        from = next;
    }
    let spared = oldest_readable();
    assert!(spared > 1, "compaction ran: oldest readable revision {spared}");
    // The last read was from the last write's revision; its stream needs the one before.
    assert!(spared < from.position - 1, "compaction stopped before the cursor: {spared}, {from:?}");

    // A read waiting past the idle timeout: compaction moves on, the stream is live anyway.
    let op = watcher.send(request(1, from, &KeyRange::all(), true, 1 << 20)).expect("queued");
    std::thread::sleep(Duration::from_millis(2600));
    assert!(oldest_readable() >= from.position, "compaction moved on");
    db.write(1, 6, put("k6", "v")).unwrap();
    let (answered, result) = watcher.answer_within(Duration::from_secs(10)).expect("answered");
    assert_eq!(answered, op);
    let (events, _) = changes(result).unwrap();
    assert_eq!(events.iter().map(|e| e.change.key().clone()).collect::<Vec<_>>(), vec![Bytes::from("k6")]);

    // Closed, nothing holds its place: resuming at it is refused.
    watcher.conn.close_watch(1);
    std::thread::sleep(Duration::from_millis(600));
    match open(&mut watcher, 2, WatchStart::At(from)) {
        Err(StoreError::Compacted { oldest }) => assert!(oldest > from.position, "{oldest} > {from:?}"),
        other => panic!("expected compacted: {other:?}"),
    }
}
