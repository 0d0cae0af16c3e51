//! One many-level iterator as the host sees it: its range, limit and the ack window.
//!
//! Flow control follows many-level: the first batch after an open or a seek carries one
//! entry and nothing is read ahead until the guest acks it; after that at most two
//! [`IteratorData`] messages are unacknowledged at a time. Unlike the original host the limit
//! is counted against entries *sent*, not entries acked, so nothing past the limit is read.

use bytes::Bytes;

use super::messages::{IteratorData, Options};
use crate::range::KeyRange;
use crate::server::ServerConfig;
use crate::store::BatchRead;

/// At most this many [`IteratorData`] messages wait for an ack per iterator.
pub(super) const MAX_UNACKED: u32 = 2;

/// The key range of a many-level options message, as abstract-level defines it: `gte` takes
/// precedence over `gt` and `lte` over `lt` (the other bound of a side is ignored, even when
/// tighter), and no byte arithmetic is done on keys.
pub(super) fn range_of(gt: Option<&Bytes>, gte: Option<&Bytes>, lt: Option<&Bytes>, lte: Option<&Bytes>) -> KeyRange {
    let mut range = KeyRange::all();
    if let Some(key) = gte {
        range = range.gte(key);
    } else if let Some(key) = gt {
        range = range.gt(key);
    }
    if let Some(key) = lte {
        range = range.lte(key);
    } else if let Some(key) = lt {
        range = range.lt(key);
    }
    range
}

/// A many-level limit: negative means none. An absent limit also means none.
pub(super) fn limit_of(limit: Option<i32>) -> Option<u64> {
    limit.and_then(|l| u64::try_from(l).ok())
}

#[derive(Debug)]
pub(super) struct ManyIterator {
    /// The id the store knows the snapshot by (unique within the connection).
    pub(super) store_id: u64,
    /// The guest's generation, bumped by seeks.
    pub(super) seq: u32,
    /// Bumped on every seek, so a read issued before a seek is recognised even if the guest
    /// reuses a seq.
    pub(super) epoch: u64,
    keys: bool,
    values: bool,
    reverse: bool,
    /// The range as opened, which seeks move within.
    original: KeyRange,
    /// What is left to visit: narrowed past every key sent, with exclusive bounds.
    range: KeyRange,
    limit: Option<u64>,
    /// Entries counted against the limit: those the guest consumed before this generation
    /// plus those sent in it.
    sent: u64,
    /// The highest `consumed` the guest reported.
    acked: u64,
    pending_acks: u32,
    /// The next read is the first of a generation: one entry.
    first: bool,
    /// A first batch was sent and waits for its ack before anything is read ahead.
    hold: bool,
    /// The store has taken the snapshot.
    pub(super) open: bool,
    /// A batch read is outstanding.
    pub(super) reading: bool,
    ended: bool,
    end_sent: bool,
    /// An error was reported; nothing more is read until the guest closes it.
    pub(super) errored: bool,
}

/// What an iterator needs next.
#[derive(Debug)]
pub(super) enum Step {
    /// Ask the store for this batch.
    Read(BatchRead),
    /// Tell the guest this generation ended.
    End,
}

impl ManyIterator {
    /// An iterator opened with `options`, `consumed` entries already yielded to the guest,
    /// resuming after `bookmark` or starting at `seek` (which wins if both are given).
    pub(super) fn new(
        store_id: u64,
        seq: u32,
        options: &Options,
        consumed: u64,
        bookmark: Option<&Bytes>,
        seek: Option<&Bytes>,
    ) -> Self {
        let reverse = options.reverse.unwrap_or(false);
        let keys = options.keys.unwrap_or(false);
        let original = range_of(options.gt.as_ref(), options.gte.as_ref(), options.lt.as_ref(), options.lte.as_ref());
        let range = match (seek, bookmark) {
            (Some(target), _) => seek_range(&original, target, reverse),
            // Exclusive bounds at the bookmark: never a decremented key.
            (None, Some(key)) if reverse => original.before(key),
            (None, Some(key)) => original.after(key),
            (None, None) => original.clone(),
        };
        Self {
            store_id,
            seq,
            epoch: 0,
            keys,
            // As the original host: keys only when asked for keys without values, else values.
            values: options.values.unwrap_or(false) || !keys,
            reverse,
            original,
            range,
            limit: limit_of(options.limit),
            sent: consumed,
            acked: consumed,
            pending_acks: 0,
            first: true,
            hold: false,
            open: false,
            reading: false,
            ended: false,
            end_sent: false,
            errored: false,
        }
    }

    /// Entries the limit still allows, if there is a limit.
    fn remaining(&self) -> Option<u64> {
        self.limit.map(|limit| limit.saturating_sub(self.sent))
    }

    /// What to do next, if anything is due.
    pub(super) fn next_step(&mut self, config: &ServerConfig) -> Option<Step> {
        if !self.open || self.reading || self.errored {
            return None;
        }
        if !self.ended && (self.remaining() == Some(0) || self.range.is_empty()) {
            self.ended = true;
        }
        if self.ended {
            if self.end_sent {
                return None;
            }
            self.end_sent = true;
            return Some(Step::End);
        }
        if self.hold || self.pending_acks >= MAX_UNACKED {
            return None;
        }
        let max_entries =
            if self.first { 1 } else { self.remaining().unwrap_or(u64::MAX).min(config.max_batch_entries).max(1) };
        self.reading = true;
        Some(Step::Read(BatchRead {
            iterator: self.store_id,
            range: self.range.clone(),
            reverse: self.reverse,
            max_entries,
            max_bytes: config.max_batch_bytes.max(1),
            values: self.values,
        }))
    }

    /// Turns a batch from the store, read in `epoch`, into the message to send, if it holds
    /// an entry of the current generation.
    pub(super) fn take_batch(
        &mut self,
        id: u32,
        epoch: u64,
        mut entries: Vec<(Bytes, Option<Bytes>)>,
        exhausted: bool,
    ) -> Option<IteratorData> {
        self.reading = false;
        if epoch != self.epoch {
            return None; // read before a seek: the guest would drop it by seq anyway
        }
        if let Some(remaining) = self.remaining() {
            entries.truncate(usize::try_from(remaining).unwrap_or(usize::MAX));
        }
        let Some(last_key) = entries.last().map(|(key, _)| key.clone()) else {
            self.ended = true;
            return None;
        };
        self.sent += entries.len() as u64;
        self.range = if self.reverse { self.range.before(&last_key) } else { self.range.after(&last_key) };
        self.ended = exhausted || self.remaining() == Some(0) || self.range.is_empty();
        self.pending_acks += 1;
        self.hold = self.first;
        self.first = false;
        let per_entry = usize::from(self.keys) + usize::from(self.values);
        let mut data = Vec::with_capacity(entries.len() * per_entry);
        for (key, value) in entries {
            if self.keys {
                data.push(key);
            }
            if self.values {
                data.push(value.unwrap_or_default());
            }
        }
        Some(IteratorData { id, seq: self.seq, data })
    }

    /// The guest consumed one data message of generation `seq`, `consumed` entries in all.
    pub(super) fn ack(&mut self, seq: u32, consumed: u64) {
        if seq != self.seq {
            return;
        }
        self.pending_acks = self.pending_acks.saturating_sub(1);
        self.acked = self.acked.max(consumed);
        self.hold = false;
    }

    /// Moves to `target` within the original range and starts generation `seq`.
    ///
    /// The guest drops what it had received but not consumed, so the limit counts from the
    /// entries it acked; entries consumed but not yet acked may make the host send a few
    /// more than the limit after a seek, which the guest discards (it enforces the limit).
    pub(super) fn seek(&mut self, seq: u32, target: &Bytes) {
        if self.errored {
            return;
        }
        self.seq = seq;
        self.epoch += 1;
        self.range = seek_range(&self.original, target, self.reverse);
        self.sent = self.acked;
        self.pending_acks = 0;
        self.first = true;
        self.hold = false;
        self.ended = false;
        self.end_sent = false;
    }
}

/// Where a seek to `target` lands: the keys of the original range at or after it (at or before
/// it, in reverse). A target outside the original range ends the iterator, as abstract-level
/// specifies, rather than landing on the range's nearest edge.
fn seek_range(original: &KeyRange, target: &Bytes, reverse: bool) -> KeyRange {
    if !original.contains(target) {
        return KeyRange::all().gt(target).lt(target);
    }
    if reverse { original.to_key(target) } else { original.from_key(target) }
}
