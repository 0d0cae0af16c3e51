//! The order in which one connection's requests reach the store, shared by both server
//! machines ([`ServerConnection`](super::ServerConnection) and
//! [`ManyLevelServer`](crate::ManyLevelServer)).
//!
//! A decoded request is queued, then handed out as a [`ServerEvent::Store`] once the barrier
//! allows: a read waits for earlier writes to finish and a write for earlier reads, so a client
//! reads its own writes and one connection's operations apply in the order sent. Iterator batch
//! reads bypass the queue: they read from the iterator's own snapshot, so no write can change
//! what they see.

use std::collections::VecDeque;

use crate::ids::IdMap;
use crate::server::{OpId, ServerEvent};
use crate::store::StoreRequest;

/// How a request handed to the store counts against the barrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
    /// An iterator batch read: outside the barrier and the in-flight count.
    Unordered,
}

/// The queue, the barrier and the events of one connection. `P` is what the machine keeps
/// about each outstanding request, to answer it when its outcome comes back.
#[derive(Debug)]
pub(crate) struct Scheduler<P> {
    events: VecDeque<ServerEvent>,
    next_op: u64,
    outstanding: IdMap<OpId, (P, Kind)>,
    /// Decoded requests not yet handed to the store.
    queued: VecDeque<(P, StoreRequest)>,
    reads_in_flight: usize,
    writes_in_flight: usize,
}

impl<P> Default for Scheduler<P> {
    fn default() -> Self {
        Self {
            events: VecDeque::new(),
            next_op: 0,
            outstanding: IdMap::default(),
            queued: VecDeque::new(),
            reads_in_flight: 0,
            writes_in_flight: 0,
        }
    }
}

impl<P> Scheduler<P> {
    /// Requests received and not yet answered: queued, or handed to the store (iterator batch
    /// reads not counted).
    pub(crate) fn in_flight(&self) -> usize {
        self.queued.len() + self.reads_in_flight + self.writes_in_flight
    }

    /// Queues a request behind the ones before it; [`dispatch`](Self::dispatch) hands it out.
    pub(crate) fn enqueue(&mut self, pending: P, request: StoreRequest) {
        self.queued.push_back((pending, request));
    }

    /// Hands queued requests to the store in order until one must wait: reads wait for earlier
    /// writes and writes for earlier reads.
    pub(crate) fn dispatch(&mut self) {
        while let Some((_, front)) = self.queued.front() {
            let is_write = front.is_write();
            if (is_write && self.reads_in_flight > 0) || (!is_write && self.writes_in_flight > 0) {
                break;
            }
            let Some((pending, request)) = self.queued.pop_front() else { break };
            let kind = if is_write {
                self.writes_in_flight += 1;
                Kind::Write
            } else {
                self.reads_in_flight += 1;
                Kind::Read
            };
            self.emit(pending, request, kind);
        }
    }

    /// Hands an iterator's batch read to the store at once, outside the barrier.
    pub(crate) fn emit_unordered(&mut self, pending: P, request: StoreRequest) {
        self.emit(pending, request, Kind::Unordered);
    }

    fn emit(&mut self, pending: P, request: StoreRequest, kind: Kind) {
        let op = OpId(self.next_op);
        self.next_op += 1;
        self.outstanding.insert(op, (pending, kind));
        self.events.push_back(ServerEvent::Store { op, request });
    }

    /// The request `op` answered, now no longer in flight; `None` for an unknown `op`.
    pub(crate) fn complete(&mut self, op: OpId) -> Option<P> {
        let (pending, kind) = self.outstanding.remove(&op)?;
        match kind {
            Kind::Read => self.reads_in_flight -= 1,
            Kind::Write => self.writes_in_flight -= 1,
            Kind::Unordered => {}
        }
        Some(pending)
    }

    /// Tells the adapter to release an iterator's snapshot.
    pub(crate) fn close_iterator(&mut self, iterator: u64) {
        self.events.push_back(ServerEvent::CloseIterator { iterator });
    }

    /// Tells the adapter to end a watch.
    pub(crate) fn close_watch(&mut self, watch: u64) {
        self.events.push_back(ServerEvent::CloseWatch { watch });
    }

    /// Drops the requests not yet handed to the store (the connection closed).
    pub(crate) fn clear_queue(&mut self) {
        self.queued.clear();
    }

    /// The next thing the adapter must do for the store.
    pub(crate) fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }
}
