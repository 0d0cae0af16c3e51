//! The host side of one many-level connection, as a state machine with no I/O.
//!
//! It has the shape of [`ServerConnection`](crate::ServerConnection) and emits the same
//! [`ServerEvent`]s, so an adapter runs it against the same store.

use std::collections::BTreeMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::codec::{GuestMessage, HostMessage, ManyLevelDecodeError};
use super::iter::{ManyIterator, Step, limit_of, range_of};
use super::messages::{Callback, GetManyCallback, IteratorEnd, IteratorError, IteratorOpen, Value};
use super::{LEVEL_NOT_FOUND, error_code};
use crate::frame::FrameDecoder;
use crate::message::{BatchOp, DecodeError, GoodbyeReason, SessionId};
use crate::server::scheduler::Scheduler;
use crate::server::{OpId, ServerConfig, ServerError, ServerEvent};
use crate::store::{Outcome, StoreError, StoreRequest, WriteOp, WriteRequest};

/// What an outstanding store request is for.
#[derive(Debug, Clone, Copy)]
enum Pending {
    Get { id: u32 },
    GetMany { id: u32 },
    Write { id: u32 },
    OpenIterator { id: u32, store_id: u64 },
    ReadBatch { id: u32, store_id: u64, epoch: u64 },
}

/// The host state machine of one many-level connection.
///
/// Drive it exactly like [`ServerConnection`](crate::ServerConnection). Differences, all from
/// the protocol: there is no handshake, no goodbye and no keepalive, so `idle_timeout` of the
/// [`ServerConfig`] is not applied (an idle guest is normal) and a connection is closed by
/// simply ending the transport. many-level has no authentication: a config with `tokens` set
/// makes every connection close at once rather than let guests past it.
///
/// # Writes are at-least-once
///
/// A many-level guest sends no session id and replays unanswered writes after a reconnect
/// with fresh request ids. Each connection therefore writes under its own random session with
/// increasing request ids, which keeps the store's at-most-once record valid, but a guest's
/// replay after a lost reply applies the write again, as with the original host.
#[derive(Debug)]
pub struct ManyLevelServer {
    config: ServerConfig,
    session: SessionId,
    next_request: u64,
    closed: bool,
    decoder: FrameDecoder,
    out: BytesMut,
    /// Requests on their way to the store, in order (a guest reads its own writes), and the
    /// events for the adapter.
    scheduler: Scheduler<Pending>,
    next_store_id: u64,
    iterators: BTreeMap<u32, ManyIterator>,
    error: Option<ServerError>,
}

impl ManyLevelServer {
    /// A connection that just came up, writing under a random session.
    pub fn new(config: ServerConfig, now: Instant) -> Self {
        let session = RandomState::new().hash_one(now);
        Self::with_session(config, session, now)
    }

    /// A connection whose writes go to the store under `session` (pick it at random: two
    /// connections must never share one).
    pub fn with_session(config: ServerConfig, session: SessionId, _now: Instant) -> Self {
        let mut server = Self {
            decoder: FrameDecoder::new(config.max_frame),
            config,
            session,
            next_request: 1,
            closed: false,
            out: BytesMut::new(),
            scheduler: Scheduler::default(),
            next_store_id: 1,
            iterators: BTreeMap::new(),
            error: None,
        };
        if server.config.tokens.is_some() {
            server.fail(ServerError::Unauthenticated("many-level has no authentication; this server requires a token"));
        }
        server
    }

    /// The session this connection's writes carry.
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// Whether the adapter should read more bytes from the transport now.
    pub fn wants_input(&self) -> bool {
        !self.closed
            && self.out.len() < self.config.output_high_water
            && self.in_flight() < self.config.max_in_flight as usize
    }

    /// Whether the connection is finished: send what is left, then close the transport.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Why the connection closed, if it closed because of an error.
    pub fn error(&self) -> Option<&ServerError> {
        self.error.as_ref()
    }

    /// Requests received and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.scheduler.in_flight()
    }

    /// Feeds bytes read from the transport. An error means the connection closes; the answer
    /// to the offending request, if it could be identified, waits in the output.
    pub fn handle_input(&mut self, bytes: &[u8], _now: Instant) -> Result<(), ServerError> {
        if self.closed {
            return Ok(());
        }
        self.decoder.push(bytes);
        self.process_buffered()
    }

    fn process_buffered(&mut self) -> Result<(), ServerError> {
        while !self.closed && self.in_flight() < self.config.max_in_flight as usize {
            let frame = match self.decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(err) => return Err(self.fail(err.into())),
            };
            if frame.is_empty() {
                continue; // swallowed, as by the original decoder
            }
            match GuestMessage::decode(&frame) {
                Ok(msg) => self.process(msg),
                Err(err) => {
                    self.answer_malformed(&frame);
                    let err = match err {
                        ManyLevelDecodeError::UnknownTag(tag) => DecodeError::UnknownVariant(u32::from(tag)),
                        other => DecodeError::Malformed(other.to_string()),
                    };
                    return Err(self.fail(err.into()));
                }
            }
        }
        Ok(())
    }

    /// Answers a request whose body could not be decoded, if its id can still be read.
    fn answer_malformed(&mut self, frame: &Bytes) {
        let Some(id) = ManyLevelDecodeError::request_id(frame) else { return };
        let error = Some(super::LEVEL_REMOTE_ERROR.to_owned());
        match frame[0] {
            0..=3 | 5 => self.send(HostMessage::Callback(Callback { id, error, value: None })),
            6 => self.send(HostMessage::GetManyCallback(GetManyCallback { id, error, values: Vec::new() })),
            4 | 8 | 9 => {
                let seq = self.iterators.get(&id).map_or(0, |it| it.seq);
                let error = super::LEVEL_REMOTE_ERROR.to_owned();
                self.send(HostMessage::IteratorError(IteratorError { id, seq, error }));
            }
            _ => {}
        }
    }

    fn process(&mut self, msg: GuestMessage) {
        match msg {
            GuestMessage::Get(m) => {
                if self.check_keys(m.id, false, [&m.key]) {
                    self.enqueue(Pending::Get { id: m.id }, StoreRequest::Get { key: m.key });
                }
            }
            GuestMessage::GetMany(m) => {
                if self.check_keys(m.id, true, &m.keys) {
                    self.enqueue(Pending::GetMany { id: m.id }, StoreRequest::GetMany { keys: m.keys });
                }
            }
            GuestMessage::Put(m) => {
                if self.check_keys(m.id, false, [&m.key]) {
                    self.enqueue_write(m.id, WriteOp::Put { key: m.key, value: m.value.unwrap_or_default() });
                }
            }
            GuestMessage::Delete(m) => {
                if self.check_keys(m.id, false, [&m.key]) {
                    self.enqueue_write(m.id, WriteOp::Del { key: m.key });
                }
            }
            GuestMessage::Batch(m) => {
                let mut ops = Vec::with_capacity(m.ops.len());
                for op in m.ops {
                    match op.r#type.as_str() {
                        "put" => ops.push(BatchOp::Put { key: op.key, value: op.value.unwrap_or_default() }),
                        "del" => ops.push(BatchOp::Del { key: op.key }),
                        _ => return self.reply_error(m.id, super::LEVEL_REMOTE_ERROR),
                    }
                }
                if self.check_keys(m.id, false, ops.iter().map(BatchOp::key)) {
                    self.enqueue_write(m.id, WriteOp::Batch(ops));
                }
            }
            GuestMessage::Clear(m) => {
                let o = m.options.unwrap_or_default();
                let range = range_of(o.gt.as_ref(), o.gte.as_ref(), o.lt.as_ref(), o.lte.as_ref());
                let op = WriteOp::Clear { range, reverse: o.reverse.unwrap_or(false), limit: limit_of(o.limit) };
                self.enqueue_write(m.id, op);
            }
            GuestMessage::Iterator(m) => self.open_iterator(m),
            GuestMessage::IteratorAck(m) => {
                if let Some(it) = self.iterators.get_mut(&m.id) {
                    it.ack(m.seq, m.consumed);
                    self.step_iterator(m.id);
                }
            }
            GuestMessage::IteratorSeek(m) => {
                if let Some(it) = self.iterators.get_mut(&m.id) {
                    it.seek(m.seq, &m.target);
                    self.step_iterator(m.id);
                }
            }
            GuestMessage::IteratorClose(m) => {
                if let Some(it) = self.iterators.remove(&m.id)
                    && it.open
                {
                    self.scheduler.close_iterator(it.store_id);
                }
            }
        }
        self.scheduler.dispatch();
    }

    fn open_iterator(&mut self, m: IteratorOpen) {
        if self.iterators.contains_key(&m.id) {
            return; // as the original host: a second open of a live id is ignored
        }
        if self.iterators.len() >= self.config.max_iterators as usize {
            let error = super::LEVEL_REMOTE_ERROR.to_owned();
            self.send(HostMessage::IteratorError(IteratorError { id: m.id, seq: m.seq, error }));
            return;
        }
        let options = m.options.unwrap_or_default();
        let store_id = self.next_store_id;
        self.next_store_id += 1;
        let it = ManyIterator::new(store_id, m.seq, &options, m.consumed, m.bookmark.as_ref(), m.seek.as_ref());
        self.iterators.insert(m.id, it);
        self.enqueue(Pending::OpenIterator { id: m.id, store_id }, StoreRequest::OpenIterator { iterator: store_id });
    }

    /// Answers an oversized key with an error; returns whether all keys are acceptable.
    fn check_keys<'a>(&mut self, id: u32, many: bool, keys: impl IntoIterator<Item = &'a Bytes>) -> bool {
        let max = self.config.max_key_size as usize;
        if keys.into_iter().any(|k| k.len() > max) {
            let code = super::LEVEL_REMOTE_ERROR;
            if many {
                let error = Some(code.to_owned());
                self.send(HostMessage::GetManyCallback(GetManyCallback { id, error, values: Vec::new() }));
            } else {
                self.reply_error(id, code);
            }
            return false;
        }
        true
    }

    fn reply_error(&mut self, id: u32, code: &str) {
        self.send(HostMessage::Callback(Callback { id, error: Some(code.to_owned()), value: None }));
    }

    fn enqueue_write(&mut self, id: u32, op: WriteOp) {
        if self.config.readonly {
            return self.reply_error(id, super::LEVEL_READONLY);
        }
        let request = self.next_request;
        self.next_request += 1;
        let write = StoreRequest::Write(WriteRequest { session: self.session, request, op });
        self.enqueue(Pending::Write { id }, write);
    }

    fn enqueue(&mut self, pending: Pending, request: StoreRequest) {
        self.scheduler.enqueue(pending, request);
    }

    /// Reads the iterator's next batch, or tells the guest it ended, if either is due.
    fn step_iterator(&mut self, id: u32) {
        if self.closed || self.out.len() >= self.config.output_high_water {
            return; // resumed from poll_transmit once the output drains
        }
        let Some(it) = self.iterators.get_mut(&id) else { return };
        let (store_id, epoch, seq) = (it.store_id, it.epoch, it.seq);
        match it.next_step(&self.config) {
            Some(Step::Read(read)) => {
                let pending = Pending::ReadBatch { id, store_id, epoch };
                self.scheduler.emit_unordered(pending, StoreRequest::ReadBatch(read));
            }
            Some(Step::End) => self.send(HostMessage::IteratorEnd(IteratorEnd { id, seq })),
            None => {}
        }
    }

    fn resume_iterators(&mut self) {
        let ids: Vec<u32> = self.iterators.keys().copied().collect();
        for id in ids {
            self.step_iterator(id);
        }
    }

    /// Passes the store's answer to the request emitted with `op`. Outcomes that arrive after
    /// the connection closed are ignored.
    pub fn handle_outcome(
        &mut self,
        op: OpId,
        result: Result<Outcome, StoreError>,
        _now: Instant,
    ) -> Result<(), ServerError> {
        let Some(pending) = self.scheduler.complete(op) else { return Ok(()) };
        if self.closed {
            return Ok(());
        }
        match (pending, result) {
            (Pending::Get { id }, Ok(Outcome::Value(Some(value)))) => {
                self.send(HostMessage::Callback(Callback { id, error: None, value: Some(value) }));
            }
            (Pending::Get { id }, Ok(Outcome::Value(None))) => self.reply_error(id, LEVEL_NOT_FOUND),
            (Pending::Write { id }, Ok(Outcome::Written)) => {
                self.send(HostMessage::Callback(Callback { id, error: None, value: None }));
            }
            (Pending::GetMany { id }, Ok(Outcome::Values(values))) => {
                let values = values.into_iter().map(|value| Value { value }).collect();
                self.send(HostMessage::GetManyCallback(GetManyCallback { id, error: None, values }));
            }
            (Pending::GetMany { id }, other) => {
                // An error reply, never a crash (the original host dies here).
                let error = Some(outcome_error(other).to_owned());
                self.send(HostMessage::GetManyCallback(GetManyCallback { id, error, values: Vec::new() }));
            }
            (Pending::Get { id } | Pending::Write { id }, other) => self.reply_error(id, outcome_error(other)),
            (Pending::OpenIterator { id, store_id }, Ok(Outcome::IteratorOpened)) => {
                match self.iterators.get_mut(&id) {
                    Some(it) if it.store_id == store_id => {
                        it.open = true;
                        self.step_iterator(id);
                    }
                    // Closed while its open waited: release the snapshot just taken.
                    _ => self.scheduler.close_iterator(store_id),
                }
            }
            (Pending::ReadBatch { id, store_id, epoch }, Ok(Outcome::Batch { entries, exhausted })) => {
                if let Some(it) = self.iterators.get_mut(&id).filter(|it| it.store_id == store_id) {
                    if let Some(data) = it.take_batch(id, epoch, entries, exhausted) {
                        self.send(HostMessage::IteratorData(data));
                    }
                    self.step_iterator(id);
                }
            }
            (Pending::OpenIterator { id, store_id } | Pending::ReadBatch { id, store_id, .. }, other) => {
                let opened = matches!(pending, Pending::ReadBatch { .. });
                if let Some(it) = self.iterators.get_mut(&id).filter(|it| it.store_id == store_id) {
                    // Nothing more is read; the guest sees the error and closes the iterator.
                    it.errored = true;
                    it.reading = false;
                    let was_open = std::mem::replace(&mut it.open, false);
                    let seq = it.seq;
                    if was_open {
                        self.scheduler.close_iterator(store_id);
                    }
                    let error = outcome_error(other).to_owned();
                    self.send(HostMessage::IteratorError(IteratorError { id, seq, error }));
                } else if !opened && other.is_ok() {
                    self.scheduler.close_iterator(store_id);
                }
            }
        }
        self.scheduler.dispatch();
        self.process_buffered()
    }

    /// Tells the machine the time. many-level has no keepalive, so nothing times out.
    pub fn handle_timeout(&mut self, _now: Instant) {}

    /// When [`handle_timeout`](Self::handle_timeout) must next be called: never.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// The next thing the adapter must do for the store.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.scheduler.poll_event()
    }

    /// Bytes to write to the transport, if any; iterators paused by backed-up output resume
    /// as it drains.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            return None;
        }
        let bytes = self.out.split().freeze();
        if !self.closed {
            self.resume_iterators();
        }
        Some(bytes)
    }

    /// Closes the connection, e.g. on server shutdown, and releases the iterators. many-level
    /// has no goodbye message, so `reason` and `message` are not sent.
    pub fn close(&mut self, _reason: GoodbyeReason, _message: &str) {
        if self.closed {
            return;
        }
        self.closed = true;
        for it in std::mem::take(&mut self.iterators).into_values() {
            if it.open {
                self.scheduler.close_iterator(it.store_id);
            }
        }
        self.scheduler.clear_queue();
    }

    fn fail(&mut self, err: ServerError) -> ServerError {
        self.close(GoodbyeReason::ProtocolViolation, "");
        self.error = Some(err.clone());
        err
    }

    fn send(&mut self, msg: HostMessage) {
        msg.encode(&mut self.out);
    }
}

/// The code for an outcome that is not the expected success.
fn outcome_error(outcome: Result<Outcome, StoreError>) -> &'static str {
    match outcome {
        Err(err) => error_code(&err),
        Ok(_) => super::LEVEL_REMOTE_ERROR,
    }
}
