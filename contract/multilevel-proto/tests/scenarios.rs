//! One test per behaviour of the state machines, on the deterministic simulation.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use multilevel_proto::message::{Goodbye, MAGIC, encode};
use multilevel_proto::sim::{Sim, issue};
use multilevel_proto::{
    ClientConfig, ClientEvent, ClientMessage, ConnectFailure, ConnectionError, ErrorCode, GoodbyeReason, IssueError,
    IterOptions, IterPoll, KeyRange, PROTOCOL_VERSION, Request, RequestError, Response, ServerConfig, ServerConnection,
    ServerError, ServerEvent, ServerMessage,
};

mod common;

use common::{NewNow, answer, b, drain, hello, put, transmitted};

fn sim(retry: bool) -> Sim {
    Sim::new_now(ClientConfig::new(1).with_retry(retry), ServerConfig::default())
}

#[test]
fn operations_before_any_connection_wait_for_one() {
    let mut sim = sim(false);
    let id = issue(&mut sim, put(b"k", b"v"));
    let get = issue(&mut sim, Request::Get { key: b(b"k") });
    assert!(sim.answers.is_empty());
    sim.settle();
    assert_eq!(answer(&sim, id), Ok(Response::Done));
    assert_eq!(answer(&sim, get), Ok(Response::Value(Some(b(b"v")))));
}

#[test]
fn without_retry_a_lost_connection_fails_pending_work() {
    let mut sim = sim(false);
    sim.settle();
    let id = issue(&mut sim, put(b"k", b"v"));
    let iter = sim.client.open_iterator(IterOptions::default()).unwrap();
    sim.cut();
    assert_eq!(answer(&sim, id), Err(RequestError::ConnectionLost));
    assert_eq!(sim.client.iterator_next(iter), IterPoll::Error(RequestError::ConnectionLost));
}

#[test]
fn with_retry_a_write_whose_answer_was_lost_applies_once() {
    let mut sim = sim(true);
    sim.settle();
    let id = issue(&mut sim, Request::Batch { ops: vec![] });
    sim.deliver_c2s(usize::MAX);
    sim.run_writes(usize::MAX); // applied; the answer sits in the pipe
    assert_eq!(sim.store.applied().len(), 1);
    sim.cut(); // ...and is lost
    sim.settle(); // replayed on the new connection
    assert_eq!(answer(&sim, id), Ok(Response::Done));
    assert_eq!(sim.store.applied(), &[(1, id)], "applied exactly once");
}

#[test]
fn replay_of_a_write_still_queued_from_a_dead_connection_applies_once() {
    let mut sim = sim(true);
    sim.settle();
    let id = issue(&mut sim, put(b"k", b"1"));
    sim.deliver_c2s(usize::MAX); // queued at the writer, not applied
    sim.cut();
    sim.connect();
    sim.deliver_c2s(usize::MAX);
    sim.deliver_s2c(usize::MAX);
    sim.deliver_c2s(usize::MAX); // the replay is queued behind the original
    sim.settle();
    assert_eq!(answer(&sim, id), Ok(Response::Done));
    assert_eq!(sim.store.applied().len(), 1);
}

#[test]
fn reverse_iterator_resumes_without_losing_keys_that_extend_a_smaller_key() {
    // many-level loses [01 04 09] when resuming a reverse iterator below [01 05].
    let mut sim = Sim::new_now(
        ClientConfig { iterator_window: 1, ..ClientConfig::new(1).with_retry(true) },
        ServerConfig { max_batch_entries: 1, ..ServerConfig::default() },
    );
    sim.settle();
    for key in [&[1u8, 4][..], &[1, 4, 9], &[1, 5], &[1, 6]] {
        issue(&mut sim, put(key, b""));
    }
    sim.settle();
    let iter = sim.client.open_iterator(IterOptions { reverse: true, ..IterOptions::default() }).unwrap();
    let mut keys = Vec::new();
    for _ in 0..2 {
        if let IterPoll::Entry(entry) = sim.iterator_next(iter) {
            keys.push(entry.key.unwrap());
        }
        sim.cut();
    }
    let (rest, end) = drain(&mut sim, iter);
    keys.extend(rest);
    assert_eq!(end, IterPoll::End);
    assert_eq!(keys, vec![b(&[1, 6]), b(&[1, 5]), b(&[1, 4, 9]), b(&[1, 4])]);
}

#[test]
fn values_only_iterator_resumes_where_it_stopped() {
    let mut sim = Sim::new_now(
        ClientConfig { iterator_window: 1, ..ClientConfig::new(1).with_retry(true) },
        ServerConfig { max_batch_entries: 1, ..ServerConfig::default() },
    );
    sim.settle();
    for i in 0u8..10 {
        issue(&mut sim, put(&[i], &[100 + i]));
    }
    sim.settle();
    let iter = sim.client.open_iterator(IterOptions { keys: false, ..IterOptions::default() }).unwrap();
    let mut values = Vec::new();
    loop {
        match sim.iterator_next(iter) {
            IterPoll::Entry(entry) => {
                assert_eq!(entry.key, None, "keys were not asked for");
                values.push(entry.value.unwrap()[0]);
                sim.cut();
            }
            IterPoll::End => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(values, (100..110).collect::<Vec<u8>>());
}

#[test]
fn seek_after_the_end_on_a_new_connection_reads_again() {
    // Found by the model test: a reopened iterator must restart at epoch 0.
    let mut sim = sim(false);
    sim.settle();
    issue(&mut sim, put(b"a", b""));
    sim.settle();
    let iter = sim.client.open_iterator(IterOptions::default()).unwrap();
    assert_eq!(drain(&mut sim, iter), (vec![b(b"a")], IterPoll::End));
    sim.cut();
    sim.client.seek(iter, Bytes::new());
    assert_eq!(drain(&mut sim, iter), (vec![b(b"a")], IterPoll::End));
}

#[test]
fn seek_is_relative_to_the_original_range_after_a_resume() {
    // Found by the model test: the server must not clip a seek to the narrowed reopen range.
    let mut sim = Sim::new_now(
        ClientConfig { iterator_window: 1, ..ClientConfig::new(1).with_retry(true) },
        ServerConfig { max_batch_entries: 1, ..ServerConfig::default() },
    );
    sim.settle();
    for key in [b"a", b"b", b"c"] {
        issue(&mut sim, put(key, b""));
    }
    sim.settle();
    let iter = sim.client.open_iterator(IterOptions::default()).unwrap();
    assert!(matches!(sim.iterator_next(iter), IterPoll::Entry(_)));
    assert!(matches!(sim.iterator_next(iter), IterPoll::Entry(_)));
    sim.cut();
    sim.settle(); // reopened after "b"
    sim.client.seek(iter, b(b"a"));
    assert_eq!(drain(&mut sim, iter), (vec![b(b"a"), b(b"b"), b(b"c")], IterPoll::End));
}

#[test]
fn iterator_limit_counts_across_reconnects_and_seeks() {
    let mut sim = Sim::new_now(
        ClientConfig { iterator_window: 1, ..ClientConfig::new(1).with_retry(true) },
        ServerConfig { max_batch_entries: 1, ..ServerConfig::default() },
    );
    sim.settle();
    for i in 0u8..10 {
        issue(&mut sim, put(&[i], b""));
    }
    sim.settle();
    let iter = sim.client.open_iterator(IterOptions { limit: Some(4), ..IterOptions::default() }).unwrap();
    assert!(matches!(sim.iterator_next(iter), IterPoll::Entry(_)));
    sim.cut();
    assert!(matches!(sim.iterator_next(iter), IterPoll::Entry(_)));
    sim.client.seek(iter, b(&[7]));
    assert_eq!(drain(&mut sim, iter), (vec![b(&[7]), b(&[8])], IterPoll::End));
}

#[test]
fn empty_ranges_and_zero_limits_end_at_once() {
    let mut sim = sim(false);
    sim.settle();
    issue(&mut sim, put(b"k", b"v"));
    for options in [
        IterOptions { range: KeyRange::all().gt(b"z").lt(b"a"), ..IterOptions::default() },
        IterOptions { limit: Some(0), ..IterOptions::default() },
    ] {
        let iter = sim.client.open_iterator(options).unwrap();
        assert_eq!(drain(&mut sim, iter), (vec![], IterPoll::End));
    }
}

#[test]
fn two_iterators_at_once_read_their_own_snapshots() {
    let mut sim = sim(false);
    sim.settle();
    issue(&mut sim, put(b"a", b"1"));
    sim.settle();
    let first = sim.client.open_iterator(IterOptions::default()).unwrap();
    sim.pump();
    issue(&mut sim, put(b"b", b"2"));
    sim.settle();
    let second = sim.client.open_iterator(IterOptions::default()).unwrap();
    assert_eq!(drain(&mut sim, second).0, vec![b(b"a"), b(b"b")]);
    assert_eq!(drain(&mut sim, first).0, vec![b(b"a")], "the first iterator's snapshot predates the put");
}

#[test]
fn readonly_server_refuses_writes_with_a_typed_error() {
    let mut sim = Sim::new_now(ClientConfig::new(1), ServerConfig { readonly: true, ..ServerConfig::default() });
    let id = issue(&mut sim, put(b"k", b"v"));
    sim.settle();
    let Err(RequestError::Remote(err)) = answer(&sim, id) else { panic!("write accepted") };
    assert_eq!(err.code, ErrorCode::ReadOnly);
    assert!(sim.store.data().is_empty());
}

#[test]
fn oversized_keys_are_refused_before_sending_once_the_limit_is_known() {
    let mut sim = Sim::new_now(ClientConfig::new(1), ServerConfig { max_key_size: 4, ..ServerConfig::default() });
    let early = issue(&mut sim, put(b"12345", b"")); // limit not known yet
    sim.settle();
    let Err(RequestError::Remote(err)) = answer(&sim, early) else { panic!("accepted") };
    assert_eq!(err.code, ErrorCode::KeyTooLarge);
    assert_eq!(sim.client.issue(put(b"12345", b""), sim.now), Err(IssueError::KeyTooLarge { len: 5, max: 4 }));
}

#[test]
fn the_queue_is_bounded_and_says_when_it_has_room() {
    let mut sim = Sim::new_now(ClientConfig { max_pending: 2, ..ClientConfig::new(1) }, ServerConfig::default());
    issue(&mut sim, put(b"a", b""));
    issue(&mut sim, put(b"b", b""));
    assert_eq!(sim.client.issue(put(b"c", b""), sim.now), Err(IssueError::QueueFull));
    assert_eq!(sim.queue_available_events, 0);
    sim.settle();
    assert_eq!(sim.answers.len(), 2);
    assert_eq!(sim.queue_available_events, 1, "callers are told when they may issue again");
    assert!(sim.client.issue(put(b"c", b""), sim.now).is_ok());
}

#[test]
fn requests_past_their_deadline_time_out() {
    let mut sim = Sim::new_now(
        ClientConfig { request_timeout: Some(Duration::from_secs(5)), ..ClientConfig::new(1) },
        ServerConfig::default(),
    );
    let id = issue(&mut sim, Request::Get { key: b(b"k") });
    assert_eq!(sim.client.poll_timeout(), Some(sim.now + Duration::from_secs(5)));
    sim.advance(Duration::from_secs(5));
    assert_eq!(answer(&sim, id), Err(RequestError::TimedOut));
}

#[test]
fn keepalive_pings_a_quiet_server_and_gives_up_on_a_silent_one() {
    let mut sim = sim(true);
    sim.settle();
    let config = sim.client.config().clone();
    sim.advance(config.keepalive_interval);
    let ping = sim.client.poll_transmit();
    assert!(ping.is_none(), "the sim moved it into the pipe");
    sim.pump(); // the server answers the ping
    assert_eq!(sim.disconnect_events, 0);
    sim.advance(config.keepalive_interval); // ping again, but this time nothing comes back
    sim.advance(config.keepalive_timeout);
    assert_eq!(sim.disconnect_events, 1, "a silent server is given up");
}

#[test]
fn server_closes_idle_connections() {
    let mut server = ServerConnection::new(ServerConfig::default(), std::time::Instant::now());
    let deadline = server.poll_timeout().unwrap();
    server.handle_timeout(deadline);
    assert!(server.is_closed());
    let msgs = transmitted(&mut server);
    assert!(matches!(&msgs[..], [ServerMessage::Goodbye(Goodbye { reason: GoodbyeReason::IdleTimeout, .. })]));
}

#[test]
fn wrong_version_gets_a_clear_goodbye() {
    let now = std::time::Instant::now();
    let mut server = ServerConnection::new(ServerConfig::default(), now);
    let err = server.handle_input(&hello(PROTOCOL_VERSION + 1, MAGIC), now).unwrap_err();
    assert_eq!(err, ServerError::VersionMismatch { client: PROTOCOL_VERSION + 1, server: PROTOCOL_VERSION });
    let msgs = transmitted(&mut server);
    let [ServerMessage::Goodbye(goodbye)] = &msgs[..] else { panic!("{msgs:?}") };
    assert_eq!(goodbye.reason, GoodbyeReason::VersionMismatch);
    assert!(goodbye.message.contains("version"), "{}", goodbye.message);
    assert!(server.is_closed());
}

#[test]
fn client_turns_a_version_goodbye_into_an_incompatible_error() {
    let now = std::time::Instant::now();
    let mut client = multilevel_proto::Client::new(ClientConfig::new(1).with_retry(true), now);
    let id = client.issue(put(b"k", b""), now).unwrap();
    client.handle_connected(now);
    let mut out = BytesMut::new();
    let goodbye = Goodbye { reason: GoodbyeReason::VersionMismatch, message: "server speaks 2".into() };
    encode(&ServerMessage::Goodbye(goodbye), &mut out);
    let err = client.handle_input(&out, now).unwrap_err();
    assert!(err.is_fatal());
    let events: Vec<ClientEvent> = std::iter::from_fn(|| client.poll_event()).collect();
    assert!(events.contains(&ClientEvent::Disconnected(ConnectionError::Incompatible("server speaks 2".into()))));
    assert!(
        events
            .contains(&ClientEvent::Response { id, result: Err(RequestError::Incompatible("server speaks 2".into())) })
    );
}

#[test]
fn garbage_and_bad_magic_close_with_an_error_not_a_panic() {
    let now = std::time::Instant::now();
    for input in [&b"GET / HTTP/1.1\r\n\r\n"[..], &hello(PROTOCOL_VERSION, *b"NOPE")[..], &[0x03, 0xff, 0xff, 0xff]] {
        let mut server = ServerConnection::new(ServerConfig::default(), now);
        assert!(server.handle_input(input, now).is_err(), "{input:?}");
        assert!(server.is_closed());
        assert!(matches!(transmitted(&mut server)[..], [ServerMessage::Goodbye(_)]));
    }
}

#[test]
fn a_huge_length_prefix_is_refused_at_once() {
    let now = std::time::Instant::now();
    let mut server = ServerConnection::new(ServerConfig::default(), now);
    server.handle_input(&hello(PROTOCOL_VERSION, MAGIC), now).unwrap();
    transmitted(&mut server);
    // A 4 GiB - 1 frame announced, none of it sent.
    let err = server.handle_input(&[0xff, 0xff, 0xff, 0xff, 0x0f], now).unwrap_err();
    assert!(matches!(err, ServerError::Frame(multilevel_proto::FrameError::TooLarge { .. })), "{err}");
    assert!(server.is_closed());
}

#[test]
fn requests_before_the_handshake_and_reused_ids_are_protocol_errors() {
    let now = std::time::Instant::now();
    let mut server = ServerConnection::new(ServerConfig::default(), now);
    let mut out = BytesMut::new();
    encode(&ClientMessage::Get { id: 1, key: b(b"k") }, &mut out);
    assert_eq!(server.handle_input(&out, now), Err(ServerError::BadMagic));

    let mut server = ServerConnection::new(ServerConfig::default(), now);
    let mut out = hello(PROTOCOL_VERSION, MAGIC);
    encode(&ClientMessage::Get { id: 5, key: b(b"k") }, &mut out);
    encode(&ClientMessage::Get { id: 5, key: b(b"k") }, &mut out);
    assert_eq!(server.handle_input(&out, now), Err(ServerError::IdNotIncreasing { id: 5, previous: 5 }));
}

#[test]
fn server_stops_reading_at_the_in_flight_cap() {
    let now = std::time::Instant::now();
    let mut server = ServerConnection::new(ServerConfig { max_in_flight: 2, ..ServerConfig::default() }, now);
    let mut out = hello(PROTOCOL_VERSION, MAGIC);
    for id in 1..=5 {
        encode(&ClientMessage::Put { id, key: b(b"k"), value: b(b"v") }, &mut out);
    }
    server.handle_input(&out, now).unwrap();
    let ops: Vec<ServerEvent> = std::iter::from_fn(|| server.poll_event()).collect();
    assert_eq!(ops.len(), 2, "only two requests handed to the store");
    assert!(!server.wants_input());
    let ServerEvent::Store { op, .. } = ops[0].clone() else { panic!() };
    server.handle_outcome(op, Ok(multilevel_proto::Outcome::Written), now).unwrap();
    assert_eq!(std::iter::from_fn(|| server.poll_event()).count(), 1, "one more taken from the buffer");
}

#[test]
fn too_many_iterators_get_an_error_and_the_connection_lives() {
    let mut sim = Sim::new_now(ClientConfig::new(1), ServerConfig { max_iterators: 1, ..ServerConfig::default() });
    sim.settle();
    let first = sim.client.open_iterator(IterOptions::default()).unwrap();
    let second = sim.client.open_iterator(IterOptions::default()).unwrap();
    sim.pump();
    let IterPoll::Error(RequestError::Remote(err)) = sim.iterator_next(second) else { panic!("second opened") };
    assert_eq!(err.code, ErrorCode::TooManyIterators);
    assert_eq!(sim.iterator_next(first), IterPoll::End);
    let id = issue(&mut sim, Request::Get { key: b(b"k") });
    sim.pump();
    assert_eq!(answer(&sim, id), Ok(Response::Value(None)));
}

#[test]
fn ids_are_never_reused() {
    let mut sim = sim(true);
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(issue(&mut sim, Request::Get { key: b(b"k") }));
        ids.push(sim.client.open_iterator(IterOptions::default()).unwrap());
        sim.settle();
        sim.cut();
    }
    let mut sorted = ids.clone();
    sorted.dedup();
    assert_eq!(sorted, ids);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn a_seek_too_large_for_the_server_fails_the_iterator_not_the_connection() {
    // Reported by the fuzz work: such a seek would be refused by the server's decoder, and with
    // retry the client would reconnect and send it again forever.
    let mut sim = Sim::new_now(
        ClientConfig::new(1).with_retry(true),
        ServerConfig { max_frame: 1024, ..ServerConfig::default() },
    );
    sim.settle();
    issue(&mut sim, put(b"a", b""));
    sim.settle();
    let iter = sim.client.open_iterator(IterOptions::default()).unwrap();
    assert!(matches!(sim.iterator_next(iter), IterPoll::Entry(_)));
    sim.client.seek(iter, Bytes::from(vec![7u8; 4096]));
    sim.collect();
    let IterPoll::Error(RequestError::Remote(err)) = sim.iterator_next(iter) else { panic!("the seek went out") };
    assert_eq!(err.code, ErrorCode::TooLarge);
    let connects = sim.connects;
    let id = issue(&mut sim, Request::Get { key: b(b"a") });
    sim.settle();
    assert_eq!(answer(&sim, id), Ok(Response::Value(Some(b(b"")))));
    assert_eq!(sim.connects, connects, "the connection was kept");
}

type Answers = Vec<(u64, Result<Response, RequestError>)>;

/// Drains the machine's events, keeping the answers and the connection losses.
fn events(client: &mut multilevel_proto::Client) -> (Answers, Vec<ConnectionError>) {
    let (mut answers, mut lost) = (Vec::new(), Vec::new());
    while let Some(event) = client.poll_event() {
        match event {
            ClientEvent::Response { id, result } => answers.push((id, result)),
            ClientEvent::Disconnected(err) => lost.push(err),
            _ => {}
        }
    }
    (answers, lost)
}

#[test]
fn a_failed_connect_without_retry_fails_waiting_requests_with_its_cause() {
    let now = std::time::Instant::now();
    let mut client = multilevel_proto::Client::new(ClientConfig::new(1), now);
    let id = client.issue(put(b"k", b"v"), now).unwrap();
    let refused = ConnectFailure::new(std::io::ErrorKind::ConnectionRefused, "Connection refused (os error 111)");
    client.handle_connect_failed(refused.clone(), now);
    let (answers, lost) = events(&mut client);
    assert_eq!(answers, vec![(id, Err(RequestError::Unreachable(refused.clone())))]);
    assert_eq!(lost, vec![ConnectionError::Connect(refused)]);
    assert_eq!(client.poll_transmit(), None, "nothing was sent, so nothing was applied");
}

#[test]
fn with_retry_requests_wait_through_failed_connects_until_their_deadline() {
    let now = std::time::Instant::now();
    let mut client = multilevel_proto::Client::new(ClientConfig::new(1).with_retry(true), now);
    let deadline = now + Duration::from_secs(1);
    let id = client.issue_with_deadline(put(b"k", b"v"), Some(deadline)).unwrap();
    let refused = ConnectFailure::new(std::io::ErrorKind::ConnectionRefused, "refused");
    client.handle_connect_failed(refused.clone(), now);
    let (answers, lost) = events(&mut client);
    assert!(answers.is_empty(), "with retry the request keeps waiting");
    assert_eq!(lost, vec![ConnectionError::Connect(refused)]);
    assert_eq!(client.poll_timeout(), Some(deadline), "its deadline runs while no transport is up");
    client.handle_timeout(deadline);
    assert_eq!(events(&mut client).0, vec![(id, Err(RequestError::TimedOut))]);
}

#[test]
fn bytes_that_are_not_a_handshake_answer_name_the_peer_as_not_multilevel() {
    for (reply, closes) in [(&b"HTTP/1.1 400 Bad Request\r\n\r\n"[..], true), (b"\x05\x07zzzzzz", false)] {
        let now = std::time::Instant::now();
        let mut client = multilevel_proto::Client::new(ClientConfig::new(1).with_retry(true), now);
        let id = client.issue(put(b"k", b"v"), now).unwrap();
        client.handle_connected(now);
        let _ = client.handle_input(reply, now);
        if closes {
            client.handle_disconnected(now);
        }
        let (answers, lost) = events(&mut client);
        assert!(matches!(lost.as_slice(), [ConnectionError::NotMultilevel(_)]), "{lost:?}");
        assert!(lost[0].is_fatal(), "retrying cannot help");
        assert!(matches!(answers.as_slice(), [(i, Err(RequestError::NotMultilevel(_)))] if *i == id), "{answers:?}");
    }
}

#[test]
fn a_server_cut_mid_handshake_is_a_lost_transport_not_an_impostor() {
    let now = std::time::Instant::now();
    // The server's hello, cut after each of its bytes in turn.
    let mut client = multilevel_proto::Client::new(ClientConfig::new(1).with_retry(true), now);
    client.handle_connected(now);
    let mut server = ServerConnection::new(ServerConfig::default(), now);
    while let Some(bytes) = client.poll_transmit() {
        server.handle_input(&bytes, now).unwrap();
    }
    let mut hello = Vec::new();
    while let Some(bytes) = server.poll_transmit() {
        hello.extend_from_slice(&bytes);
    }
    for cut in 1..hello.len() {
        let mut client = multilevel_proto::Client::new(ClientConfig::new(1).with_retry(true), now);
        client.handle_connected(now);
        client.handle_input(&hello[..cut], now).unwrap();
        client.handle_disconnected(now);
        let (_, lost) = events(&mut client);
        assert_eq!(lost, vec![ConnectionError::TransportClosed], "cut at {cut}");
    }
}

/// A link that drops every connection after 400 bytes, fewer than one batch of entries: the
/// iterator offers less credit on each connection that delivered nothing, so the server's
/// batches shrink until they get through, and the iteration is still exact.
#[test]
fn an_iterator_gets_through_a_link_that_drops_every_few_hundred_bytes() {
    let mut sim = Sim::new_now(ClientConfig::new(5).with_retry(true), ServerConfig::default());
    sim.settle();
    let keys: Vec<Bytes> = (0..300u32).map(|i| Bytes::from(format!("key {i:05}"))).collect();
    for key in &keys {
        issue(&mut sim, Request::Put { key: key.clone(), value: Bytes::from(vec![b'v'; 20]) });
        sim.settle();
    }
    let iter = sim.client.open_iterator(IterOptions::default()).unwrap();
    let mut got = Vec::new();
    let mut ended = false;
    while !ended && sim.connects < 2000 {
        let mut budget = 400;
        loop {
            sim.deliver_c2s(usize::MAX);
            let moved = sim.deliver_s2c(budget);
            budget -= moved;
            loop {
                match sim.client.iterator_next(iter) {
                    IterPoll::Entry(entry) => got.push(entry.key.unwrap_or_default()),
                    IterPoll::End => ended = true,
                    IterPoll::Pending => break,
                    IterPoll::Error(err) => panic!("{err}"),
                }
                if ended {
                    break;
                }
            }
            if ended || moved == 0 || budget == 0 {
                break;
            }
        }
        sim.cut();
        sim.connect();
    }
    assert!(ended, "the iteration ended within {} connections", sim.connects);
    assert_eq!(got, keys);
}
