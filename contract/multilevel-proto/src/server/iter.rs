//! The iterators of one connection, as the server sees them: where each stands, its credit and
//! its limit, and the batch reads asked of the store.

use bytes::Bytes;

use super::{Pending, Phase, ServerConfig, ServerConnection};
use crate::message::direct::{IterBatch, encode_iter_data};
use crate::message::{ENTRY_OVERHEAD, IterOptions, ServerMessage};
use crate::range::KeyRange;
use crate::store::{BatchRead, StoreRequest};

/// A batch's entries as the store read them: each key, and its value when values were read.
type BatchEntries = Vec<(Bytes, Option<Bytes>)>;

#[derive(Debug)]
pub(super) struct ServerIterator {
    options: IterOptions,
    /// What is left to visit: the original range narrowed past every key sent.
    range: KeyRange,
    /// Entries still allowed by the limit, if there is one.
    remaining: Option<u64>,
    pub(super) credit: u64,
    pub(super) epoch: u32,
    /// The store has taken the snapshot.
    open: bool,
    /// A batch read is outstanding.
    pub(super) reading: bool,
    /// Everything up to the range's end or the limit was sent.
    ended: bool,
    /// The client was told the iterator ended.
    end_sent: bool,
}

/// What an iterator needs next.
#[derive(Debug)]
pub(super) enum Step {
    /// Ask the store for this batch.
    Read(BatchRead),
    /// Tell the client the iterator ended.
    End,
}

impl ServerIterator {
    pub(super) fn new(options: IterOptions, credit: u64) -> Self {
        let ended = options.range.is_empty() || options.limit == Some(0);
        Self {
            range: options.range.clone(),
            remaining: options.limit,
            options,
            credit,
            epoch: 0,
            open: false,
            reading: false,
            ended,
            end_sent: false,
        }
    }

    pub(super) fn opened(&mut self) {
        self.open = true;
    }

    /// Whether the store has taken its snapshot.
    pub(super) fn is_open(&self) -> bool {
        self.open
    }

    /// Moves to a new position, given as the range left to visit (the client clips its
    /// original range at the seek target), with a fresh limit and credit.
    pub(super) fn seek(&mut self, epoch: u32, range: KeyRange, limit: Option<u64>, credit: u64) {
        self.epoch = epoch;
        self.range = range;
        self.remaining = limit;
        self.credit = credit;
        self.ended = self.range.is_empty() || limit == Some(0);
        self.end_sent = false;
    }

    /// What to do next for this iterator, if anything is due.
    /// `max_frame` is the client's largest frame: batches stay well below it.
    pub(super) fn next_step(&mut self, id: u64, config: &ServerConfig, max_frame: u32) -> Option<Step> {
        if !self.open || self.reading {
            return None;
        }
        if self.ended {
            if self.end_sent {
                return None;
            }
            self.end_sent = true;
            return Some(Step::End);
        }
        if self.credit == 0 {
            return None;
        }
        let max_entries = self.remaining.unwrap_or(u64::MAX).min(config.max_batch_entries).max(1);
        self.reading = true;
        Some(Step::Read(BatchRead {
            iterator: id,
            range: self.range.clone(),
            reverse: self.options.reverse,
            max_entries,
            max_bytes: self.credit.min(config.max_batch_bytes).min(u64::from(max_frame / 2)).max(1),
            values: self.options.values,
        }))
    }

    /// Takes a batch from the store, keeping only the entries the limit allows; returns them
    /// and the last key to send, if any is left. Whether the iterator ended shows in the next
    /// [`next_step`](Self::next_step).
    pub(super) fn take_batch(
        &mut self,
        mut entries: Vec<(Bytes, Option<Bytes>)>,
        exhausted: bool,
    ) -> Option<(BatchEntries, Bytes)> {
        self.reading = false;
        if let Some(remaining) = self.remaining {
            entries.truncate(usize::try_from(remaining).unwrap_or(usize::MAX));
        }
        let count = entries.len() as u64;
        let mut ended = exhausted;
        if let Some(remaining) = &mut self.remaining {
            *remaining -= count;
            ended |= *remaining == 0;
        }
        let Some(last_key) = entries.last().map(|(key, _)| key.clone()) else {
            self.ended = true;
            return None;
        };
        self.range = if self.options.reverse { self.range.before(&last_key) } else { self.range.after(&last_key) };
        ended |= self.range.is_empty();
        let (keys, values) = (self.options.keys, self.options.values);
        // What `entry_cost` charges for each entry as sent (an absent value is sent empty).
        let cost: u64 = entries
            .iter()
            .map(|(key, value)| {
                let key = if keys { key.len() } else { 0 };
                let value = if values { value.as_ref().map_or(0, Bytes::len) } else { 0 };
                (key + value) as u64 + ENTRY_OVERHEAD
            })
            .sum();
        self.credit = self.credit.saturating_sub(cost);
        self.ended = ended;
        Some((entries, last_key))
    }
}

impl ServerConnection {
    /// Whether `id` names an iterator or a watch of this connection, or one still closing.
    pub(super) fn stream_id_in_use(&self, id: u64) -> bool {
        self.iterators.contains_key(&id)
            || self.closing.contains(&id)
            || self.watches.contains_key(&id)
            || self.closing_watches.contains(&id)
    }

    /// Iterators and watches that count against `max_iterators`.
    pub(super) fn streams_open(&self) -> usize {
        self.iterators.len() + self.closing.len() + self.watches.len() + self.closing_watches.len()
    }

    /// Lets every iterator that waited for output room read on.
    pub(super) fn resume_iterators(&mut self) {
        if self.phase == Phase::Closed {
            return;
        }
        let ids: Vec<u64> = self.iterators.keys().copied().collect();
        for id in ids {
            self.read_next_batch(id);
        }
    }

    /// Asks the store for an iterator's next batch if it has credit and no read outstanding,
    /// or tells the client it ended.
    pub(super) fn read_next_batch(&mut self, id: u64) {
        // Counting the reads already asked for keeps many iterators from overshooting at once.
        if self.out.len() as u64 + self.reading_bytes >= self.config.output_high_water as u64 {
            return; // resumed from poll_transmit once the output drains
        }
        let Some(iter) = self.iterators.get_mut(&id) else { return };
        let epoch = iter.epoch;
        match iter.next_step(id, &self.config, self.client_max_frame) {
            Some(Step::Read(read)) => {
                let bytes = read.max_bytes;
                self.reading_bytes += bytes;
                self.scheduler.emit_unordered(Pending::ReadBatch { id, epoch, bytes }, StoreRequest::ReadBatch(read));
            }
            Some(Step::End) => self.send(&ServerMessage::IterEnd { id, epoch }),
            None => {}
        }
    }

    pub(super) fn handle_batch(&mut self, id: u64, epoch: u32, entries: Vec<(Bytes, Option<Bytes>)>, exhausted: bool) {
        let Some(iter) = self.iterators.get_mut(&id) else { return };
        if epoch != iter.epoch {
            // A seek arrived while this batch was read; it belongs to the old position.
            iter.reading = false;
        } else if let Some((entries, last_key)) = iter.take_batch(entries, exhausted) {
            let batch = IterBatch {
                id,
                epoch,
                entries: &entries,
                keys: iter.options.keys,
                values: iter.options.values,
                last_key: &last_key,
            };
            if let Err(len) = encode_iter_data(&batch, self.client_max_frame as usize, &mut self.out) {
                let error = self.too_large(len);
                self.refuse_iter_data(id, error);
            }
        }
        // This read's bytes are no longer reserved: any iterator may go on, not only this one.
        self.resume_iterators();
    }

    /// Forgets iterator `id` and releases its snapshot: now if the store has taken it, else
    /// when its open completes (until then it keeps its place under `max_iterators`, so the
    /// snapshots held never exceed the limit).
    pub(super) fn forget_iterator(&mut self, id: u64) {
        let Some(iter) = self.iterators.remove(&id) else { return };
        if iter.is_open() {
            self.scheduler.close_iterator(id);
        } else {
            self.closing.insert(id);
        }
    }

    pub(super) fn release_iterators(&mut self) {
        for id in std::mem::take(&mut self.iterators).into_keys() {
            self.scheduler.close_iterator(id);
        }
        self.release_watches();
        self.scheduler.clear_queue();
    }
}
