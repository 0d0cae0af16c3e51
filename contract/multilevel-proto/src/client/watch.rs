//! One watch as the client sees it: the events it buffered, the cursor it resumes at, and
//! its credit.

use std::collections::VecDeque;

use bytes::Bytes;

use super::credit::CreditCap;
use super::error::{PeerMisbehaved, RequestError};
use crate::change::{ChangeEvent, Cursor, WatchOptions, WatchStart};
use crate::message::ClientMessage;

/// What reading a watch gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchPoll {
    /// The next event.
    Event(ChangeEvent),
    /// Nothing yet: wait for [`ClientEvent::IteratorReadable`](super::ClientEvent) with the
    /// watch's id.
    Pending,
    /// The watch failed (or the client closed); it yields nothing more.
    Error(RequestError),
}

#[derive(Debug)]
pub(super) struct ClientWatch {
    options: WatchOptions,
    /// Where the server must start on a new connection: past every event received (buffered
    /// events are kept across a reconnect), or "now" until the server resolved it.
    resume: WatchStart,
    buffer: VecDeque<ChangeEvent>,
    buffered_bytes: u64,
    /// Bytes consumed since credit was last granted.
    consumed: u64,
    failed: Option<RequestError>,
    /// The current connection has this watch open.
    pub(super) on_server: bool,
    /// The sublevel prefix of every key, removed as events are handed out.
    prefix: Bytes,
    /// The most credit offered on a connection.
    credit_cap: CreditCap,
}

impl ClientWatch {
    /// A watch of `options`, whose keys all start with `prefix` (empty for none).
    pub(super) fn new(options: WatchOptions, prefix: Bytes) -> Self {
        Self {
            resume: options.start,
            options,
            buffer: VecDeque::new(),
            buffered_bytes: 0,
            consumed: 0,
            failed: None,
            on_server: false,
            prefix,
            credit_cap: CreditCap::default(),
        }
    }

    /// Whether the server must be asked for more on a new connection.
    pub(super) fn needs_server(&self) -> bool {
        self.failed.is_none()
    }

    /// The connection ended; `cut_mid_frame` says it ended in the middle of a frame from the
    /// server.
    pub(super) fn connection_lost(&mut self, cut_mid_frame: bool) {
        if self.on_server {
            self.credit_cap.connection_lost(cut_mid_frame);
        }
        self.on_server = false;
    }

    /// The frame that starts this watch where it stands, with credit for what the buffer
    /// leaves of the window.
    pub(super) fn open_message(&mut self, id: u64, window: u64) -> ClientMessage {
        self.consumed = 0;
        self.on_server = true;
        ClientMessage::Watch {
            id,
            range: self.options.range.clone(),
            start: self.resume,
            values: self.options.values,
            credit: self.credit_cap.reopen(window.saturating_sub(self.buffered_bytes), window).max(1),
        }
    }

    /// The cursor the watch resumes at, once known.
    pub(super) fn cursor(&self) -> Option<Cursor> {
        match self.resume {
            WatchStart::At(cursor) => Some(cursor),
            WatchStart::Now => None,
        }
    }

    /// The server resolved where the feed starts.
    pub(super) fn handle_opened(&mut self, cursor: Cursor) -> Result<(), PeerMisbehaved> {
        if let WatchStart::At(resume) = self.resume
            && cursor != resume
        {
            return Err(PeerMisbehaved::WatchOutOfOrder);
        }
        self.resume = WatchStart::At(cursor);
        Ok(())
    }

    /// Takes events from the server. Fails if they are not in order past the cursor, or lie
    /// outside the range.
    pub(super) fn handle_data(&mut self, events: Vec<ChangeEvent>, next: Cursor) -> Result<(), PeerMisbehaved> {
        if self.failed.is_some() {
            return Ok(());
        }
        let Some(mut cursor) = self.cursor() else { return Err(PeerMisbehaved::WatchOutOfOrder) };
        for event in &events {
            let at = Cursor { position: event.position, index: event.index };
            if at < cursor {
                return Err(PeerMisbehaved::WatchOutOfOrder);
            }
            if !self.options.range.contains(event.change.key()) {
                return Err(PeerMisbehaved::WatchOutsideRange);
            }
            cursor = event.next_cursor();
        }
        if next < cursor {
            return Err(PeerMisbehaved::WatchOutOfOrder);
        }
        if !events.is_empty() {
            self.credit_cap.received();
        }
        for event in events {
            self.buffered_bytes += event.cost();
            self.buffer.push_back(event);
        }
        self.resume = WatchStart::At(next);
        Ok(())
    }

    pub(super) fn fail(&mut self, error: RequestError) {
        if self.failed.is_none() {
            self.failed = Some(error);
        }
    }

    /// Takes the next event. Returns, beside it, credit to grant the server, if due.
    pub(super) fn next(&mut self, window: u64) -> (WatchPoll, Option<u64>) {
        let Some(mut event) = self.buffer.pop_front() else {
            let poll = match &self.failed {
                None => WatchPoll::Pending,
                Some(err) => WatchPoll::Error(err.clone()),
            };
            return (poll, None);
        };
        let cost = event.cost();
        self.buffered_bytes -= cost;
        self.consumed += cost;
        let grant = self.failed.is_none() && self.on_server && (self.consumed >= window / 2 || self.buffer.is_empty());
        let credit = grant.then(|| std::mem::take(&mut self.consumed) + self.credit_cap.growth(window));
        event.change = event.change.strip_key(self.prefix.len());
        (WatchPoll::Event(event), credit)
    }
}
