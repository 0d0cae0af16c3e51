//! Watches in simulated time: the exact change feed of a range, across cuts at random bytes
//! and reconnects, against the store's own record of its commits; history trimmed by the
//! retention; and a watcher that does not read.

#[allow(dead_code)] // each test binary uses a part of the helpers
mod common;

use bytes::Bytes;
use common::{NewNow, b, put};
use multilevel_proto::sim::Sim;
use multilevel_proto::{
    BatchOp, Change, ChangeEvent, ClientConfig, KeyRange, Request, RequestError, ServerConfig, WatchOptions, WatchPoll,
    WatchStart,
};
use proptest::prelude::*;

fn sim(retry: bool) -> Sim {
    let mut sim = Sim::new_now(ClientConfig::new(5).with_retry(retry), ServerConfig::default());
    sim.settle();
    sim
}

/// Issues a write and runs it to its answer.
fn write(sim: &mut Sim, request: Request) {
    let id = multilevel_proto::sim::issue(sim, request);
    sim.settle();
    assert!(
        sim.answers.contains_key(&id),
        "write {id} unanswered: up {} answers {:?} server {:?}",
        sim.is_up(),
        sim.answers.keys().collect::<Vec<_>>(),
        sim.server.as_ref().map(|s| (s.in_flight(), s.error().cloned()))
    );
}

/// The events the store's change log says a watch of `range` from `after` must deliver.
fn expected(sim: &mut Sim, range: &KeyRange, after: u64, values: bool) -> Vec<ChangeEvent> {
    let mut events: Vec<ChangeEvent> = Vec::new();
    for (position, changes) in sim.store.change_log().commits().filter(|(position, _)| *position > after) {
        let start = events.len();
        for (index, change) in changes.iter().enumerate() {
            if range.contains(change.key()) {
                let change = if values { change.clone() } else { change.clone().without_value() };
                events.push(ChangeEvent { position, index: index as u32, commit_end: false, change });
            }
        }
        if let Some(last) = events[start..].last_mut() {
            last.commit_end = true;
        }
    }
    events
}

#[test]
fn a_watch_from_now_sees_each_kind_of_write_in_commit_order() {
    let mut sim = sim(true);
    write(&mut sim, put(b"before", b"0"));
    let watch = sim.client.open_watch(WatchOptions::new()).unwrap();
    sim.settle();
    write(&mut sim, put(b"a", b"1"));
    write(&mut sim, Request::Del { key: b(b"absent") }); // no commit
    let ops = vec![
        BatchOp::Put { key: b(b"b"), value: b(b"2") },
        BatchOp::Del { key: b(b"a") },
        BatchOp::Put { key: b(b"c"), value: b(b"3") },
    ];
    write(&mut sim, Request::Batch { ops });
    write(&mut sim, Request::Clear { range: KeyRange::all(), reverse: false, limit: None });
    let events = sim.watch_events(watch, 100).unwrap();
    let changes: Vec<(u64, bool, Change)> =
        events.iter().map(|e| (e.position, e.commit_end, e.change.clone())).collect();
    let put = |k: &[u8], v: &[u8]| Change::Put { key: b(k), value: b(v) };
    let del = |k: &[u8]| Change::Del { key: b(k) };
    assert_eq!(
        changes,
        vec![
            (2, true, put(b"a", b"1")),
            (3, false, put(b"b", b"2")),
            (3, false, del(b"a")),
            (3, true, put(b"c", b"3")),
            (4, false, del(b"b")),
            (4, false, del(b"before")),
            (4, true, del(b"c")),
        ]
    );
}

#[test]
fn a_watch_from_a_trimmed_position_fails_naming_the_oldest_kept() {
    let mut sim = sim(true);
    sim.store.change_log().set_keep(3);
    for i in 0..10u8 {
        write(&mut sim, put(&[i], b"v"));
    }
    let watch = sim.client.open_watch(WatchOptions::new().after(2)).unwrap();
    assert_eq!(sim.watch_events(watch, 10), Err(RequestError::Compacted { oldest: 8 }));
    // From the oldest kept on, the rest is replayed.
    let watch = sim.client.open_watch(WatchOptions::new().start(WatchStart::after(7))).unwrap();
    let positions: Vec<u64> = sim.watch_events(watch, 10).unwrap().iter().map(|e| e.position).collect();
    assert_eq!(positions, vec![8, 9, 10]);
}

#[test]
fn a_watch_that_is_not_read_stops_the_server_at_its_credit() {
    let mut config = ClientConfig::new(5).with_retry(true);
    config.iterator_window = 4096;
    let mut sim = Sim::new_now(config, ServerConfig::default());
    sim.settle();
    let watch = sim.client.open_watch(WatchOptions::new()).unwrap();
    sim.settle();
    let value = Bytes::from(vec![7u8; 1000]);
    for i in 0..200u32 {
        write(&mut sim, Request::Put { key: Bytes::from(i.to_be_bytes().to_vec()), value: value.clone() });
    }
    // The writes all went through; the watch received only about its window.
    assert_eq!(sim.store.change_log().head(), 200);
    let mut received = 0;
    while let WatchPoll::Event(_) = sim.client.watch_next(watch) {
        received += 1;
    }
    assert!((3..=8).contains(&received), "the server sent {received} events of about 1 KB into a 4 KB window");
    // Reading on receives everything, in order.
    let rest = sim.watch_events(watch, 1000).unwrap();
    assert_eq!(received + rest.len(), 200);
    assert_eq!(rest.last().map(|e| e.position), Some(200));
}

/// A link that drops every connection after a few hundred bytes, fewer than one full frame of
/// events: the watch offers less credit on each connection that delivered nothing, so the
/// server's frames shrink until they get through, and the watch still gets everything.
#[test]
fn a_watch_gets_through_a_link_that_drops_every_few_hundred_bytes() {
    let mut sim = sim(true);
    for i in 0..300u32 {
        write(&mut sim, Request::Put { key: Bytes::from(format!("key {i:05}")), value: Bytes::from(vec![b'v'; 20]) });
    }
    let watch = sim.client.open_watch(WatchOptions::new().after(0)).unwrap();
    let mut got = Vec::new();
    for _ in 0..2000 {
        // This connection carries 400 bytes from the server, then drops.
        let mut budget = 400;
        loop {
            sim.deliver_c2s(usize::MAX);
            let moved = sim.deliver_s2c(budget);
            budget -= moved;
            while let WatchPoll::Event(event) = sim.client.watch_next(watch) {
                got.push(event.position);
            }
            if moved == 0 || budget == 0 {
                break;
            }
        }
        if got.len() == 300 {
            break;
        }
        sim.cut();
        sim.connect();
    }
    assert_eq!(got, (1..=300).collect::<Vec<u64>>(), "after {} connections", sim.connects);
}

#[derive(Debug, Clone)]
enum Step {
    Write(Request),
    Read(u8),
    Cut { c2s: usize, s2c: usize },
}

fn key() -> impl Strategy<Value = Bytes> {
    (0u8..12).prop_map(|k| Bytes::from(vec![b'a' + k]))
}

fn step() -> impl Strategy<Value = Step> {
    let write = prop_oneof![
        (key(), any::<u8>()).prop_map(|(key, v)| Request::Put { key, value: Bytes::from(vec![v]) }),
        key().prop_map(|key| Request::Del { key }),
        prop::collection::vec((key(), any::<bool>()), 1..4).prop_map(|ops| Request::Batch {
            ops: ops
                .into_iter()
                .map(|(key, put)| if put { BatchOp::Put { key, value: b(b"x") } } else { BatchOp::Del { key } })
                .collect()
        }),
        (key(), key()).prop_map(|(a, z)| Request::Clear {
            range: KeyRange::all().gte(a.min(z.clone())).lt(z),
            reverse: false,
            limit: None
        }),
    ];
    prop_oneof![
        4 => write.prop_map(Step::Write),
        2 => (1u8..20).prop_map(Step::Read),
        1 => (0usize..200, 0usize..200).prop_map(|(c2s, s2c)| Step::Cut { c2s, s2c }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("WATCH_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(64)
    ))]

    /// With retry on, a watch's events are exactly the store's commits in its range from its
    /// start, in order, however the connection is cut: none missed, none repeated.
    #[test]
    fn a_watch_delivers_exactly_the_history_of_its_range_across_cuts(
        steps in prop::collection::vec(step(), 1..60),
        lower in key(),
        values in any::<bool>(),
        window in 64u64..4096,
    ) {
        let mut config = ClientConfig::new(5).with_retry(true);
        config.iterator_window = window;
        let mut sim = Sim::new_now(config, ServerConfig::default());
        sim.settle();
        write(&mut sim, put(b"a", b"first"));
        let range = KeyRange::all().gte(lower);
        let options = WatchOptions { range: range.clone(), start: WatchStart::after(0), values };
        let watch = sim.client.open_watch(options).unwrap();
        let mut got = Vec::new();
        for step in steps {
            match step {
                Step::Write(request) => {
                    let _ = multilevel_proto::sim::issue(&mut sim, request);
                }
                Step::Read(n) => {
                    for _ in 0..n {
                        match sim.client.watch_next(watch) {
                            WatchPoll::Event(event) => got.push(event),
                            WatchPoll::Pending => break,
                            WatchPoll::Error(err) => panic!("watch failed: {err}"),
                        }
                    }
                    sim.collect();
                }
                Step::Cut { c2s, s2c } => {
                    sim.deliver_c2s(c2s);
                    sim.deliver_s2c(s2c);
                    sim.run_writes(1);
                    sim.cut();
                    sim.connect();
                }
            }
            let up = sim.is_up();
            if up {
                sim.deliver_c2s(usize::MAX);
                sim.run_writes(usize::MAX);
                sim.deliver_s2c(usize::MAX);
            }
        }
        sim.settle();
        got.extend(sim.watch_events(watch, usize::MAX).unwrap());
        let want = expected(&mut sim, &range, 0, values);
        prop_assert_eq!(got, want);
    }
}

/// A watch ended while its open is still with the store keeps its id until the open comes
/// back: a new watch of the same id meanwhile is a protocol error, not a watch that takes the
/// old one's outcome (and its start).
#[test]
fn a_watch_id_is_not_reused_while_the_closed_watchs_open_is_in_flight() {
    use multilevel_proto::message::{ClientHello, MAGIC, encode};
    use multilevel_proto::{
        ClientMessage, PROTOCOL_VERSION, ServerConnection, ServerError, ServerEvent, ServerMessage, WatchStart,
    };
    let now = std::time::Instant::now();
    let mut server = ServerConnection::new(ServerConfig::default(), now);
    let mut bytes = bytes::BytesMut::new();
    let features = multilevel_proto::FEATURE_WATCH;
    encode(
        &ClientMessage::Hello(ClientHello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            features,
            session: 3,
            max_frame: 1 << 20,
        }),
        &mut bytes,
    );
    let watch = |start| ClientMessage::Watch { id: 2, range: KeyRange::all(), start, values: true, credit: 100 };
    encode(&watch(WatchStart::Now), &mut bytes);
    encode(&ClientMessage::WatchClose { id: 2 }, &mut bytes);
    server.handle_input(&bytes, now).unwrap();
    let events: Vec<ServerEvent> = std::iter::from_fn(|| server.poll_event()).collect();
    assert!(matches!(events[0], ServerEvent::Store { request: multilevel_proto::StoreRequest::OpenWatch { .. }, .. }));
    let mut again = bytes::BytesMut::new();
    encode(&watch(WatchStart::after(7)), &mut again);
    assert_eq!(server.handle_input(&again, now), Err(ServerError::IteratorIdInUse(2)));

    // Once the open came back, the id is free; the new watch gets its own open and start.
    let mut server = ServerConnection::new(ServerConfig::default(), now);
    server.handle_input(&bytes, now).unwrap();
    let Some(ServerEvent::Store { op, .. }) = server.poll_event() else { panic!("no open") };
    let opened = multilevel_proto::Outcome::WatchOpened(multilevel_proto::Cursor::at(1));
    server.handle_outcome(op, Ok(opened), now).unwrap();
    let events: Vec<ServerEvent> = std::iter::from_fn(|| server.poll_event()).collect();
    assert_eq!(events, vec![ServerEvent::CloseWatch { watch: 2 }; 2], "closed, and closed again once opened");
    server.handle_input(&again, now).unwrap();
    let Some(ServerEvent::Store { request, .. }) = server.poll_event() else { panic!("no second open") };
    assert_eq!(request, multilevel_proto::StoreRequest::OpenWatch { watch: 2, start: WatchStart::after(7) });
    let sent: Vec<u8> = std::iter::from_fn(|| server.poll_transmit()).flat_map(|b| b.to_vec()).collect();
    let opened_messages =
        common::server_messages(&sent).into_iter().filter(|m| matches!(m, ServerMessage::WatchOpened { .. })).count();
    assert_eq!(opened_messages, 0, "nothing is said of the closed watch's open");
}

/// Connections that end between frames (a quiet watch across server restarts) do not shrink a
/// watch's credit: once changes come, the server sends a whole window of them without waiting.
#[test]
fn a_quiet_watch_keeps_its_whole_window_across_clean_reconnects() {
    let mut sim = sim(true);
    let watch = sim.client.open_watch(WatchOptions::new()).unwrap();
    sim.settle();
    for _ in 0..6 {
        sim.cut();
        sim.connect();
        sim.settle();
    }
    let value = Bytes::from(vec![b'v'; 1000]);
    for i in 0..100u32 {
        write(&mut sim, Request::Put { key: Bytes::from(format!("k{i:03}")), value: value.clone() });
    }
    // Nothing read yet, so no credit granted since the last open: what arrived is what the
    // window allowed at the open.
    let mut buffered = 0;
    while let WatchPoll::Event(_) = sim.client.watch_next(watch) {
        buffered += 1;
    }
    assert_eq!(buffered, 100, "the default window holds all 100 events of 1 KB");
}
