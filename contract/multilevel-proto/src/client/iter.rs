//! One iterator as the client sees it: what it buffered, where it resumes, and its credit.

use std::collections::VecDeque;

use bytes::Bytes;

use super::credit::CreditCap;
use super::error::{PeerMisbehaved, RequestError};
use crate::message::{ClientMessage, IterOptions, WireEntry, entry_cost};
use crate::range::KeyRange;

/// What reading an iterator gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IterPoll {
    /// The next entry; key and value are present as the iterator's options asked.
    Entry(WireEntry),
    /// Nothing yet: wait for [`ClientEvent::IteratorReadable`](super::ClientEvent).
    Pending,
    /// Every entry was read.
    End,
    /// The iterator failed; it yields nothing more.
    Error(RequestError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Active,
    Ended,
    Failed(RequestError),
}

#[derive(Debug)]
pub(super) struct ClientIterator {
    options: IterOptions,
    /// What the server has still to send: the original range narrowed past the last key
    /// received (not consumed: buffered entries are kept across a reconnect).
    range: KeyRange,
    yielded: u64,
    buffer: VecDeque<WireEntry>,
    buffered_bytes: u64,
    /// Bytes consumed since credit was last granted.
    consumed: u64,
    epoch: u32,
    state: State,
    /// The current connection has this iterator open.
    pub(super) on_server: bool,
    /// Entries the server may still send in this epoch, by the limit it was given.
    allowed: Option<u64>,
    /// The sublevel prefix of every key, removed as entries are handed out (the server's
    /// flow control counts the keys as sent).
    prefix: Bytes,
    /// The most credit offered on a connection.
    credit_cap: CreditCap,
}

/// `entry` with its key's first `strip` bytes removed.
fn unprefixed(mut entry: WireEntry, strip: usize) -> WireEntry {
    if strip > 0 {
        entry.key = entry.key.map(|key| key.slice(strip.min(key.len())..));
    }
    entry
}

impl ClientIterator {
    /// An iterator over `options.range`, whose keys all start with `prefix` (empty for none).
    pub(super) fn new(options: IterOptions, prefix: Bytes) -> Self {
        Self {
            prefix,
            range: options.range.clone(),
            options,
            yielded: 0,
            buffer: VecDeque::new(),
            buffered_bytes: 0,
            consumed: 0,
            epoch: 0,
            state: State::Active,
            on_server: false,
            allowed: None,
            credit_cap: CreditCap::default(),
        }
    }

    /// Whether the server must be asked for more on a new connection.
    pub(super) fn needs_server(&self) -> bool {
        self.state == State::Active
    }

    fn remaining_limit(&self) -> Option<u64> {
        self.options.limit.map(|limit| limit.saturating_sub(self.yielded + self.buffer.len() as u64))
    }

    /// The connection ended; `cut_mid_frame` says it ended in the middle of a frame from the
    /// server.
    pub(super) fn connection_lost(&mut self, cut_mid_frame: bool) {
        if self.on_server {
            self.credit_cap.connection_lost(cut_mid_frame);
        }
        self.on_server = false;
    }

    /// The frame that opens this iterator where it stands, with credit for what the buffer
    /// leaves of the window.
    pub(super) fn open_message(&mut self, id: u64, window: u64) -> ClientMessage {
        self.consumed = 0;
        self.on_server = true;
        // The server starts a newly opened iterator at epoch 0; nothing of older epochs can
        // arrive for it on a connection that did not have it open.
        self.epoch = 0;
        self.allowed = self.remaining_limit();
        let options = IterOptions { range: self.range.clone(), limit: self.allowed, ..self.options.clone() };
        let credit = self.credit_cap.reopen(window.saturating_sub(self.buffered_bytes), window);
        ClientMessage::IterOpen { id, options, credit }
    }

    /// Takes a batch of entries. Fails if the server sent more than the limit allows, or
    /// entries outside what was asked.
    pub(super) fn handle_data(
        &mut self,
        epoch: u32,
        entries: Vec<WireEntry>,
        last_key: Bytes,
    ) -> Result<(), PeerMisbehaved> {
        if epoch != self.epoch || self.state != State::Active {
            return Ok(()); // sent before a seek, or after the iterator failed
        }
        if let Some(allowed) = &mut self.allowed {
            *allowed = allowed.checked_sub(entries.len() as u64).ok_or(PeerMisbehaved::IteratorPastLimit)?;
        }
        if !self.range.contains(&last_key) {
            return Err(PeerMisbehaved::IteratorOutsideRange);
        }
        if !entries.is_empty() {
            self.credit_cap.received();
        }
        self.buffered_bytes += entries.iter().map(entry_cost).sum::<u64>();
        self.buffer.extend(entries);
        self.range = if self.options.reverse { self.range.before(&last_key) } else { self.range.after(&last_key) };
        Ok(())
    }

    pub(super) fn handle_end(&mut self, epoch: u32) {
        if epoch == self.epoch && self.state == State::Active {
            self.state = State::Ended;
        }
    }

    pub(super) fn fail(&mut self, error: RequestError) {
        if self.state == State::Active {
            self.state = State::Failed(error);
        }
    }

    /// Takes the next entry. Returns, beside it, credit to grant the server, if due.
    pub(super) fn next(&mut self, window: u64) -> (IterPoll, Option<u64>) {
        if self.options.limit.is_some_and(|limit| self.yielded >= limit) {
            return (IterPoll::End, None);
        }
        let Some(entry) = self.buffer.pop_front() else {
            let poll = match &self.state {
                State::Active => IterPoll::Pending,
                State::Ended => IterPoll::End,
                State::Failed(err) => IterPoll::Error(err.clone()),
            };
            return (poll, None);
        };
        let cost = entry_cost(&entry);
        self.yielded += 1;
        self.buffered_bytes -= cost;
        self.consumed += cost;
        // Grant in chunks to save frames, but at once when the buffer runs dry so a server
        // waiting on a large entry's overshoot never stalls.
        let grant =
            (self.state == State::Active && self.on_server) && (self.consumed >= window / 2 || self.buffer.is_empty());
        let credit = grant.then(|| std::mem::take(&mut self.consumed) + self.credit_cap.growth(window));
        (IterPoll::Entry(unprefixed(entry, self.prefix.len())), credit)
    }

    /// Moves up to `max_entries` buffered entries to `out`, stopping once they cost
    /// `max_bytes` (by [`entry_cost`]); as [`next`](Self::next) for each, but with one credit
    /// decision for all. Returns how many moved and the credit to grant, if due.
    pub(super) fn take(
        &mut self,
        window: u64,
        max_entries: usize,
        max_bytes: u64,
        out: &mut VecDeque<WireEntry>,
    ) -> (usize, Option<u64>) {
        let allowed = self
            .options
            .limit
            .map_or(usize::MAX, |limit| usize::try_from(limit.saturating_sub(self.yielded)).unwrap_or(usize::MAX));
        let max_entries = max_entries.min(allowed);
        let (mut count, mut cost) = (0usize, 0u64);
        for entry in self.buffer.iter() {
            if count >= max_entries || cost >= max_bytes {
                break;
            }
            cost += entry_cost(entry);
            count += 1;
        }
        // Moved in one go rather than popped and pushed one by one.
        let strip = self.prefix.len();
        out.extend(self.buffer.drain(..count).map(|entry| unprefixed(entry, strip)));
        if count == 0 {
            return (0, None);
        }
        self.yielded += count as u64;
        self.buffered_bytes -= cost;
        self.consumed += cost;
        let grant =
            (self.state == State::Active && self.on_server) && (self.consumed >= window / 2 || self.buffer.is_empty());
        (count, grant.then(|| std::mem::take(&mut self.consumed) + self.credit_cap.growth(window)))
    }

    /// Moves to `target`: drops what was buffered and returns the frame to send if the server
    /// knows this iterator (otherwise it is reopened by [`open_message`](Self::open_message)).
    pub(super) fn seek(&mut self, id: u64, target: Bytes, window: u64) -> Option<ClientMessage> {
        let target = if self.prefix.is_empty() { target } else { [&self.prefix[..], &target[..]].concat().into() };
        self.buffer.clear();
        self.buffered_bytes = 0;
        self.consumed = 0;
        if matches!(self.state, State::Failed(_)) {
            return None; // a failed iterator stays failed
        }
        self.epoch = self.epoch.wrapping_add(1);
        self.state = State::Active;
        self.range = if self.options.reverse {
            self.options.range.to_key(&target)
        } else {
            self.options.range.from_key(&target)
        };
        self.allowed = self.remaining_limit();
        self.on_server.then(|| ClientMessage::IterSeek {
            id,
            epoch: self.epoch,
            range: self.range.clone(),
            limit: self.allowed,
            credit: self.credit_cap.limit(window),
        })
    }
}
