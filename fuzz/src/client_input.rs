//! Target `client_input`: a `Client` (retry off) that issued some requests and opened
//! iterators, given a valid `ServerHello` frame and then arbitrary bytes in arbitrary chunks,
//! reading its iterators between chunks; at the end the connection is declared lost.
//!
//! Input: [`HEADER_LEN`] control bytes (the hello's limits, which requests and iterators,
//! window, chunk sizes, what to do between chunks), then the bytes after the server hello.
//! Checked:
//! - no panic; every output frame decodes as a `ClientMessage`; the first is the hello;
//!   request frames carry strictly increasing ids of issued requests and respect the limits
//!   the server announced; iterator frames name opened iterators;
//! - every `Response` is for an issued request, at most once; after `handle_disconnected`
//!   every issued request has exactly one (requests and iterators issued after the connection
//!   was lost wait for the next: one is brought up and lost too), nothing is pending, one `Disconnected`
//!   event was emitted per connection, and every iterator drains to `End` or an error, never `Pending`, yielding no
//!   more entries than its limit.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use multilevel_proto::message::{MAGIC, encode, encoded_len};
use multilevel_proto::{
    BatchOp, Client, ClientConfig, ClientEvent, ClientMessage, Condition, IterOptions, IterPoll, KeyRange,
    PROTOCOL_VERSION, Request, ServerHello, ServerMessage,
};

use crate::{Header, OutputReader, chunks};

/// Bytes of control at the front of an input.
pub const HEADER_LEN: usize = 9;
/// The client's session.
pub const SESSION: u64 = 0x5eed;

const MAX_FRAMES: [u32; 4] = [1 << 20, 16, 64, 256];
const MAX_KEYS: [u32; 4] = [1024, 0, 2, 8];
const WINDOWS: [u64; 4] = [256 << 10, 1, 16, 100];
const LIMITS: [Option<u64>; 4] = [None, Some(0), Some(1), Some(3)];

fn b(bytes: &[u8]) -> Bytes {
    Bytes::copy_from_slice(bytes)
}

/// The requests bits 0..7 of a control byte select, in issue order; bit 7 selects a
/// conditional write and an increment.
pub fn requests(mask: u8) -> Vec<Request> {
    let all = [
        Request::Get { key: b(b"k") },
        Request::GetMany { keys: vec![b(b"a"), b(b""), b(&[0xff; 3])] },
        Request::Put { key: b(b"k"), value: b(b"value") },
        Request::Del { key: b(&[1, 2, 3]) },
        Request::Batch { ops: vec![BatchOp::Put { key: b(b"x"), value: b(b"") }, BatchOp::Del { key: b(b"y") }] },
        Request::Clear { range: KeyRange::all().gte(b"a").lt(b"m"), reverse: true, limit: Some(2) },
        Request::Stats,
    ];
    let mut all: Vec<Request> = all.into();
    all.push(Request::Conditional {
        conditions: vec![Condition::absent(b"k"), Condition::equals([0xff], b"v")],
        ops: vec![BatchOp::Put { key: b(b"k"), value: b(b"1") }],
    });
    // Bit 7 issues the conditional write and an increment.
    if mask & 0x80 != 0 {
        all.push(Request::Increment { key: b(b"n"), by: -1 });
        return all.into_iter().enumerate().filter(|(i, _)| *i >= 7 || mask & (1 << i) != 0).map(|(_, r)| r).collect();
    }
    all.into_iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, r)| r).collect()
}

/// The server hello the input starts with.
pub fn hello(max_frame: u32, max_key_size: u32) -> ServerHello {
    ServerHello {
        magic: MAGIC,
        version: PROTOCOL_VERSION,
        features: multilevel_proto::FEATURE_CONDITIONS,
        max_frame,
        max_key_size,
        max_in_flight: 4,
        max_iterators: 4,
        readonly: false,
    }
}

struct Harness {
    client: Client,
    now: Instant,
    issued: BTreeSet<u64>,
    answers: BTreeMap<u64, usize>,
    iterators: BTreeMap<u64, Iter>,
    /// Every iterator id handed out, closed ones included.
    opened: BTreeSet<u64>,
    disconnects: usize,
    output: OutputReader<ClientMessage>,
    checked: usize,
    last_request: u64,
    server: Option<ServerHello>,
    /// The next output message starts a connection.
    expect_hello: bool,
    /// The next output message is the token, right behind the hello.
    expect_auth: bool,
    /// Something was issued, opened or sought after the connection was lost: it waits for the
    /// next connection.
    waiting: bool,
}

struct Iter {
    limit: Option<u64>,
    yielded: u64,
}

impl Harness {
    fn issue(&mut self, request: Request) {
        self.waiting |= self.disconnects > 0;
        if let Ok(id) = self.client.issue(request, self.now) {
            assert!(self.issued.insert(id), "id {id} handed out twice");
            assert!(!self.iterators.contains_key(&id), "id {id} handed out twice");
        }
    }

    fn open(&mut self, options: IterOptions) {
        let limit = options.limit;
        self.waiting |= self.disconnects > 0;
        if let Ok(id) = self.client.open_iterator(options) {
            assert!(!self.issued.contains(&id), "id {id} handed out twice");
            assert!(self.opened.insert(id), "id {id} handed out twice");
            self.iterators.insert(id, Iter { limit, yielded: 0 });
        }
    }

    /// Drains events and output, checking both.
    fn drain(&mut self) {
        while let Some(event) = self.client.poll_event() {
            match event {
                ClientEvent::Response { id, .. } => {
                    assert!(self.issued.contains(&id), "a response for {id}, which was not issued");
                    let count = self.answers.entry(id).or_default();
                    *count += 1;
                    assert_eq!(*count, 1, "request {id} answered twice");
                }
                ClientEvent::Disconnected(_) => self.disconnects += 1,
                ClientEvent::Connected(hello) => self.server = Some(hello),
                ClientEvent::IteratorReadable { id } => {
                    assert!(self.opened.contains(&id), "readable event for unknown iterator {id}");
                }
                _ => {}
            }
        }
        while let Some(bytes) = self.client.poll_transmit() {
            self.output.read(&bytes);
        }
        while self.checked < self.output.messages.len() {
            let msg = &self.output.messages[self.checked];
            self.checked += 1;
            if std::mem::take(&mut self.expect_hello) {
                let ClientMessage::Hello(hello) = msg else { panic!("first message {msg:?} is not a hello") };
                // Retry is off: the client never replays, so it presents no session of its own.
                let session = multilevel_proto::NO_REPLAY_SESSION;
                assert_eq!((hello.magic, hello.version, hello.session), (MAGIC, PROTOCOL_VERSION, session));
                self.expect_auth = true;
                continue;
            }
            if std::mem::take(&mut self.expect_auth) {
                assert!(matches!(msg, ClientMessage::Auth { .. }), "{msg:?} instead of the token after the hello");
                continue;
            }
            let request_id = match msg {
                ClientMessage::Hello(_) => panic!("a second hello on one connection"),
                ClientMessage::Goodbye(_) => panic!("a goodbye though close() was not called"),
                ClientMessage::Auth { .. } => panic!("a token not right behind the hello"),
                ClientMessage::Ping { .. } | ClientMessage::Pong { .. } => None,
                ClientMessage::IterOpen { id, .. }
                | ClientMessage::IterCredit { id, .. }
                | ClientMessage::IterSeek { id, .. }
                | ClientMessage::IterClose { id } => {
                    assert!(self.opened.contains(id), "{msg:?} names no iterator");
                    None
                }
                ClientMessage::Watch { .. } | ClientMessage::WatchCredit { .. } | ClientMessage::WatchClose { .. } => {
                    panic!("{msg:?}, but this client started no watch")
                }
                ClientMessage::Get { id, .. }
                | ClientMessage::GetMany { id, .. }
                | ClientMessage::Put { id, .. }
                | ClientMessage::Del { id, .. }
                | ClientMessage::Batch { id, .. }
                | ClientMessage::Clear { id, .. }
                | ClientMessage::Conditional { id, .. }
                | ClientMessage::Increment { id, .. }
                | ClientMessage::Stats { id } => Some(*id),
            };
            let Some(id) = request_id else { continue };
            let server = self.server.as_ref().expect("a request sent before the server's hello");
            if matches!(msg, ClientMessage::Conditional { .. } | ClientMessage::Increment { .. }) {
                let features = server.features & multilevel_proto::FEATURE_CONDITIONS;
                assert_ne!(features, 0, "{msg:?} sent to a server that did not announce conditions");
            }
            assert!(self.issued.contains(&id), "{msg:?} was not issued");
            assert!(id > self.last_request, "request id {id} after {}: the server would hang up", self.last_request);
            self.last_request = id;
            let len = encoded_len(msg);
            assert!(len <= server.max_frame as usize, "{msg:?} is {len} bytes, over the server's max_frame");
            let keys: Vec<&Bytes> = match msg {
                ClientMessage::Get { key, .. }
                | ClientMessage::Put { key, .. }
                | ClientMessage::Del { key, .. }
                | ClientMessage::Increment { key, .. } => vec![key],
                ClientMessage::Conditional { conditions, ops, .. } => {
                    conditions.iter().map(|c| c.key()).chain(ops.iter().map(BatchOp::key)).collect()
                }
                ClientMessage::GetMany { keys, .. } => keys.iter().collect(),
                ClientMessage::Batch { ops, .. } => ops.iter().map(BatchOp::key).collect(),
                _ => vec![],
            };
            for key in keys {
                assert!(key.len() <= server.max_key_size as usize, "{msg:?} has a key over the server's maximum");
            }
        }
    }

    fn read_iterators(&mut self, n: usize) {
        let ids: Vec<u64> = self.iterators.keys().copied().collect();
        for id in ids {
            for _ in 0..n {
                match self.client.iterator_next(id) {
                    IterPoll::Entry(_) => {
                        let iter = self.iterators.get_mut(&id).expect("known");
                        iter.yielded += 1;
                        if let Some(limit) = iter.limit {
                            assert!(iter.yielded <= limit, "iterator {id} yielded more than its limit {limit}");
                        }
                    }
                    _ => break,
                }
            }
        }
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let (mut h, stream) = Header::split(data, HEADER_LEN);
    let mut server_hello = hello(h.pick(&MAX_FRAMES), h.pick(&MAX_KEYS));
    let mask = h.byte();
    let shape = h.byte();
    let window = h.pick(&WINDOWS);
    let between = h.byte();
    let sizes = [h.byte(), h.byte(), h.byte()];

    let reads = usize::from(between & 0x0f);
    let advance = between & 0x10 != 0;
    let issue_later = between & 0x20 != 0;
    if between & 0x80 != 0 {
        // A server that does not offer conditions: those requests fail, none goes out.
        server_hello.features = 0;
    }
    let seek_later = shape & 0x40 != 0;
    let close_later = shape & 0x80 != 0;
    let (keys, values) = [(true, true), (true, false), (false, true), (true, true)][usize::from((shape >> 3) & 3)];
    let options = IterOptions {
        range: KeyRange::all(),
        reverse: shape & 1 != 0,
        limit: LIMITS[usize::from((shape >> 1) & 3)],
        keys,
        values,
    };

    let now = Instant::now();
    let mut config = ClientConfig::new(SESSION).with_retry(false);
    config.iterator_window = window;
    config.max_pending = 16;
    let mut t = Harness {
        client: Client::new(config, now),
        now,
        issued: BTreeSet::new(),
        answers: BTreeMap::new(),
        iterators: BTreeMap::new(),
        opened: BTreeSet::new(),
        disconnects: 0,
        output: OutputReader::new(u32::MAX),
        checked: 0,
        last_request: 0,
        server: None,
        expect_hello: true,
        expect_auth: false,
        waiting: false,
    };
    t.client.handle_connected(now);
    for request in requests(mask) {
        t.issue(request);
    }
    t.open(options.clone());
    if shape & 0x20 != 0 {
        t.open(IterOptions { range: KeyRange::all().gt(b"a").lte(b"z"), reverse: !options.reverse, ..options.clone() });
    }
    t.drain();
    assert_eq!(t.output.messages.len(), 2, "only the hello and token go out before the server answers");

    let mut input = BytesMut::new();
    encode(&ServerMessage::Hello(server_hello), &mut input);
    input.extend_from_slice(stream);
    for (i, chunk) in chunks(&input, &sizes).into_iter().enumerate() {
        let connected = t.client.is_connected();
        let before = t.disconnects;
        let result = t.client.handle_input(chunk, t.now);
        t.drain();
        if result.is_err() {
            assert!(!t.client.is_connected());
            assert_eq!(t.disconnects, before + 1, "an input error without a Disconnected event");
        }
        if connected && !t.client.is_connected() {
            assert_eq!(t.disconnects, before + 1, "lost the connection without a Disconnected event");
        }
        t.read_iterators(reads);
        if i == 1 {
            let first = t.iterators.keys().next().copied();
            if issue_later {
                t.issue(Request::Put { key: b(b"later"), value: b(&[7; 40]) });
                t.issue(Request::Get { key: b(b"later") });
                t.open(IterOptions { limit: Some(2), ..IterOptions::default() });
            }
            if let (true, Some(id)) = (seek_later, first) {
                // After the connection was lost, a seek revives the iterator for the next one.
                t.waiting |= t.disconnects > 0;
                t.client.seek(id, b(b"m"));
            }
            if let (true, Some(id)) = (close_later, first) {
                t.client.close_iterator(id);
                t.iterators.remove(&id);
            }
        }
        if advance {
            t.now += Duration::from_secs(11);
            t.client.handle_timeout(t.now);
        }
        t.drain();
    }

    t.client.handle_disconnected(t.now);
    t.drain();
    let mut connections = 1;
    if t.waiting {
        // Requests and iterators issued after the connection was lost wait for the next one:
        // bring one up and lose it before the handshake, which fails them.
        connections += 1;
        t.expect_hello = true;
        t.last_request = 0;
        t.server = None;
        t.client.handle_connected(t.now);
        t.drain();
        t.client.handle_disconnected(t.now);
        t.drain();
    }
    assert_eq!(t.disconnects, connections, "{connections} connections, {} Disconnected events", t.disconnects);
    assert_eq!(t.client.pending(), 0, "requests still pending after the connection was lost");
    let unanswered: Vec<&u64> = t.issued.iter().filter(|id| !t.answers.contains_key(id)).collect();
    assert!(unanswered.is_empty(), "requests {unanswered:?} never answered");
    let ids: Vec<u64> = t.iterators.keys().copied().collect();
    for id in ids {
        loop {
            match t.client.iterator_next(id) {
                IterPoll::Entry(_) => {
                    let iter = t.iterators.get_mut(&id).expect("known");
                    iter.yielded += 1;
                    if let Some(limit) = iter.limit {
                        assert!(iter.yielded <= limit, "iterator {id} yielded more than its limit {limit}");
                    }
                }
                IterPoll::End | IterPoll::Error(_) => break,
                IterPoll::Pending => panic!("iterator {id} still pending after the connection was lost"),
            }
        }
    }
    t.drain();
}
