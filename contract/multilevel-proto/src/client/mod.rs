//! The client, as a state machine with no I/O.
//!
//! # Driving it
//!
//! ```text
//! transport came up        -> handle_connected(now)
//! connecting failed        -> handle_connect_failed(failure, now), then retry after a backoff
//! bytes arrived            -> handle_input(bytes, now)
//! transport ended          -> handle_disconnected(now)
//! timer fired              -> handle_timeout(now)
//! caller wants something   -> issue(request, now) / open_iterator / iterator_next / seek / close_iterator
//! after any of the above   -> drain poll_transmit() to the transport, drain poll_event() to callers,
//!                             and re-arm the timer with poll_timeout()
//! ClientEvent::Disconnected -> close the transport; with retry on, connect again
//! ```
//!
//! Requests issued while no transport is up wait for one. Request and iterator ids share one
//! counter and are never reused.

mod config;
mod credit;
mod error;
mod event;
mod handshake;
mod iter;
mod iterators;
mod options;
mod output;
mod request;
mod timers;
mod watch;
mod watches;

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use bytes::{Bytes, BytesMut};

pub use config::ClientConfig;
pub use error::{CallError, ConnectFailure, ConnectionError, ErrorKind, IssueError, PeerMisbehaved, RequestError};
pub use event::{ClientEvent, ConnectionState};
use handshake::{could_start_handshake_answer, goodbye_error, not_multilevel};
use iter::ClientIterator;
pub use iter::IterPoll;
pub use options::ClientOptions;
pub use request::{Request, Response};
use request::{from_message, into_message, request_message};
use watch::ClientWatch;
pub use watch::WatchPoll;
use watches::WatchMessage;

use crate::condition::{ConditionFailed, FEATURE_CONDITIONS, SUPPORTED_FEATURES};
use crate::frame::FrameDecoder;

/// Why a conditional write or an increment fails against a server that does not offer them.
const UNSUPPORTED_CONDITIONS: &str =
    "the server does not support conditional writes and increments (it did not announce them in its hello)";
use crate::message::{
    ClientHello, ClientMessage, ErrorCode, Goodbye, GoodbyeReason, IdMap, MAGIC, NO_REPLAY_SESSION, PROTOCOL_VERSION,
    RemoteError, ServerHello, ServerMessage, decode_server, direct, encoded_len,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Disconnected,
    Handshaking,
    Connected,
    Closed,
}

#[derive(Debug)]
struct PendingRequest {
    request: Request,
    deadline: Option<Instant>,
}

/// The client state machine. See the [module docs](self) for how to drive it.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    phase: Phase,
    decoder: FrameDecoder,
    out: BytesMut,
    /// Requests issued but held back from `out` (see [`release_due`](Self::release_due)).
    held: BytesMut,
    /// Frames in `held`.
    held_count: usize,
    /// Pending requests that were sent on this connection.
    sent_pending: usize,
    /// The highest request id sent on this connection.
    last_sent_id: u64,
    events: VecDeque<ClientEvent>,
    next_id: u64,
    /// Keyed by id; where order matters (replay, failing them all), ids are sorted first.
    requests: IdMap<u64, PendingRequest>,
    /// Pending requests with a deadline: when none has one, timers skip scanning `requests`.
    with_deadline: usize,
    iterators: BTreeMap<u64, ClientIterator>,
    watches: BTreeMap<u64, ClientWatch>,
    server: Option<ServerHello>,
    last_heard: Instant,
    ping_outstanding: bool,
    next_nonce: u64,
    queue_full: bool,
    /// Handshakes completed, over every transport.
    handshakes: u64,
}

impl Client {
    /// A client with no transport yet.
    pub fn new(config: ClientConfig, now: Instant) -> Self {
        Self {
            decoder: FrameDecoder::new(config.max_frame),
            config,
            phase: Phase::Disconnected,
            out: BytesMut::new(),
            held: BytesMut::new(),
            held_count: 0,
            sent_pending: 0,
            last_sent_id: 0,
            events: VecDeque::new(),
            next_id: 1,
            requests: IdMap::default(),
            with_deadline: 0,
            iterators: BTreeMap::new(),
            watches: BTreeMap::new(),
            server: None,
            last_heard: now,
            ping_outstanding: false,
            next_nonce: 0,
            queue_full: false,
            handshakes: 0,
        }
    }

    /// The settings.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Whether the handshake on the current transport has completed.
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// How many handshakes completed, over every transport so far: a connection that raised
    /// it got through to a server.
    pub fn handshakes(&self) -> u64 {
        self.handshakes
    }

    /// What the server announced in its last handshake.
    pub fn server(&self) -> Option<&ServerHello> {
        self.server.as_ref()
    }

    /// Requests waiting for an answer.
    pub fn pending(&self) -> usize {
        self.requests.len()
    }

    /// Whether [`issue`](Self::issue) would currently fail with [`IssueError::QueueFull`].
    pub fn is_queue_full(&self) -> bool {
        self.requests.len() >= self.config.max_pending
    }

    /// Issues a request with the configured default deadline. Returns its id; the answer
    /// comes as [`ClientEvent::Response`] with that id.
    pub fn issue(&mut self, request: Request, now: Instant) -> Result<u64, IssueError> {
        let deadline = self.config.request_timeout.map(|t| now + t);
        self.issue_with_deadline(request, deadline)
    }

    /// Issues a request that fails with [`RequestError::TimedOut`] if not answered by
    /// `deadline`.
    pub fn issue_with_deadline(&mut self, request: Request, deadline: Option<Instant>) -> Result<u64, IssueError> {
        if self.phase == Phase::Closed {
            return Err(IssueError::Closed);
        }
        if self.is_queue_full() {
            self.queue_full = true;
            return Err(IssueError::QueueFull);
        }
        if request.needs_conditions() && !self.server_has(FEATURE_CONDITIONS) {
            return Err(IssueError::Unsupported(UNSUPPORTED_CONDITIONS));
        }
        let id = self.next_id;
        // The request moves into its message and back: no copy of its keys and values.
        let msg = into_message(id, request);
        self.check_keys(&msg)?;
        if self.phase == Phase::Connected {
            // Encoding checks the frame size on its way (one size pass, not two).
            let max = self.server.as_ref().map_or(usize::MAX, |server| server.max_frame as usize);
            direct::encode_client(&msg, max, &mut self.held).map_err(|len| IssueError::TooLarge { len, max })?;
            self.held_count += 1;
        } else {
            self.check_frame(&msg)?;
        }
        self.next_id += 1;
        let request = from_message(msg);
        self.with_deadline += usize::from(deadline.is_some());
        self.requests.insert(id, PendingRequest { request, deadline });
        Ok(id)
    }

    /// Whether the server of the current connection announced `feature`; true while there is
    /// no connection yet (the replay checks again once there is).
    pub(super) fn server_has(&self, feature: u64) -> bool {
        self.server.as_ref().is_none_or(|server| server.features & feature == feature)
    }

    /// Records that an issue found the queue full, so that [`ClientEvent::QueueAvailable`]
    /// follows when it has room.
    pub(crate) fn note_queue_full(&mut self) {
        self.queue_full = true;
    }

    /// Fails a request whose key exceeds the server's maximum.
    fn check_keys(&self, msg: &ClientMessage) -> Result<(), IssueError> {
        let Some(server) = &self.server else { return Ok(()) };
        let max = server.max_key_size as usize;
        let over = |key: &Bytes| (key.len() > max).then_some(key.len());
        let len = match msg {
            ClientMessage::Get { key, .. } | ClientMessage::Put { key, .. } | ClientMessage::Del { key, .. } => {
                over(key)
            }
            ClientMessage::GetMany { keys, .. } => keys.iter().find_map(over),
            ClientMessage::Batch { ops, .. } => ops.iter().find_map(|op| over(op.key())),
            ClientMessage::Increment { key, .. } => over(key),
            ClientMessage::Conditional { conditions, ops, .. } => {
                conditions.iter().find_map(|c| over(c.key())).or_else(|| ops.iter().find_map(|op| over(op.key())))
            }
            _ => None,
        };
        match len {
            Some(len) => Err(IssueError::KeyTooLarge { len, max }),
            None => Ok(()),
        }
    }

    /// Fails a frame over the server's maximum.
    fn check_frame(&self, msg: &ClientMessage) -> Result<(), IssueError> {
        let Some(server) = &self.server else { return Ok(()) };
        let len = encoded_len(msg);
        if len > server.max_frame as usize {
            return Err(IssueError::TooLarge { len, max: server.max_frame as usize });
        }
        Ok(())
    }

    fn check_limits<'a>(&self, keys: impl Iterator<Item = &'a Bytes>, msg: &ClientMessage) -> Result<(), IssueError> {
        let Some(server) = &self.server else { return Ok(()) };
        let max = server.max_key_size as usize;
        if let Some(key) = keys.into_iter().find(|k| k.len() > max) {
            return Err(IssueError::KeyTooLarge { len: key.len(), max });
        }
        let len = encoded_len(msg);
        if len > server.max_frame as usize {
            return Err(IssueError::TooLarge { len, max: server.max_frame as usize });
        }
        Ok(())
    }

    /// Says a new transport is up. The handshake goes out at once; pending requests follow
    /// once the server answers it.
    pub fn handle_connected(&mut self, now: Instant) {
        if self.phase == Phase::Closed {
            return;
        }
        self.phase = Phase::Handshaking;
        self.decoder = FrameDecoder::new(self.config.max_frame);
        self.out.clear();
        self.clear_held();
        self.last_heard = now;
        self.ping_outstanding = false;
        for iter in self.iterators.values_mut() {
            iter.on_server = false;
        }
        let hello = ClientHello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            features: SUPPORTED_FEATURES,
            // A client that never replays needs no record of its writes on the server.
            session: if self.config.retry { self.config.session } else { NO_REPLAY_SESSION },
            max_frame: self.config.max_frame,
        };
        self.send(&ClientMessage::Hello(hello));
        // Always right behind the hello, so the handshake takes one round trip and a server
        // that requires a token can refuse at once when there is none (an empty one). Servers
        // without tokens ignore it.
        let token = self.config.token.clone().unwrap_or_default();
        self.send(&ClientMessage::Auth { token });
    }

    /// Says the transport ended. Without retry, pending requests and open iterators fail with
    /// [`RequestError::ConnectionLost`]; with retry they wait for the next transport.
    pub fn handle_disconnected(&mut self, _now: Instant) {
        match self.phase {
            // Part of a first frame, then the end: a server cut mid-handshake sends the start of
            // a hello or goodbye; anything else means whatever answered speaks another protocol.
            Phase::Handshaking if !self.decoder.partial_body().is_none_or(could_start_handshake_answer) => {
                let detail = format!(
                    "it sent {} bytes that do not start a handshake answer, then closed",
                    self.decoder.buffered()
                );
                self.lose(ConnectionError::NotMultilevel(detail));
            }
            Phase::Handshaking | Phase::Connected => {
                self.lose(ConnectionError::TransportClosed);
            }
            Phase::Disconnected | Phase::Closed => {}
        }
    }

    /// Says an attempt to open a transport failed (the connector returned an error). Call it
    /// instead of [`handle_connected`](Self::handle_connected) when connecting fails, then try
    /// again after a backoff, calling [`handle_timeout`](Self::handle_timeout) meanwhile as
    /// usual: request deadlines run whether or not a transport is up.
    ///
    /// Emits [`ClientEvent::Disconnected`] with [`ConnectionError::Connect`], so the adapter can
    /// show why. Without retry, the waiting requests and iterators fail with
    /// [`RequestError::Unreachable`] (nothing was sent, so no write was applied); with retry
    /// they keep waiting for a connection.
    pub fn handle_connect_failed(&mut self, failure: ConnectFailure, _now: Instant) {
        if self.phase == Phase::Closed {
            return;
        }
        self.lose(ConnectionError::Connect(failure));
    }

    /// Feeds bytes read from the transport.
    ///
    /// An error means this connection is given up ([`ClientEvent::Disconnected`] says so too):
    /// close the transport.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) -> Result<(), ConnectionError> {
        if !matches!(self.phase, Phase::Handshaking | Phase::Connected) {
            return Ok(());
        }
        self.last_heard = now;
        self.ping_outstanding = false;
        self.decoder.push(bytes);
        loop {
            let frame = match self.decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(()),
                Err(err) if self.phase == Phase::Handshaking => return Err(self.lose(not_multilevel(&err))),
                Err(err) => return Err(self.lose(err.into())),
            };
            let result = match decode_server(&frame) {
                Ok(msg) => self.handle_message(msg),
                Err(err) if self.phase == Phase::Handshaking => Err(not_multilevel(&err)),
                Err(err) => Err(err.into()),
            };
            if let Err(err) = result {
                return Err(self.lose(err));
            }
            if !matches!(self.phase, Phase::Handshaking | Phase::Connected) {
                return Ok(());
            }
        }
    }

    fn handle_message(&mut self, msg: ServerMessage) -> Result<(), ConnectionError> {
        if self.phase == Phase::Handshaking {
            return match msg {
                ServerMessage::Hello(hello) => self.handle_hello(hello),
                ServerMessage::Goodbye(goodbye) => Err(goodbye_error(goodbye)),
                _ => Err(ConnectionError::Protocol(PeerMisbehaved::MessageBeforeHandshake)),
            };
        }
        match msg {
            ServerMessage::Hello(_) => return Err(ConnectionError::Protocol(PeerMisbehaved::SecondHandshake)),
            ServerMessage::Goodbye(goodbye) => return Err(goodbye_error(goodbye)),
            ServerMessage::Ping { nonce } => self.send(&ClientMessage::Pong { nonce }),
            ServerMessage::Pong { .. } => {}
            ServerMessage::Value { id, value } => self.finish(id, Ok(Response::Value(value))),
            ServerMessage::Values { id, values } => self.finish(id, Ok(Response::Values(values))),
            ServerMessage::Done { id } => self.finish(id, Ok(Response::Done)),
            ServerMessage::Stats { id, stats } => self.finish(id, Ok(Response::Stats(stats))),
            ServerMessage::Error { id, error } => self.finish(id, Err(RequestError::Remote(error))),
            ServerMessage::Counter { id, value } => self.finish(id, Ok(Response::Counter(value))),
            ServerMessage::ConditionFailed { id, index, current } => {
                self.finish(id, Ok(Response::ConditionFailed(ConditionFailed { index, current })));
            }
            ServerMessage::IterData { id, epoch, entries, last_key } => {
                if let Some(iter) = self.iterators.get_mut(&id) {
                    iter.handle_data(epoch, entries, last_key).map_err(ConnectionError::Protocol)?;
                    self.events.push_back(ClientEvent::IteratorReadable { id });
                }
            }
            ServerMessage::IterEnd { id, epoch } => {
                if let Some(iter) = self.iterators.get_mut(&id) {
                    iter.handle_end(epoch);
                    self.events.push_back(ClientEvent::IteratorReadable { id });
                }
            }
            ServerMessage::IterError { id, error } => {
                if let Some(iter) = self.iterators.get_mut(&id) {
                    iter.on_server = false;
                    iter.fail(RequestError::Remote(error));
                    self.events.push_back(ClientEvent::IteratorReadable { id });
                }
            }
            ServerMessage::WatchOpened { id, cursor } => {
                self.handle_watch_message(WatchMessage::Opened { id, cursor }).map_err(ConnectionError::Protocol)?;
            }
            ServerMessage::WatchData { id, events, next } => {
                self.handle_watch_message(WatchMessage::Data { id, events, next })
                    .map_err(ConnectionError::Protocol)?;
            }
            ServerMessage::WatchError { id, error, oldest } => {
                self.handle_watch_message(WatchMessage::Error { id, error, oldest })
                    .map_err(ConnectionError::Protocol)?;
            }
        }
        Ok(())
    }

    fn handle_hello(&mut self, hello: ServerHello) -> Result<(), ConnectionError> {
        if hello.magic != MAGIC {
            return Err(ConnectionError::NotMultilevel("its handshake lacks the multilevel magic".into()));
        }
        if hello.version != PROTOCOL_VERSION {
            return Err(ConnectionError::Incompatible(format!(
                "server speaks protocol version {}, this client {}",
                hello.version, PROTOCOL_VERSION
            )));
        }
        self.phase = Phase::Connected;
        self.handshakes += 1;
        self.server = Some(hello.clone());
        self.events.push_back(ClientEvent::Connected(hello));
        self.replay();
        Ok(())
    }

    /// Sends every pending request and every unfinished iterator, in issue order.
    fn replay(&mut self) {
        let window = self.config.iterator_window;
        let mut ids: Vec<u64> = self.requests.keys().copied().collect();
        ids.extend(self.iterators.iter().filter(|(_, it)| it.needs_server()).map(|(id, _)| *id));
        ids.extend(self.watches.iter().filter(|(_, watch)| watch.needs_server()).map(|(id, _)| *id));
        ids.sort_unstable();
        for id in ids {
            if let Some(pending) = self.requests.get(&id) {
                if pending.request.needs_conditions() && !self.server_has(FEATURE_CONDITIONS) {
                    let error = RemoteError::new(ErrorCode::Unsupported, UNSUPPORTED_CONDITIONS);
                    self.finish(id, Err(RequestError::Remote(error)));
                    continue;
                }
                let msg = request_message(id, &pending.request);
                match self.check_limits(pending.request.keys().into_iter(), &msg) {
                    Ok(()) => self.send(&msg),
                    Err(err) => {
                        let code = match err {
                            IssueError::KeyTooLarge { .. } => ErrorCode::KeyTooLarge,
                            _ => ErrorCode::TooLarge,
                        };
                        self.finish(id, Err(RequestError::Remote(RemoteError::new(code, err.to_string()))));
                    }
                }
            } else if let Some(iter) = self.iterators.get_mut(&id) {
                let msg = iter.open_message(id, window);
                self.send_iterator_frame(id, &msg);
            } else {
                self.reopen_watch(id);
            }
        }
        self.sent_pending = self.requests.len();
        self.last_sent_id = self.next_id - 1;
    }

    fn finish(&mut self, id: u64, result: Result<Response, RequestError>) {
        let Some(pending) = self.requests.remove(&id) else {
            return; // timed out earlier, or a duplicate answer
        };
        self.with_deadline -= usize::from(pending.deadline.is_some());
        if id <= self.last_sent_id {
            self.sent_pending = self.sent_pending.saturating_sub(1);
        }
        self.events.push_back(ClientEvent::Response { id, result });
        if self.queue_full && !self.is_queue_full() {
            self.queue_full = false;
            self.events.push_back(ClientEvent::QueueAvailable);
        }
    }

    /// Gives up the current connection.
    fn lose(&mut self, error: ConnectionError) -> ConnectionError {
        self.phase = Phase::Disconnected;
        self.out.clear();
        self.clear_held();
        self.events.push_back(ClientEvent::Disconnected(error.clone()));
        let failure = match &error {
            ConnectionError::Incompatible(message) => Some(RequestError::Incompatible(message.clone())),
            ConnectionError::Unauthenticated(message) => Some(RequestError::Unauthenticated(message.clone())),
            ConnectionError::NotMultilevel(message) => Some(RequestError::NotMultilevel(message.clone())),
            _ if self.config.retry => None,
            ConnectionError::Connect(failure) => Some(RequestError::Unreachable(failure.clone())),
            _ => Some(RequestError::ConnectionLost),
        };
        // A frame from the server cut in the middle: what the server sends may be too large for
        // this link, and iterators and watches that got nothing ask for less.
        let cut_mid_frame = self.decoder.buffered() > 0;
        for iter in self.iterators.values_mut() {
            iter.connection_lost(cut_mid_frame);
        }
        for watch in self.watches.values_mut() {
            watch.connection_lost(cut_mid_frame);
        }
        if let Some(failure) = failure {
            self.fail_all(failure);
        }
        error
    }

    fn fail_all(&mut self, error: RequestError) {
        let mut ids: Vec<u64> = self.requests.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            self.finish(id, Err(error.clone()));
        }
        for (id, iter) in &mut self.iterators {
            if iter.needs_server() {
                iter.fail(error.clone());
                self.events.push_back(ClientEvent::IteratorReadable { id: *id });
            }
        }
        let watches: Vec<u64> = self.watches.iter().filter(|(_, w)| w.needs_server()).map(|(id, _)| *id).collect();
        for id in watches {
            self.fail_watch(id, error.clone());
        }
    }

    /// The next event for the adapter.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Closes the client: says goodbye if connected, and fails everything pending with
    /// [`RequestError::Closed`]. Send what [`poll_transmit`](Self::poll_transmit) returns, then
    /// close the transport.
    pub fn close(&mut self) {
        if self.phase == Phase::Closed {
            return;
        }
        if self.phase == Phase::Connected {
            let goodbye = Goodbye { reason: GoodbyeReason::Normal, message: "client closed".into() };
            self.send(&ClientMessage::Goodbye(goodbye));
        }
        self.phase = Phase::Closed;
        self.fail_all(RequestError::Closed);
    }
}
