//! Who may do what, on the deterministic simulation: tokens, read-only tokens, and tokens
//! scoped to a sublevel.

mod common;

use common::{NewNow, answer, b, drain, hello, put, transmitted};
use multilevel_proto::message::{MAGIC, encode};
use multilevel_proto::sim::{Sim, issue};
use multilevel_proto::{
    ClientConfig, ClientMessage, Condition, ErrorCode, IterOptions, IterPoll, KeyRange, PROTOCOL_VERSION, Request,
    RequestError, Response, ServerConfig, ServerConnection, ServerEvent, ServerMessage,
};

fn with_tokens(token: Option<&str>) -> Sim {
    let tokens = multilevel_proto::Tokens::parse("rw 0123456789abcdef-writer\nro 0123456789abcdef-reader\n").unwrap();
    let server = ServerConfig { tokens: Some(std::sync::Arc::new(tokens)), ..ServerConfig::default() };
    let mut client = ClientConfig::new(1).with_retry(true);
    client.token = token.map(str::to_owned);
    Sim::new_now(client, server)
}

#[test]
fn a_server_with_tokens_lets_in_only_a_valid_one() {
    let mut sim = with_tokens(Some("0123456789abcdef-writer"));
    let id = issue(&mut sim, put(b"k", b"v"));
    sim.settle();
    assert_eq!(answer(&sim, id), Ok(Response::Done));

    for token in [None, Some("0123456789abcdef-wrong!")] {
        let mut sim = with_tokens(token);
        let id = issue(&mut sim, put(b"k", b"v"));
        sim.settle();
        let Err(RequestError::Unauthenticated(message)) = answer(&sim, id) else { panic!("{token:?} got in") };
        assert!(message.contains("token"), "{message}");
        assert!(!message.contains("wrong"), "the token is never echoed: {message}");
        assert!(sim.store.data().is_empty());
        assert_eq!(sim.client.pending(), 0, "refused requests fail at once, even with retry on");
    }
}

#[test]
fn a_read_only_token_cannot_write() {
    let mut sim = with_tokens(Some("0123456789abcdef-reader"));
    let write = issue(&mut sim, put(b"k", b"v"));
    let read = issue(&mut sim, Request::Get { key: b(b"k") });
    sim.settle();
    let Err(RequestError::Remote(err)) = answer(&sim, write) else { panic!("a reader wrote") };
    assert_eq!(err.code, ErrorCode::ReadOnly);
    assert_eq!(answer(&sim, read), Ok(Response::Value(None)));
    assert!(sim.client.server().unwrap().readonly, "the handshake says the connection is read-only");
}

fn with_scoped_token() -> Sim {
    let list = "rw 0123456789abcdef-admin\nrw 0123456789abcdef-users sublevel=users\n";
    let tokens = multilevel_proto::Tokens::parse(list).unwrap();
    let server = ServerConfig { tokens: Some(std::sync::Arc::new(tokens)), ..ServerConfig::default() };
    let mut client = ClientConfig::new(1).with_retry(true);
    client.token = Some("0123456789abcdef-users".to_owned());
    Sim::new_now(client, server)
}

fn out_of_scope(result: Result<Response, RequestError>) -> String {
    let Err(RequestError::Remote(err)) = result else { panic!("not refused: {result:?}") };
    assert_eq!(err.code, ErrorCode::OutOfScope, "{}", err.message);
    assert!(err.message.contains("limited to the sublevel users"), "{}", err.message);
    err.message
}

#[test]
fn a_scoped_token_works_inside_its_sublevel_and_is_refused_outside() {
    use multilevel_proto::{BatchOp, SublevelPrefix};
    let users = SublevelPrefix::root().sublevel("users");
    let mut sim = with_scoped_token();
    // Inside: answered normally, nested sublevels included.
    let inside = [
        users.request(put(b"a", b"1")),
        users.sublevel("admins").request(put(b"b", b"2")),
        users.request(Request::Get { key: b(b"a") }),
        users.request(Request::Clear { range: KeyRange::all().gte("z"), reverse: false, limit: None }),
        Request::Stats,
        users.request(Request::Increment { key: b(b"n"), by: 2 }),
        users.request(Request::Conditional {
            conditions: vec![Condition::absent("m")],
            ops: vec![BatchOp::Put { key: b(b"m"), value: b(b"4") }],
        }),
    ];
    let ids: Vec<u64> = inside.into_iter().map(|request| issue(&mut sim, request)).collect();
    sim.settle();
    for id in &ids {
        assert!(answer(&sim, *id).is_ok(), "{:?}", answer(&sim, *id));
    }
    assert_eq!(answer(&sim, ids[2]), Ok(Response::Value(Some(b(b"1")))));
    let iter = sim.client.open_iterator(users.iter_options(IterOptions::default())).unwrap();
    let keys = vec![b(b"!users!!admins!b"), b(b"!users!a"), b(b"!users!m"), b(b"!users!n")];
    assert_eq!(drain(&mut sim, iter), (keys, IterPoll::End));

    // Outside: refused, each with the key or range named, and nothing written.
    let before = sim.store.data().clone();
    let sibling = SublevelPrefix::root().sublevel("usersx");
    let outside = [
        put(b"a", b"x"),
        Request::Get { key: b(b"!users") },
        Request::Del { key: b(b"!users\"") },
        sibling.request(Request::Get { key: b(b"a") }),
        Request::GetMany { keys: vec![users.key("a"), b(b"a")] },
        Request::Batch {
            ops: vec![BatchOp::Put { key: users.key("c"), value: b(b"3") }, BatchOp::Del { key: b(b"a") }],
        },
        Request::Clear { range: KeyRange::all(), reverse: false, limit: None },
        Request::Clear { range: KeyRange::all().gte("!users!"), reverse: true, limit: Some(1) },
        Request::Increment { key: b(b"n"), by: 1 },
        // A condition reads its key (and a failed one would answer its value), even with every
        // op inside.
        Request::Conditional {
            conditions: vec![Condition::equals("secret", "guess")],
            ops: vec![BatchOp::Put { key: users.key("c"), value: b(b"3") }],
        },
        Request::Conditional {
            conditions: vec![Condition::absent(users.key("c"))],
            ops: vec![BatchOp::Put { key: b(b"c"), value: b(b"3") }],
        },
    ];
    let ids: Vec<u64> = outside.into_iter().map(|request| issue(&mut sim, request)).collect();
    sim.settle();
    let messages: Vec<String> = ids.iter().map(|id| out_of_scope(answer(&sim, *id))).collect();
    assert!(messages[0].contains("the key \"a\" is outside it"), "{}", messages[0]);
    assert!(messages[5].contains("the key \"a\""), "the batch names the op outside: {}", messages[5]);
    assert!(messages[6].contains("clear's range (start..end) reaches outside it"), "{}", messages[6]);
    assert!(messages[9].contains("the key \"secret\""), "{}", messages[9]);
    assert_eq!(sim.store.data(), &before, "no refused write was applied, not even a batch's op inside");

    let iter = sim.client.open_iterator(IterOptions::default()).unwrap();
    sim.settle();
    let IterPoll::Error(err) = sim.iterator_next(iter) else { panic!("an iterator over everything opened") };
    out_of_scope(Err(err));
    let reverse = IterOptions { reverse: true, range: KeyRange::all().lte("!users!z"), ..IterOptions::default() };
    let iter = sim.client.open_iterator(reverse).unwrap();
    sim.settle();
    let IterPoll::Error(err) = sim.iterator_next(iter) else { panic!("an iterator from the start opened") };
    out_of_scope(Err(err));
    // The connection lives on.
    let id = issue(&mut sim, users.request(Request::Get { key: b(b"a") }));
    sim.settle();
    assert_eq!(answer(&sim, id), Ok(Response::Value(Some(b(b"1")))));
}

#[test]
fn a_seek_outside_the_scope_fails_the_iterator_and_reads_nothing() {
    use multilevel_proto::SublevelPrefix;
    let users = SublevelPrefix::root().sublevel("users");
    let now = std::time::Instant::now();
    let tokens = multilevel_proto::Tokens::parse("ro 0123456789abcdef-users sublevel=users\n").unwrap();
    let config = ServerConfig { tokens: Some(std::sync::Arc::new(tokens)), ..ServerConfig::default() };
    let mut server = ServerConnection::new(config, now);
    let mut out = hello(PROTOCOL_VERSION, MAGIC);
    encode(&ClientMessage::Auth { token: "0123456789abcdef-users".to_owned() }, &mut out);
    let options = users.iter_options(IterOptions::default());
    encode(&ClientMessage::IterOpen { id: 1, options, credit: 1 << 16 }, &mut out);
    // A hand-made seek: a client clips seeks to its iterator's range, a hostile one may not.
    let range = KeyRange::all().gte("!users");
    encode(&ClientMessage::IterSeek { id: 1, epoch: 1, range, limit: None, credit: 1 << 16 }, &mut out);
    server.handle_input(&out, now).unwrap();
    let events: Vec<ServerEvent> = std::iter::from_fn(|| server.poll_event()).collect();
    // The open is still in flight: its snapshot is released once taken, not before.
    assert!(matches!(events[..], [ServerEvent::Store { .. }]), "{events:?}");
    let ServerEvent::Store { op, .. } = events[0].clone() else { unreachable!() };
    server.handle_outcome(op, Ok(multilevel_proto::Outcome::IteratorOpened), now).unwrap();
    let events: Vec<ServerEvent> = std::iter::from_fn(|| server.poll_event()).collect();
    assert!(events.iter().any(|event| matches!(event, ServerEvent::CloseIterator { iterator: 1 })), "{events:?}");
    assert!(
        events.iter().all(|event| !matches!(
            event,
            ServerEvent::Store { request: multilevel_proto::StoreRequest::ReadBatch(_), .. }
        )),
        "nothing is read for a refused seek: {events:?}"
    );
    let messages = transmitted(&mut server);
    let [ServerMessage::Hello(_), ServerMessage::IterError { id: 1, error }] = &messages[..] else {
        panic!("{messages:?}")
    };
    assert_eq!(error.code, ErrorCode::OutOfScope);
    assert!(error.message.contains("seek's range [\"!users\"..end) reaches outside it"), "{}", error.message);
    assert!(!server.is_closed());
}

#[test]
fn a_scoped_token_watches_inside_its_sublevel_and_a_read_only_token_may_watch() {
    use multilevel_proto::{Change, SublevelPrefix, WatchOptions, WatchPoll};
    let users = SublevelPrefix::root().sublevel("users");
    let mut sim = with_scoped_token();
    sim.settle();
    let outside = sim.client.open_watch(WatchOptions::new()).unwrap();
    let inside = sim.client.open_watch_in(&users, WatchOptions::new()).unwrap();
    sim.settle();
    let write = issue(&mut sim, users.request(put(b"a", b"1")));
    sim.settle();
    assert_eq!(answer(&sim, write), Ok(Response::Done));
    let Err(RequestError::Remote(err)) = sim.watch_events(outside, 1) else { panic!("a watch of everything") };
    assert_eq!(err.code, ErrorCode::OutOfScope, "{}", err.message);
    let events = sim.watch_events(inside, 1).unwrap();
    assert_eq!(events[0].change, Change::Put { key: b(b"a"), value: b(b"1") }, "the sublevel's key");

    let mut sim = with_tokens(Some("0123456789abcdef-reader"));
    sim.settle();
    let watch = sim.client.open_watch(WatchOptions::new().after(0)).unwrap();
    sim.settle();
    assert!(matches!(sim.client.watch_next(watch), WatchPoll::Pending), "a reader's watch is open and waits");
}
