//! Target `server_input`: a `ServerConnection` with small limits, given a valid client hello
//! and then arbitrary bytes in arbitrary chunks, its store requests run against a
//! `MemoryStore` (writes possibly deferred, outcomes possibly out of order).
//!
//! Input: [`HEADER_LEN`] control bytes (limits, tokens, scheduling policy, chunk sizes), then
//! the bytes that follow the hello and token. Checked:
//! - no panic; every output frame decodes as a `ServerMessage` and fits the `max_frame` of the
//!   client's hello; the first is the server hello announcing the configured limits;
//! - an error from `handle_input`/`handle_outcome` leaves the connection closed with that error,
//!   and its last output is a goodbye with the matching reason; nothing is sent after a goodbye;
//! - every answer is for a request the client sent (decoded here independently), of the right
//!   kind, and no request is answered twice; iterator messages name iterators the client opened;
//!   no more pongs than pings;
//! - at quiescence an open connection has nothing in flight, wants input, and has answered every
//!   request it received;
//! - the connection never holds more store snapshots than `max_iterators`, and holds none once
//!   closed (after an error, a client goodbye, an idle timeout or `close`);
//! - with a token scoped to a sublevel, no store request reaches a key or range outside it and
//!   no iterator entry or watch event comes from outside it;
//! - watch messages name watches the client started; each watch's events and cursors only move
//!   forward; once closed, the connection has no watch read waiting in the store.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use multilevel_proto::message::{ClientHello, MAGIC, decode, encode};
use multilevel_proto::store::WriteRequest;
use multilevel_proto::{
    ClientMessage, Cursor, FrameDecoder, GoodbyeReason, MemorySnapshots, MemoryStore, OpId, Outcome, PROTOCOL_VERSION,
    ServerConfig, ServerConnection, ServerError, ServerEvent, ServerMessage, StoreError, StoreRequest, SublevelPrefix,
    Tokens, WriteOp,
};

use crate::{Header, OutputReader, chunks};

/// Bytes of control at the front of an input.
pub const HEADER_LEN: usize = 10;
/// The client's session.
pub const SESSION: u64 = 7;
/// The session that filled the store before the connection came up.
const FILL_SESSION: u64 = 1 << 63;

const MAX_FRAMES: [u32; 5] = [65536, 32, 64, 256, 1024];
const MAX_KEYS: [u32; 6] = [1024, 0, 1, 4, 16, 64];
const MAX_IN_FLIGHT: [u32; 5] = [4, 1, 2, 3, 8];
const MAX_ITERATORS: [u32; 5] = [3, 0, 1, 2, 64];
const HIGH_WATER: [usize; 5] = [1 << 20, 1, 16, 256, 4096];

/// What the client sent, decoded independently of the server.
#[derive(Debug, Default)]
struct Sent {
    /// Request id -> what an answer to it may be.
    requests: BTreeMap<u64, Kind>,
    /// Ids of `IterOpen`s.
    iterators: BTreeSet<u64>,
    /// Ids of `Watch`es.
    watches: BTreeSet<u64>,
    pings: usize,
    goodbye: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Get,
    GetMany(usize),
    Write,
    Stats,
    Conditional,
    Increment,
}

fn decode_sent(stream: &[u8], max_frame: u32) -> Sent {
    let mut sent = Sent::default();
    let mut dec = FrameDecoder::new(max_frame);
    dec.push(stream);
    let mut last_id = 0;
    let _hello = dec.next_frame();
    let _auth = dec.next_frame();
    while let Ok(Some(frame)) = dec.next_frame() {
        let Ok(msg) = decode::<ClientMessage>(&frame) else { break };
        let (id, kind) = match msg {
            ClientMessage::Hello(_) => break,
            ClientMessage::Goodbye(_) => {
                sent.goodbye = true;
                break;
            }
            ClientMessage::Ping { .. } => {
                sent.pings += 1;
                continue;
            }
            ClientMessage::IterOpen { id, .. } => {
                sent.iterators.insert(id);
                continue;
            }
            ClientMessage::Watch { id, .. } => {
                sent.watches.insert(id);
                continue;
            }
            ClientMessage::WatchCredit { .. } | ClientMessage::WatchClose { .. } => continue,
            ClientMessage::Pong { .. }
            | ClientMessage::Auth { .. }
            | ClientMessage::IterCredit { .. }
            | ClientMessage::IterSeek { .. }
            | ClientMessage::IterClose { .. } => continue,
            ClientMessage::Get { id, .. } => (id, Kind::Get),
            ClientMessage::GetMany { id, keys } => (id, Kind::GetMany(keys.len())),
            ClientMessage::Put { id, .. }
            | ClientMessage::Del { id, .. }
            | ClientMessage::Batch { id, .. }
            | ClientMessage::Clear { id, .. } => (id, Kind::Write),
            ClientMessage::Conditional { id, .. } => (id, Kind::Conditional),
            ClientMessage::Increment { id, .. } => (id, Kind::Increment),
            ClientMessage::Stats { id } => (id, Kind::Stats),
        };
        if id <= last_id {
            break; // the server closes here
        }
        last_id = id;
        sent.requests.insert(id, kind);
    }
    sent
}

/// A read-write and a read-only token, for servers that require one.
pub const RW_TOKEN: &str = "rw-token-0123456789";
/// See [`RW_TOKEN`].
pub const RO_TOKEN: &str = "ro-token-0123456789";
/// A read-write token scoped to the sublevel `a` (keys starting with `!a!`).
pub const SCOPED_TOKEN: &str = "scoped-token-0123456789";

/// The hello and the token the client sends first, as `Client` does; `decode_sent` skips them.
pub fn hello_frames(max_frame: u32, token: &str) -> BytesMut {
    let mut out = BytesMut::new();
    let features = multilevel_proto::FEATURE_CONDITIONS | multilevel_proto::FEATURE_WATCH;
    let hello = ClientHello { magic: MAGIC, version: PROTOCOL_VERSION, features, session: SESSION, max_frame };
    encode(&ClientMessage::Hello(hello), &mut out);
    encode(&ClientMessage::Auth { token: token.to_owned() }, &mut out);
    out
}

/// Whether every key and range of `request` lies in `scope`.
fn within(scope: &SublevelPrefix, request: &StoreRequest) -> bool {
    match request {
        StoreRequest::Get { key } => scope.contains_key(key),
        StoreRequest::GetMany { keys } => keys.iter().all(|key| scope.contains_key(key)),
        StoreRequest::Write(write) => match &write.op {
            WriteOp::Put { key, .. } | WriteOp::Del { key } => scope.contains_key(key),
            WriteOp::Batch(ops) => ops.iter().all(|op| scope.contains_key(op.key())),
            WriteOp::Clear { range, .. } => scope.contains_range(range),
            WriteOp::Conditional { conditions, ops } => {
                conditions.iter().all(|c| scope.contains_key(c.key()))
                    && ops.iter().all(|op| scope.contains_key(op.key()))
            }
            WriteOp::Increment { key, .. } => scope.contains_key(key),
        },
        StoreRequest::ReadBatch(read) => scope.contains_range(&read.range),
        StoreRequest::ReadChanges(read) => scope.contains_range(&read.range),
        _ => true,
    }
}

/// Keys in the store before the connection comes up (other than the client's writes).
pub fn fill_keys() -> Vec<(&'static [u8], Vec<u8>)> {
    vec![
        (b"", b"empty".to_vec()),
        (b"!a!", b"scoped".to_vec()),
        (b"!a!!b!c", b"nested".to_vec()),
        (b"!a\"", b"past the scope".to_vec()),
        (&[0], b"zero".to_vec()),
        (&[1], b"one".to_vec()),
        (&[1, 0], b"one-zero".to_vec()),
        (b"a", vec![b'a'; 100]),
        (b"b", b"bee".to_vec()),
        (b"k", b"v".to_vec()),
        (&[0xff], vec![]),
    ]
}

#[derive(Debug, Clone, Copy)]
struct Policy {
    defer_writes: bool,
    lifo: bool,
    outcomes_per_step: usize,
    steps_between_chunks: usize,
    idle_at_end: bool,
    close_early: bool,
}

struct Harness {
    config: ServerConfig,
    /// Whether the connection refuses writes: the server is read-only or the token is.
    readonly: bool,
    /// The sublevel the token is scoped to (the root when it is not).
    scope: SublevelPrefix,
    policy: Policy,
    server: ServerConnection,
    store: MemoryStore,
    snapshots: MemorySnapshots,
    /// Iterator ids with a snapshot in `snapshots` (which does not list them).
    snapshot_ids: BTreeSet<u64>,
    now: Instant,
    ready: VecDeque<(OpId, Result<Outcome, StoreError>)>,
    writes: VecDeque<(OpId, StoreRequest)>,
    /// Watch reads waiting for a commit: `(watch, op, from)`.
    waiting: Vec<(u64, OpId, Cursor)>,
    /// Each watch's cursor as its messages last said.
    cursors: BTreeMap<u64, Cursor>,
    output: OutputReader<ServerMessage>,
    checked: usize,
    answered: BTreeSet<u64>,
    goodbye: Option<GoodbyeReason>,
    error: Option<ServerError>,
    sent: Sent,
    pongs: usize,
}

impl Harness {
    fn on_result(&mut self, result: Result<(), ServerError>) {
        if let Err(err) = result {
            assert!(self.server.is_closed(), "error {err} but the connection is not closed");
            assert_eq!(self.server.error(), Some(&err), "error() differs from the returned error");
            if self.error.is_none() {
                self.error = Some(err);
            }
        }
    }

    /// One round of work; returns whether anything happened.
    fn step(&mut self, outcomes: usize) -> bool {
        let mut progress = false;
        while let Some(event) = self.server.poll_event() {
            progress = true;
            if let ServerEvent::Store { request, .. } = &event {
                assert!(within(&self.scope, request), "{request:?} reached the store outside {:?}", self.scope);
            }
            match event {
                ServerEvent::Store { op, request } if request.is_write() && self.policy.defer_writes => {
                    self.writes.push_back((op, request));
                }
                ServerEvent::Store { op, request: StoreRequest::ReadChanges(read) } => {
                    // A read with nothing new waits for a commit, as a real backend's does.
                    match self.store.read_changes(&read) {
                        Ok(None) => self.waiting.push((read.watch, op, read.from)),
                        Ok(Some(outcome)) => self.ready.push_back((op, Ok(outcome))),
                        Err(err) => self.ready.push_back((op, Err(err))),
                    }
                }
                ServerEvent::Store { op, request } => {
                    if let StoreRequest::OpenIterator { iterator } = &request {
                        self.snapshot_ids.insert(*iterator);
                    }
                    self.execute(op, request);
                }
                ServerEvent::CloseIterator { iterator } => {
                    self.snapshots.close(iterator);
                    self.snapshot_ids.remove(&iterator);
                }
                ServerEvent::CloseWatch { watch } => self.wake(|id| id == watch),
            }
            assert_eq!(self.snapshots.len(), self.snapshot_ids.len());
            assert!(
                self.snapshots.len() <= self.config.max_iterators as usize,
                "the connection holds {} snapshots (iterators {:?}) but at most {} iterators may be open",
                self.snapshots.len(),
                self.snapshot_ids,
                self.config.max_iterators
            );
        }
        for _ in 0..outcomes {
            let next = if self.policy.lifo { self.ready.pop_back() } else { self.ready.pop_front() };
            let Some((op, result)) = next else { break };
            progress = true;
            let result = self.server.handle_outcome(op, result, self.now);
            self.on_result(result);
        }
        if let Some((op, request)) = self.writes.pop_front() {
            progress = true;
            self.execute(op, request);
        }
        while let Some(bytes) = self.server.poll_transmit() {
            progress = true;
            self.output.read(&bytes);
        }
        self.check_output();
        progress
    }

    /// Runs a request; a write that committed wakes every waiting watch read.
    fn execute(&mut self, op: OpId, request: StoreRequest) {
        let head = self.store.change_log().head();
        let result = self.store.execute(&mut self.snapshots, request);
        self.ready.push_back((op, result));
        if self.store.change_log().head() != head {
            self.wake(|_| true);
        }
    }

    /// Answers the waiting watch reads `which` selects with no events, as a backend does.
    fn wake(&mut self, which: impl Fn(u64) -> bool) {
        let (woken, kept) = std::mem::take(&mut self.waiting).into_iter().partition(|(watch, ..)| which(*watch));
        self.waiting = kept;
        for (_, op, from) in woken {
            self.ready.push_back((op, Ok(Outcome::Changes { events: Vec::new(), next: from })));
        }
    }

    fn drain_output(&mut self) {
        while let Some(bytes) = self.server.poll_transmit() {
            self.output.read(&bytes);
        }
        self.check_output();
    }

    fn quiesce(&mut self) {
        for _ in 0..1_000_000 {
            if !self.step(usize::MAX) {
                return;
            }
        }
        panic!("the server never went quiet");
    }

    fn check_output(&mut self) {
        while self.checked < self.output.messages.len() {
            let i = self.checked;
            self.checked += 1;
            let msg = &self.output.messages[i];
            assert!(self.goodbye.is_none(), "{msg:?} sent after a goodbye");
            if i == 0 && !matches!(msg, ServerMessage::Goodbye(_)) {
                let ServerMessage::Hello(hello) = msg else { panic!("first message {msg:?} is not a hello") };
                assert_eq!(hello.magic, MAGIC);
                assert_eq!(hello.version, PROTOCOL_VERSION);
                assert_eq!(hello.max_frame, self.config.max_frame);
                assert_eq!(hello.max_key_size, self.config.max_key_size);
                assert_eq!(hello.max_in_flight, self.config.max_in_flight);
                assert_eq!(hello.max_iterators, self.config.max_iterators);
                assert_eq!(hello.readonly, self.readonly, "readonly in the hello");
                continue;
            }
            let (id, ok): (&u64, fn(Kind) -> bool) = match msg {
                ServerMessage::Hello(_) => panic!("a second server hello"),
                ServerMessage::Goodbye(goodbye) => {
                    self.goodbye = Some(goodbye.reason);
                    continue;
                }
                ServerMessage::Ping { .. } => panic!("the server pinged"),
                ServerMessage::Pong { .. } => {
                    self.pongs += 1;
                    assert!(self.pongs <= self.sent.pings, "more pongs than pings");
                    continue;
                }
                ServerMessage::IterData { id, entries, last_key, .. } => {
                    assert!(!entries.is_empty(), "empty IterData for {id}");
                    assert!(self.scope.contains_key(last_key), "{last_key:?} read outside {:?}", self.scope);
                    for key in entries.iter().filter_map(|entry| entry.key.as_ref()) {
                        assert!(self.scope.contains_key(key), "{key:?} read outside {:?}", self.scope);
                    }
                    assert!(self.sent.iterators.contains(id), "IterData for iterator {id}, never opened");
                    continue;
                }
                ServerMessage::WatchOpened { id, cursor } => {
                    assert!(self.sent.watches.contains(id), "{msg:?} for watch {id}, never started");
                    // A client may close a watch and start another with the same id.
                    self.cursors.insert(*id, *cursor);
                    continue;
                }
                ServerMessage::WatchData { id, events, next } => {
                    assert!(self.sent.watches.contains(id), "{msg:?} for watch {id}, never started");
                    let cursor = self.cursors.get_mut(id).unwrap_or_else(|| panic!("data before watch {id} opened"));
                    for event in events {
                        assert!(self.scope.contains_key(event.change.key()), "{event:?} outside {:?}", self.scope);
                        let at = Cursor { position: event.position, index: event.index };
                        assert!(at >= *cursor, "watch {id}: {event:?} before its cursor {cursor:?}");
                        *cursor = event.next_cursor();
                    }
                    assert!(*next >= *cursor, "watch {id} goes back to {next:?} from {cursor:?}");
                    *cursor = *next;
                    continue;
                }
                ServerMessage::WatchError { id, .. } => {
                    assert!(self.sent.watches.contains(id), "{msg:?} for watch {id}, never started");
                    continue;
                }
                ServerMessage::IterEnd { id, .. } | ServerMessage::IterError { id, .. } => {
                    assert!(self.sent.iterators.contains(id), "{msg:?} for iterator {id}, never opened");
                    continue;
                }
                ServerMessage::Value { id, .. } => (id, |k: Kind| k == Kind::Get),
                ServerMessage::Values { id, values } => {
                    let n = values.len();
                    let kind = self.sent.requests.get(id).copied();
                    assert_eq!(kind, Some(Kind::GetMany(n)), "{msg:?} answers {kind:?}");
                    (id, |_: Kind| true)
                }
                ServerMessage::Done { id } => (id, |k: Kind| matches!(k, Kind::Write | Kind::Conditional)),
                ServerMessage::ConditionFailed { id, .. } => (id, |k: Kind| k == Kind::Conditional),
                ServerMessage::Counter { id, .. } => (id, |k: Kind| k == Kind::Increment),
                ServerMessage::Stats { id, .. } => (id, |k: Kind| k == Kind::Stats),
                ServerMessage::Error { id, .. } => (id, |_: Kind| true),
            };
            let kind = self.sent.requests.get(id).copied();
            let Some(kind) = kind else { panic!("{msg:?} answers no request the client sent") };
            assert!(ok(kind), "{msg:?} answers a {kind:?}");
            assert!(self.answered.insert(*id), "request {id} answered twice");
        }
    }

    /// After an error (or any close), the last output must say goodbye, with a reason that
    /// matches the error.
    fn check_closed(&self) {
        if !self.server.is_closed() {
            return;
        }
        if let Some(err) = &self.error {
            let want = match err {
                ServerError::IdleTimeout(_) => GoodbyeReason::IdleTimeout,
                ServerError::Unauthenticated(_) => GoodbyeReason::Unauthenticated,
                ServerError::BadMagic => GoodbyeReason::BadMagic,
                ServerError::VersionMismatch { .. } => GoodbyeReason::VersionMismatch,
                _ => GoodbyeReason::ProtocolViolation,
            };
            assert_eq!(self.goodbye, Some(want), "closed by {err} without the right goodbye");
        }
        assert!(!self.server.wants_input(), "a closed connection wants input");
        assert_eq!(self.server.poll_timeout(), None, "a closed connection wants a timer");
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let (mut h, stream) = Header::split(data, HEADER_LEN);
    let batch = h.byte();
    let config = ServerConfig {
        max_frame: h.pick(&MAX_FRAMES),
        max_key_size: h.pick(&MAX_KEYS),
        max_in_flight: h.pick(&MAX_IN_FLIGHT),
        max_iterators: h.pick(&MAX_ITERATORS),
        output_high_water: h.pick(&HIGH_WATER),
        max_batch_entries: [4096, 1, 2, 3][usize::from(batch & 3)],
        max_batch_bytes: [65536, 1, 8, 64][usize::from((batch >> 2) & 3)],
        readonly: (batch >> 4) & 7 == 7,
        idle_timeout: Duration::from_secs(60),
        ..ServerConfig::default()
    };
    // Bits 4..7 of the first byte: 7 read-only server; 6, 5, 4, 3, 2 a server requiring a
    // token, given a read-write one, a read-only one, a wrong one, none, one scoped to the
    // sublevel `a`; else no tokens.
    let (mut config, token) = (config, "");
    let token = match (batch >> 4) & 7 {
        6 => RW_TOKEN,
        5 => RO_TOKEN,
        4 => "wrong-token-0123456789",
        2 => SCOPED_TOKEN,
        _ => token,
    };
    if (2..=6).contains(&((batch >> 4) & 7)) {
        let list = format!("rw {RW_TOKEN}\nro {RO_TOKEN}\nrw {SCOPED_TOKEN} sublevel=a\n");
        config.tokens = Some(Arc::new(Tokens::parse(&list).expect("valid token list")));
    }
    let scope = if token == SCOPED_TOKEN { SublevelPrefix::root().sublevel("a") } else { SublevelPrefix::root() };
    let refused = config.tokens.is_some() && ![RW_TOKEN, RO_TOKEN, SCOPED_TOKEN].contains(&token);
    let readonly = config.readonly || token == RO_TOKEN;
    // The largest frame the client accepts, from its hello: the server must not send more.
    let client_max_frame = if batch & 0x80 != 0 { 200 } else { 1 << 20 };
    let p = h.byte();
    let policy = Policy {
        defer_writes: p & 1 != 0,
        lifo: p & 2 != 0,
        outcomes_per_step: [usize::MAX, 1, 2, 3][usize::from((p >> 2) & 3)],
        steps_between_chunks: [usize::MAX, 0, 1, 3][usize::from((p >> 4) & 3)],
        idle_at_end: p & 0x40 != 0,
        close_early: p & 0x80 != 0,
    };
    let sizes = [h.byte(), h.byte(), h.byte()];

    let now = Instant::now();
    let mut store = MemoryStore::new();
    for (i, (key, value)) in fill_keys().into_iter().enumerate() {
        let op = WriteOp::Put { key: Bytes::from_static(key), value: Bytes::from(value) };
        let write = StoreRequest::Write(WriteRequest { session: FILL_SESSION, request: i as u64 + 1, op });
        store.execute(&mut MemorySnapshots::default(), write).expect("the store takes the fill");
    }
    let hello = hello_frames(client_max_frame, token);
    let mut all = hello.to_vec();
    all.extend_from_slice(stream);
    let sent = decode_sent(&all, config.max_frame);

    let mut t = Harness {
        server: ServerConnection::new(config.clone(), now),
        config,
        readonly,
        scope,
        policy,
        store,
        snapshots: MemorySnapshots::default(),
        snapshot_ids: BTreeSet::new(),
        now,
        ready: VecDeque::new(),
        writes: VecDeque::new(),
        waiting: Vec::new(),
        cursors: BTreeMap::new(),
        output: OutputReader::new(client_max_frame),
        checked: 0,
        answered: BTreeSet::new(),
        goodbye: None,
        error: None,
        sent,
        pongs: 0,
    };

    let result = t.server.handle_input(&hello, now);
    if refused {
        assert!(matches!(result, Err(ServerError::Unauthenticated(_))), "a bad token gave {result:?}");
        t.on_result(result);
        t.quiesce();
        t.check_closed();
        assert_eq!(t.goodbye, Some(GoodbyeReason::Unauthenticated));
        assert_eq!(t.output.messages.len(), 1, "more than a goodbye for a bad token");
        return;
    }
    assert_eq!(result, Ok(()), "a valid hello is refused");
    assert_eq!(t.server.session(), Some(SESSION));
    t.quiesce();
    assert!(matches!(t.output.messages.first(), Some(ServerMessage::Hello(_))), "no hello back");

    for chunk in chunks(stream, &sizes) {
        let mut steps = 0;
        while steps < policy.steps_between_chunks && t.step(policy.outcomes_per_step) {
            steps += 1;
        }
        if !t.server.wants_input() {
            t.quiesce();
            if t.server.is_closed() {
                break;
            }
            assert_eq!(t.server.in_flight(), 0, "in flight at quiescence");
            assert!(t.server.wants_input(), "an open, quiet connection does not want input");
        }
        let result = t.server.handle_input(chunk, t.now);
        t.on_result(result);
        t.drain_output();
        t.check_closed();
    }
    if policy.close_early && !t.server.is_closed() {
        t.server.close(GoodbyeReason::Shutdown, "closing early");
    }
    t.quiesce();
    t.check_closed();

    if !t.server.is_closed() {
        // Every complete frame was worked on: every request got exactly one answer.
        assert_eq!(t.server.in_flight(), 0, "in flight at quiescence");
        assert!(t.server.wants_input(), "an open, quiet connection does not want input");
        let unanswered: Vec<&u64> = t.sent.requests.keys().filter(|id| !t.answered.contains(id)).collect();
        assert!(unanswered.is_empty(), "requests {unanswered:?} never answered");
        if policy.idle_at_end {
            let deadline = t.server.poll_timeout().expect("an open connection has an idle timer");
            t.server.handle_timeout(deadline);
            assert!(t.server.is_closed(), "idle past the timeout but open");
            t.error = t.server.error().cloned();
            assert!(matches!(t.error, Some(ServerError::IdleTimeout(_))), "closed by {:?}", t.error);
        } else {
            t.server.close(GoodbyeReason::Shutdown, "done");
            t.quiesce();
            assert_eq!(t.goodbye, Some(GoodbyeReason::Shutdown), "close() said no goodbye");
        }
        t.quiesce();
        t.check_closed();
    } else if t.error.is_none() && !policy.close_early {
        assert!(t.sent.goodbye, "closed without an error, a client goodbye or close()");
    }
    assert!(t.server.poll_transmit().is_none());
    assert_eq!(t.output.buffered(), 0, "the output ends in a partial frame");
    assert!(t.snapshot_ids.is_empty(), "the closed connection still holds snapshots of iterators {:?}", t.snapshot_ids);
    assert!(t.waiting.is_empty(), "the closed connection still has watch reads waiting: {:?}", t.waiting);
}
