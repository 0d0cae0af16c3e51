//! The watches of one connection, as the server sees them: where each feed stands, its
//! credit, and the reads of the change feed asked of the store.
//!
//! A watch reads the feed one [`ChangeRead`] at a time, outside the request barrier (the feed
//! has its own order). A read may wait in the store until a commit happens, so it counts
//! neither as in flight nor against the output reservation of iterators; a watch only reads
//! while it has credit and the output is below its high-water mark, so a client that stops
//! reading costs the server no memory and its writers nothing.

use super::{Pending, ServerConnection};
use crate::change::{ChangeEvent, ChangeRead, Cursor, FEATURE_WATCH, WatchStart};
use crate::message::{ErrorCode, RemoteError, ServerMessage};
use crate::range::KeyRange;
use crate::store::{StoreError, StoreRequest};

/// A watch with no events in its range still reports its progress every this many commits,
/// so that after a reconnect it resumes past the commits it skipped rather than at a position
/// the retention may have trimmed meanwhile.
const PROGRESS_EVERY: u64 = 256;

#[derive(Debug)]
pub(super) struct ServerWatch {
    range: KeyRange,
    values: bool,
    /// The first change not yet read from the store.
    cursor: Cursor,
    /// The cursor the client was last told of.
    told: Cursor,
    credit: u64,
    /// The store resolved where the feed starts.
    open: bool,
    /// A read is outstanding.
    reading: bool,
}

impl ServerConnection {
    /// Starts a watch (`ClientMessage::Watch`).
    pub(super) fn open_watch(&mut self, id: u64, range: KeyRange, start: WatchStart, values: bool, credit: u64) {
        if self.features & FEATURE_WATCH == 0 {
            let message = "watches need the watch feature, which the client's hello did not announce";
            self.fail_watch(id, RemoteError::new(ErrorCode::Unsupported, message), None);
            return;
        }
        if self.streams_open() >= self.config.max_iterators as usize {
            let message =
                format!("at most {} iterators and watches may be open per connection", self.config.max_iterators);
            self.fail_watch(id, RemoteError::new(ErrorCode::TooManyIterators, message), None);
            return;
        }
        if let Some(error) = self.out_of_scope_range(&range, "watch") {
            self.fail_watch(id, error, None);
            return;
        }
        let watch = ServerWatch {
            range,
            values,
            cursor: Cursor::default(),
            told: Cursor::default(),
            credit,
            open: false,
            reading: false,
        };
        self.watches.insert(id, watch);
        // Ordered like a read, so "now" comes after this connection's earlier writes.
        self.enqueue(Pending::OpenWatch { id }, StoreRequest::OpenWatch { watch: id, start });
    }

    /// Adds credit to a watch (`ClientMessage::WatchCredit`).
    pub(super) fn credit_watch(&mut self, id: u64, bytes: u64) {
        if let Some(watch) = self.watches.get_mut(&id) {
            watch.credit = watch.credit.saturating_add(bytes);
            self.read_changes(id);
        }
    }

    /// Ends a watch (`ClientMessage::WatchClose`, or its failure): the store answers a read
    /// still waiting, and forgets the watch.
    pub(super) fn close_watch(&mut self, id: u64) {
        let Some(watch) = self.watches.remove(&id) else { return };
        if !watch.open || watch.reading {
            self.closing_watches.insert(id);
        }
        self.scheduler.close_watch(id);
    }

    /// Whether an outcome for watch `id` belongs to a watch already ended (and frees its id).
    fn outcome_of_ended_watch(&mut self, id: u64) -> bool {
        self.closing_watches.remove(&id)
    }

    /// Ends every watch (the connection closed).
    pub(super) fn release_watches(&mut self) {
        for id in std::mem::take(&mut self.watches).into_keys() {
            self.scheduler.close_watch(id);
        }
    }

    /// The store resolved where watch `id` starts.
    pub(super) fn watch_opened(&mut self, id: u64, cursor: Cursor) {
        if self.outcome_of_ended_watch(id) {
            // Closed while its open waited: the store may keep something for it.
            self.scheduler.close_watch(id);
            return;
        }
        let Some(watch) = self.watches.get_mut(&id) else { return };
        watch.open = true;
        watch.cursor = cursor;
        watch.told = cursor;
        self.send(&ServerMessage::WatchOpened { id, cursor });
        self.read_changes(id);
    }

    /// The store's answer to a read of watch `id`.
    pub(super) fn watch_changes(&mut self, id: u64, events: Vec<ChangeEvent>, next: Cursor) {
        if self.outcome_of_ended_watch(id) {
            return;
        }
        let Some(watch) = self.watches.get_mut(&id) else { return };
        watch.reading = false;
        if next < watch.cursor
            || events.iter().any(|event| event.next_cursor() <= watch.cursor || event.next_cursor() > next)
        {
            let message = format!("the store answered a watch read from {:?} with events out of order", watch.cursor);
            self.fail_watch(id, RemoteError::new(ErrorCode::Internal, message), None);
            return;
        }
        watch.cursor = next;
        let cost: u64 = events.iter().map(ChangeEvent::cost).sum();
        watch.credit = watch.credit.saturating_sub(cost);
        let progress = next.position.saturating_sub(watch.told.position) >= PROGRESS_EVERY;
        if !events.is_empty() || (progress && next != watch.told) {
            watch.told = next;
            self.send(&ServerMessage::WatchData { id, events, next });
        }
        self.read_changes(id);
    }

    /// A read or open of watch `id` failed: the watch ends with the store's error.
    pub(super) fn watch_failed(&mut self, id: u64, error: &StoreError) {
        if self.outcome_of_ended_watch(id) {
            return;
        }
        if let Some(watch) = self.watches.get_mut(&id) {
            // This was its outstanding open or read: nothing of it is with the store any more.
            (watch.open, watch.reading) = (true, false);
            let oldest = match error {
                StoreError::Compacted { oldest } => Some(*oldest),
                _ => None,
            };
            self.fail_watch(id, error.to_remote(), oldest);
        }
    }

    fn fail_watch(&mut self, id: u64, error: RemoteError, oldest: Option<u64>) {
        self.close_watch(id);
        self.send(&ServerMessage::WatchError { id, error, oldest });
    }

    /// Asks the store for watch `id`'s next changes, if it has credit, no read outstanding and
    /// the output has room.
    pub(super) fn read_changes(&mut self, id: u64) {
        if self.out.len() >= self.config.output_high_water {
            return; // resumed from poll_transmit once the output drains
        }
        let max_frame = u64::from(self.client_max_frame / 2);
        let max_bytes = self.config.max_batch_bytes.min(max_frame);
        let Some(watch) = self.watches.get_mut(&id) else { return };
        if !watch.open || watch.reading || watch.credit == 0 {
            return;
        }
        watch.reading = true;
        let read = ChangeRead {
            watch: id,
            from: watch.cursor,
            range: watch.range.clone(),
            values: watch.values,
            max_bytes: watch.credit.min(max_bytes).max(1),
        };
        self.scheduler.emit_unordered(Pending::ReadChanges { id }, StoreRequest::ReadChanges(read));
    }

    /// Lets every watch that waited for output room read on.
    pub(super) fn resume_watches(&mut self) {
        let ids: Vec<u64> = self.watches.keys().copied().collect();
        for id in ids {
            self.read_changes(id);
        }
    }
}
