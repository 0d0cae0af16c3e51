//! Conditional writes and increments on the state machines: replays answer the original
//! outcome, never one evaluated again against a newer state, and peers that did not negotiate
//! the feature fail clearly.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use multilevel_proto::message::{ClientHello, MAGIC, ServerHello, encode};
use multilevel_proto::sim::{Sim, issue};
use multilevel_proto::{
    Client, ClientConfig, ClientMessage, Condition, ConditionFailed, ErrorCode, FEATURE_CONDITIONS, IssueError,
    MemorySnapshots, PROTOCOL_VERSION, Request, RequestError, Response, ServerConfig, ServerConnection, ServerMessage,
    StoreRequest, WriteOp, WriteRequest,
};

fn b(data: &str) -> Bytes {
    Bytes::copy_from_slice(data.as_bytes())
}

fn answer(sim: &Sim, id: u64) -> Result<Response, RequestError> {
    sim.answers.get(&id).unwrap_or_else(|| panic!("request {id} unanswered")).result.clone()
}

/// Another session writes directly to the store, as another client would.
fn other_session_writes(sim: &mut Sim, request: u64, op: WriteOp) {
    let write = StoreRequest::Write(WriteRequest { session: 999, request, op });
    sim.store.execute(&mut MemorySnapshots::default(), write).unwrap();
}

#[test]
fn a_replayed_increment_returns_its_original_value() {
    let mut sim = Sim::new(ClientConfig::new(1).with_retry(true), ServerConfig::default(), Instant::now());
    sim.settle();
    let id = issue(&mut sim, Request::increment("n", 5));
    sim.deliver_c2s(usize::MAX);
    sim.run_writes(usize::MAX); // applied; the answer sits in the pipe
    sim.cut(); // ...and is lost
    other_session_writes(&mut sim, 1, WriteOp::Increment { key: b("n"), by: 100 });
    sim.settle(); // replayed on the new connection
    assert_eq!(answer(&sim, id), Ok(Response::Counter(5)), "the original value, not 105 or 110");
    assert_eq!(sim.store.data().get(&b("n")), Some(&b("105")), "applied once");
}

#[test]
fn a_replayed_failed_condition_reports_the_value_seen_then_and_applies_nothing() {
    let mut sim = Sim::new(ClientConfig::new(1).with_retry(true), ServerConfig::default(), Instant::now());
    sim.settle();
    other_session_writes(&mut sim, 1, WriteOp::Put { key: b("k"), value: b("theirs") });
    let conditional = Request::Conditional {
        conditions: vec![Condition::absent("k")],
        ops: vec![multilevel_proto::BatchOp::Put { key: b("k"), value: b("mine") }],
    };
    let id = issue(&mut sim, conditional);
    sim.deliver_c2s(usize::MAX);
    sim.run_writes(usize::MAX);
    sim.cut();
    // The key goes away: evaluated again, the condition would now hold.
    other_session_writes(&mut sim, 2, WriteOp::Del { key: b("k") });
    sim.settle();
    let failed = ConditionFailed { index: 0, current: Some(b("theirs")) };
    assert_eq!(answer(&sim, id), Ok(Response::ConditionFailed(failed)));
    assert_eq!(sim.store.data().get(&b("k")), None, "the replay applied nothing");
}

fn server_messages(server: &mut ServerConnection) -> Vec<ServerMessage> {
    let mut dec = multilevel_proto::FrameDecoder::new(1 << 24);
    while let Some(chunk) = server.poll_transmit() {
        dec.push(&chunk);
    }
    let mut out = Vec::new();
    while let Some(frame) = dec.next_frame().unwrap() {
        out.push(multilevel_proto::message::decode(&frame).unwrap());
    }
    out
}

#[test]
fn a_server_answers_conditions_from_a_client_that_did_not_announce_them_with_unsupported() {
    let now = Instant::now();
    for (features, expect_unsupported) in [(0, true), (FEATURE_CONDITIONS, false)] {
        let mut server = ServerConnection::new(ServerConfig::default(), now);
        let mut input = BytesMut::new();
        let hello = ClientHello { magic: MAGIC, version: PROTOCOL_VERSION, features, session: 9, max_frame: 1 << 20 };
        encode(&ClientMessage::Hello(hello), &mut input);
        encode(&ClientMessage::Increment { id: 1, key: b("n"), by: 1 }, &mut input);
        server.handle_input(&input, now).unwrap();
        let messages = server_messages(&mut server);
        let ServerMessage::Hello(hello) = &messages[0] else { panic!("{messages:?}") };
        assert_eq!(hello.features, features, "the server answers the features both sides have");
        let unsupported = messages
            .iter()
            .any(|m| matches!(m, ServerMessage::Error { id: 1, error } if error.code == ErrorCode::Unsupported));
        assert_eq!(unsupported, expect_unsupported, "{messages:?}");
        assert!(!server.is_closed(), "the connection lives on");
    }
}

#[test]
fn a_client_refuses_conditions_for_a_server_that_did_not_announce_them() {
    let now = Instant::now();
    let mut client = Client::new(ClientConfig::new(3).with_retry(true), now);
    // Issued before any connection: it waits, then fails once the server's hello shows.
    let early = client.issue(Request::increment("n", 1), now).unwrap();
    client.handle_connected(now);
    let mut hello_bytes = Vec::new();
    while let Some(chunk) = client.poll_transmit() {
        hello_bytes.extend_from_slice(&chunk);
    }
    let mut dec = multilevel_proto::FrameDecoder::new(1 << 20);
    dec.push(&hello_bytes);
    let Ok(ClientMessage::Hello(hello)) = multilevel_proto::message::decode(&dec.next_frame().unwrap().unwrap()) else {
        panic!("the client starts with its hello")
    };
    assert_eq!(hello.features & FEATURE_CONDITIONS, FEATURE_CONDITIONS, "the client announces conditions");
    let old_server = ServerHello {
        magic: MAGIC,
        version: PROTOCOL_VERSION,
        features: 0,
        max_frame: 1 << 20,
        max_key_size: 1024,
        max_in_flight: 16,
        max_iterators: 4,
        readonly: false,
    };
    let mut out = BytesMut::new();
    encode(&ServerMessage::Hello(old_server), &mut out);
    client.handle_input(&out, now).unwrap();
    let mut early_answer = None;
    while let Some(event) = client.poll_event() {
        if let multilevel_proto::ClientEvent::Response { id, result } = event {
            assert_eq!(id, early);
            early_answer = Some(result);
        }
    }
    let Some(Err(RequestError::Remote(error))) = early_answer else { panic!("{early_answer:?}") };
    assert_eq!(error.code, ErrorCode::Unsupported);
    let conditional = Request::Conditional { conditions: vec![], ops: vec![] };
    assert!(matches!(client.issue(conditional, now), Err(IssueError::Unsupported(_))));
    assert!(client.issue(Request::put("k", "v"), now).is_ok(), "plain writes still go");
}
