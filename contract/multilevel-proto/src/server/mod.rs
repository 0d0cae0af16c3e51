//! The server side of one connection, as a state machine with no I/O.
//!
//! # Driving it
//!
//! ```text
//! loop {
//!     bytes arrived        -> handle_input(bytes, now)          (only while wants_input())
//!     timer fired          -> handle_timeout(now)
//!     drain poll_event()   -> execute each StoreRequest, then handle_outcome(op, result, now)
//!     drain poll_transmit()-> write the bytes to the transport
//!     is_closed() and nothing left to transmit -> close the transport
//!     sleep until input, an outcome, writability, or poll_timeout()
//! }
//! ```
//!
//! After any call, drain `poll_event` and `poll_transmit` until they return `None`.

mod config;
mod error;
mod event;
mod handshake;
mod iter;
pub(crate) mod scheduler;
mod scope;
mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use bytes::{Bytes, BytesMut};

pub use config::ServerConfig;
pub use error::ServerError;
pub use event::{OpId, ServerEvent};
use iter::ServerIterator;
use scheduler::Scheduler;
use watch::ServerWatch;

use crate::condition::{Condition, ConditionFailed, FEATURE_CONDITIONS};
use crate::frame::FrameDecoder;
use crate::message::{
    BatchOp, ClientMessage, ErrorCode, Goodbye, GoodbyeReason, RemoteError, ServerMessage, SessionId, decode_client,
    direct, encode,
};
use crate::store::{Outcome, StoreError, StoreRequest, WriteOp, WriteRequest};
use crate::sublevel::SublevelPrefix;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitingHello,
    /// Hello received; the server requires a token before it answers.
    AwaitingAuth {
        session: SessionId,
    },
    Open {
        session: SessionId,
    },
    Closed,
}

/// What an outstanding store request is for.
#[derive(Debug, Clone, Copy)]
enum Pending {
    Get { id: u64 },
    GetMany { id: u64 },
    Write { id: u64 },
    OpenIterator { id: u64 },
    ReadBatch { id: u64, epoch: u32, bytes: u64 },
    Stats { id: u64 },
    OpenWatch { id: u64 },
    ReadChanges { id: u64 },
}

/// The server state machine of one connection. See the [module docs](self) for how to drive it.
#[derive(Debug)]
pub struct ServerConnection {
    config: ServerConfig,
    phase: Phase,
    decoder: FrameDecoder,
    out: BytesMut,
    /// Requests on their way to the store, in order, and the events for the adapter.
    scheduler: Scheduler<Pending>,
    /// Bytes the outstanding iterator batch reads may add to the output.
    reading_bytes: u64,
    /// The largest frame the client accepts, from its hello.
    client_max_frame: u32,
    /// Writes are refused: the server is read-only or the client's token is.
    readonly: bool,
    /// The sublevel the client's token is limited to (the root when it is not).
    scope: SublevelPrefix,
    last_request_id: u64,
    /// The optional features both sides announced (see [`crate::condition`]).
    features: u64,
    iterators: BTreeMap<u64, ServerIterator>,
    /// Iterators closed while their open was in flight: each still holds a place under
    /// `max_iterators` until the open completes and its snapshot is released.
    closing: BTreeSet<u64>,
    watches: BTreeMap<u64, ServerWatch>,
    /// Watches ended while their open or a read was with the store: each keeps its id (and its
    /// place under `max_iterators`) until that outcome comes back, so it cannot be taken for
    /// a new watch of the same id.
    closing_watches: BTreeSet<u64>,
    last_input: Instant,
    error: Option<ServerError>,
}

impl ServerConnection {
    /// A connection that just came up at `now`; it expects the client's handshake first.
    pub fn new(config: ServerConfig, now: Instant) -> Self {
        Self {
            decoder: FrameDecoder::new(config.max_frame),
            readonly: config.readonly,
            scope: SublevelPrefix::root(),
            config,
            phase: Phase::AwaitingHello,
            out: BytesMut::new(),
            scheduler: Scheduler::default(),
            reading_bytes: 0,
            client_max_frame: u32::MAX,
            last_request_id: 0,
            features: 0,
            iterators: BTreeMap::new(),
            closing: BTreeSet::new(),
            watches: BTreeMap::new(),
            closing_watches: BTreeSet::new(),
            last_input: now,
            error: None,
        }
    }

    /// The client's session, once the handshake is done.
    pub fn session(&self) -> Option<SessionId> {
        match self.phase {
            Phase::Open { session } => Some(session),
            _ => None,
        }
    }

    /// Whether the adapter should read more bytes from the transport now.
    ///
    /// False while the in-flight cap is reached or output is backed up: leave the bytes in
    /// the transport, which pushes back on the client.
    pub fn wants_input(&self) -> bool {
        self.phase != Phase::Closed
            && self.out.len() < self.config.output_high_water
            && self.in_flight() < self.config.max_in_flight as usize
    }

    /// Whether the connection is finished. Send what [`poll_transmit`](Self::poll_transmit)
    /// still returns (a goodbye), then close the transport.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Why the connection closed, if it closed because of an error.
    pub fn error(&self) -> Option<&ServerError> {
        self.error.as_ref()
    }

    /// Requests received and not yet answered: queued, or handed to the store. A graceful
    /// shutdown stops reading and waits for this to reach zero before it says goodbye.
    pub fn in_flight(&self) -> usize {
        self.scheduler.in_flight()
    }

    /// Feeds bytes read from the transport. Call it only while [`wants_input`](Self::wants_input)
    /// is true; the bytes are buffered and worked on as the in-flight cap allows.
    ///
    /// An error means the connection must close: a goodbye saying why is queued for
    /// [`poll_transmit`](Self::poll_transmit).
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) -> Result<(), ServerError> {
        if self.phase == Phase::Closed {
            return Ok(());
        }
        self.last_input = now;
        self.decoder.push(bytes);
        self.process_buffered()
    }

    /// Decodes and acts on buffered frames while the in-flight cap allows.
    fn process_buffered(&mut self) -> Result<(), ServerError> {
        if self.phase == Phase::AwaitingHello {
            self.check_hello_start()?;
        }
        while self.phase != Phase::Closed && self.in_flight() < self.config.max_in_flight as usize {
            let frame = match self.decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(err) => return Err(self.fail(err.into())),
            };
            if let Err(err) = self.process_frame(&frame) {
                return Err(self.fail(err));
            }
        }
        Ok(())
    }

    fn process_frame(&mut self, frame: &Bytes) -> Result<(), ServerError> {
        match self.phase {
            Phase::Open { .. } => {}
            Phase::AwaitingAuth { session } => return self.process_auth(session, frame),
            _ => return self.process_hello(frame),
        }
        let msg = decode_client(frame)?;
        match msg {
            ClientMessage::Hello(_) => return Err(ServerError::Unexpected("a second handshake")),
            // Tokens are only read right after the hello, by servers that require one.
            ClientMessage::Auth { .. } => {}
            ClientMessage::Goodbye(_) => {
                self.phase = Phase::Closed;
                self.release_iterators();
            }
            ClientMessage::Ping { nonce } => self.send(&ServerMessage::Pong { nonce }),
            ClientMessage::Pong { .. } => {}
            ClientMessage::Get { id, key } => {
                self.check_id(id)?;
                if self.check_keys(id, [&key]) && self.check_scope_keys(id, [&key]) {
                    self.enqueue(Pending::Get { id }, StoreRequest::Get { key });
                }
            }
            ClientMessage::GetMany { id, keys } => {
                self.check_id(id)?;
                if self.check_keys(id, &keys) && self.check_scope_keys(id, &keys) {
                    self.enqueue(Pending::GetMany { id }, StoreRequest::GetMany { keys });
                }
            }
            ClientMessage::Put { id, key, value } => {
                self.check_id(id)?;
                if self.check_keys(id, [&key]) && self.check_scope_keys(id, [&key]) {
                    self.enqueue_write(id, WriteOp::Put { key, value });
                }
            }
            ClientMessage::Del { id, key } => {
                self.check_id(id)?;
                if self.check_keys(id, [&key]) && self.check_scope_keys(id, [&key]) {
                    self.enqueue_write(id, WriteOp::Del { key });
                }
            }
            ClientMessage::Batch { id, ops } => {
                self.check_id(id)?;
                if self.check_keys(id, ops.iter().map(|op| op.key()))
                    && self.check_scope_keys(id, ops.iter().map(|op| op.key()))
                {
                    self.enqueue_write(id, WriteOp::Batch(ops));
                }
            }
            ClientMessage::Clear { id, range, reverse, limit } => {
                self.check_id(id)?;
                if self.check_scope_range(id, &range, "clear") {
                    self.enqueue_write(id, WriteOp::Clear { range, reverse, limit });
                }
            }
            ClientMessage::Conditional { id, conditions, ops } => {
                self.check_id(id)?;
                let keys = || conditions.iter().map(Condition::key).chain(ops.iter().map(BatchOp::key));
                // A condition reads its key and a failed one answers its value: scoped like a get.
                if self.check_conditions_feature(id) && self.check_keys(id, keys()) && self.check_scope_keys(id, keys())
                {
                    self.enqueue_write(id, WriteOp::Conditional { conditions, ops });
                }
            }
            ClientMessage::Increment { id, key, by } => {
                self.check_id(id)?;
                if self.check_conditions_feature(id) && self.check_keys(id, [&key]) && self.check_scope_keys(id, [&key])
                {
                    self.enqueue_write(id, WriteOp::Increment { key, by });
                }
            }
            ClientMessage::IterOpen { id, options, credit } => {
                if self.stream_id_in_use(id) {
                    return Err(ServerError::IteratorIdInUse(id));
                }
                if self.streams_open() >= self.config.max_iterators as usize {
                    let message = format!("at most {} iterators may be open per connection", self.config.max_iterators);
                    self.send(&ServerMessage::IterError {
                        id,
                        error: RemoteError::new(ErrorCode::TooManyIterators, message),
                    });
                    return Ok(());
                }
                if let Some(error) = self.out_of_scope_range(&options.range, "iterator") {
                    self.send(&ServerMessage::IterError { id, error });
                    return Ok(());
                }
                self.iterators.insert(id, ServerIterator::new(options, credit));
                self.enqueue(Pending::OpenIterator { id }, StoreRequest::OpenIterator { iterator: id });
            }
            ClientMessage::IterCredit { id, bytes } => {
                if let Some(iter) = self.iterators.get_mut(&id) {
                    iter.credit = iter.credit.saturating_add(bytes);
                    self.read_next_batch(id);
                }
            }
            ClientMessage::IterSeek { id, epoch, range, limit, credit } => {
                if !self.iterators.contains_key(&id) {
                    // Closed already: nothing to answer.
                } else if let Some(error) = self.out_of_scope_range(&range, "seek") {
                    // The iterator is finished: it was told it may not go there.
                    self.forget_iterator(id);
                    self.send(&ServerMessage::IterError { id, error });
                } else if let Some(iter) = self.iterators.get_mut(&id) {
                    iter.seek(epoch, range, limit, credit);
                    self.read_next_batch(id);
                }
            }
            // Whole-database figures, no key or value: allowed whatever the token's scope.
            ClientMessage::Stats { id } => {
                self.check_id(id)?;
                self.enqueue(Pending::Stats { id }, StoreRequest::Stats);
            }
            ClientMessage::IterClose { id } => self.forget_iterator(id),
            ClientMessage::Watch { id, range, start, values, credit } => {
                if self.stream_id_in_use(id) {
                    return Err(ServerError::IteratorIdInUse(id));
                }
                self.open_watch(id, range, start, values, credit);
            }
            ClientMessage::WatchCredit { id, bytes } => self.credit_watch(id, bytes),
            ClientMessage::WatchClose { id } => self.close_watch(id),
        }
        self.scheduler.dispatch();
        Ok(())
    }

    fn check_id(&mut self, id: u64) -> Result<(), ServerError> {
        if id <= self.last_request_id {
            return Err(ServerError::IdNotIncreasing { id, previous: self.last_request_id });
        }
        self.last_request_id = id;
        Ok(())
    }

    /// Answers a conditional write or increment from a client that did not announce them with
    /// an error; returns whether it may go on.
    fn check_conditions_feature(&mut self, id: u64) -> bool {
        if self.features & FEATURE_CONDITIONS != 0 {
            return true;
        }
        let message =
            "conditional writes and increments need the conditions feature, which the client's hello did not announce";
        self.send(&ServerMessage::Error { id, error: RemoteError::new(ErrorCode::Unsupported, message) });
        false
    }

    /// Answers an oversized key with an error; returns whether all keys are acceptable.
    fn check_keys<'a>(&mut self, id: u64, keys: impl IntoIterator<Item = &'a Bytes>) -> bool {
        let max = self.config.max_key_size as usize;
        if let Some(key) = keys.into_iter().find(|k| k.len() > max) {
            let error = StoreError::KeyTooLarge { len: key.len(), max }.to_remote();
            self.send(&ServerMessage::Error { id, error });
            return false;
        }
        true
    }

    fn enqueue_write(&mut self, id: u64, op: WriteOp) {
        if self.readonly {
            // Say which: a read-only token on a writable database is not a read-only database.
            let error = if self.config.readonly {
                StoreError::ReadOnly.to_remote()
            } else {
                RemoteError::new(ErrorCode::ReadOnly, "this connection's token is read-only: it may read but not write")
            };
            self.send(&ServerMessage::Error { id, error });
            return;
        }
        let Phase::Open { session } = self.phase else { return };
        let request = StoreRequest::Write(WriteRequest { session, request: id, op });
        self.enqueue(Pending::Write { id }, request);
    }

    fn enqueue(&mut self, pending: Pending, request: StoreRequest) {
        self.scheduler.enqueue(pending, request);
    }

    /// Passes the store's answer to the request emitted with `op`.
    ///
    /// Call it once per [`ServerEvent::Store`], in any order. Outcomes that arrive after the
    /// connection closed are ignored.
    pub fn handle_outcome(
        &mut self,
        op: OpId,
        result: Result<Outcome, StoreError>,
        _now: Instant,
    ) -> Result<(), ServerError> {
        let Some(pending) = self.scheduler.complete(op) else { return Ok(()) };
        if let Pending::ReadBatch { bytes, .. } = pending {
            self.reading_bytes -= bytes;
        }
        if self.phase == Phase::Closed {
            // An open still in flight when the connection closed took a snapshot nobody will
            // read (its iterator's close may have reached the store first): release it.
            // Closing an iterator twice is harmless.
            if let (Pending::OpenIterator { id }, Ok(Outcome::IteratorOpened)) = (&pending, &result) {
                self.closing.remove(id);
                self.scheduler.close_iterator(*id);
            }
            // The same for a watch whose open the backend finished after its close.
            if let (Pending::OpenWatch { id }, Ok(Outcome::WatchOpened(_))) = (&pending, &result) {
                self.scheduler.close_watch(*id);
            }
            return Ok(());
        }
        match (pending, result) {
            (Pending::Get { id }, Ok(Outcome::Value(value))) => self.send(&ServerMessage::Value { id, value }),
            (Pending::GetMany { id }, Ok(Outcome::Values(values))) => self.send(&ServerMessage::Values { id, values }),
            (Pending::Write { id }, Ok(Outcome::Written)) => self.send(&ServerMessage::Done { id }),
            (Pending::Write { id }, Ok(Outcome::Counter(value))) => self.send(&ServerMessage::Counter { id, value }),
            (Pending::Write { id }, Ok(Outcome::ConditionFailed(ConditionFailed { index, current }))) => {
                self.send(&ServerMessage::ConditionFailed { id, index, current });
            }
            (Pending::Stats { id }, Ok(Outcome::Stats(stats))) => self.send(&ServerMessage::Stats { id, stats }),
            (
                Pending::Get { id } | Pending::GetMany { id } | Pending::Write { id } | Pending::Stats { id },
                Err(err),
            ) => {
                self.send(&ServerMessage::Error { id, error: err.to_remote() });
            }
            (Pending::OpenIterator { id }, Ok(Outcome::IteratorOpened)) => {
                if let Some(iter) = self.iterators.get_mut(&id) {
                    iter.opened();
                    self.read_next_batch(id);
                } else {
                    // Closed while its open waited in the queue: release the snapshot just taken.
                    self.closing.remove(&id);
                    self.scheduler.close_iterator(id);
                }
            }
            (Pending::ReadBatch { id, epoch, .. }, Ok(Outcome::Batch { entries, exhausted })) => {
                self.handle_batch(id, epoch, entries, exhausted);
            }
            (Pending::OpenWatch { id }, Ok(Outcome::WatchOpened(cursor))) => self.watch_opened(id, cursor),
            (Pending::ReadChanges { id }, Ok(Outcome::Changes { events, next })) => {
                self.watch_changes(id, events, next);
            }
            (Pending::OpenWatch { id } | Pending::ReadChanges { id }, Err(err)) => self.watch_failed(id, &err),
            (Pending::OpenIterator { id } | Pending::ReadBatch { id, .. }, Err(err)) => {
                self.closing.remove(&id); // a failed open took no snapshot
                if self.iterators.remove(&id).is_some() {
                    self.scheduler.close_iterator(id);
                    self.send(&ServerMessage::IterError { id, error: err.to_remote() });
                }
            }
            (pending, Ok(outcome)) => {
                let message = format!("store answered {pending:?} with {outcome:?}");
                let id = match pending {
                    Pending::Get { id }
                    | Pending::GetMany { id }
                    | Pending::Write { id }
                    | Pending::OpenIterator { id }
                    | Pending::Stats { id }
                    | Pending::ReadBatch { id, .. }
                    | Pending::OpenWatch { id }
                    | Pending::ReadChanges { id } => id,
                };
                let error = RemoteError::new(ErrorCode::Internal, message);
                if matches!(pending, Pending::OpenWatch { .. } | Pending::ReadChanges { .. }) {
                    self.watch_failed(id, &StoreError::Internal(error.message));
                } else if matches!(pending, Pending::OpenIterator { .. } | Pending::ReadBatch { .. }) {
                    self.closing.remove(&id);
                    self.iterators.remove(&id);
                    self.scheduler.close_iterator(id);
                    self.send(&ServerMessage::IterError { id, error });
                } else {
                    self.send(&ServerMessage::Error { id, error });
                }
            }
        }
        self.scheduler.dispatch();
        self.process_buffered()
    }

    /// Tells the machine the time; call it when [`poll_timeout`](Self::poll_timeout) passes.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Closed {
            return;
        }
        let idle = now.saturating_duration_since(self.last_input);
        if idle >= self.config.idle_timeout {
            self.fail(ServerError::IdleTimeout(self.config.idle_timeout));
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.phase != Phase::Closed).then(|| self.last_input + self.config.idle_timeout)
    }

    /// The next thing the adapter must do for the store.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.scheduler.poll_event()
    }

    /// Bytes to write to the transport, if any. Call it whenever the transport can take more;
    /// iterators paused by backed-up output resume as it drains.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            return None;
        }
        let bytes = self.out.split().freeze();
        self.resume_iterators();
        if self.phase != Phase::Closed {
            self.resume_watches();
        }
        Some(bytes)
    }

    /// Starts an orderly close, e.g. on server shutdown: says goodbye and releases iterators.
    /// Outcomes of requests already handed to the store are still accepted but not sent.
    pub fn close(&mut self, reason: GoodbyeReason, message: &str) {
        if self.phase == Phase::Closed {
            return;
        }
        self.send(&ServerMessage::Goodbye(Goodbye { reason, message: message.to_owned() }));
        self.phase = Phase::Closed;
        self.release_iterators();
    }

    /// Closes after a protocol error, telling the client why.
    fn fail(&mut self, err: ServerError) -> ServerError {
        let reason = match err {
            ServerError::BadMagic => GoodbyeReason::BadMagic,
            ServerError::VersionMismatch { .. } => GoodbyeReason::VersionMismatch,
            ServerError::IdleTimeout(_) => GoodbyeReason::IdleTimeout,
            ServerError::Unauthenticated(_) => GoodbyeReason::Unauthenticated,
            _ => GoodbyeReason::ProtocolViolation,
        };
        self.close(reason, &err.to_string());
        self.error = Some(err.clone());
        err
    }

    /// Queues `msg`, or, if it would not fit the client's largest frame, the error that says
    /// so in its place: a frame the client cannot take would cost it the connection, and with
    /// retry it would ask again forever.
    fn send(&mut self, msg: &ServerMessage) {
        let Err(len) = direct::encode_server(msg, self.client_max_frame as usize, &mut self.out) else { return };
        let error = self.too_large(len);
        match msg {
            ServerMessage::Value { id, .. } | ServerMessage::Values { id, .. } | ServerMessage::Stats { id, .. } => {
                encode(&ServerMessage::Error { id: *id, error }, &mut self.out);
            }
            ServerMessage::IterData { id, .. } => self.refuse_iter_data(*id, error),
            ServerMessage::WatchData { id, .. } => {
                // Only a single event over half the client's frame gets here.
                self.close_watch(*id);
                encode(&ServerMessage::WatchError { id: *id, error, oldest: None }, &mut self.out);
            }
            // The rest are small, unless a hook's rejection message is huge: cut it short.
            ServerMessage::Error { id, error: original } => {
                let mut message = original.message.clone();
                let cut = (0..=message.len().min(256)).rev().find(|i| message.is_char_boundary(*i)).unwrap_or(0);
                message.truncate(cut);
                let error = RemoteError::new(original.code, message);
                encode(&ServerMessage::Error { id: *id, error }, &mut self.out);
            }
            other => encode(other, &mut self.out),
        }
    }

    /// The error that replaces an answer of `len` bytes the client could not take.
    fn too_large(&self, len: usize) -> RemoteError {
        let message =
            format!("an answer of {len} bytes exceeds the client's maximum frame of {} bytes", self.client_max_frame);
        RemoteError::new(ErrorCode::TooLarge, message)
    }

    /// Ends iterator `id` with `error` instead of a batch that could not be sent.
    fn refuse_iter_data(&mut self, id: u64, error: RemoteError) {
        if self.iterators.remove(&id).is_some() {
            self.scheduler.close_iterator(id);
        }
        encode(&ServerMessage::IterError { id, error }, &mut self.out);
    }
}
