//! Iterator snapshots: one LMDB read transaction per open iterator, counted against a global
//! cap, closed when idle, and closable by a remap (see [`crate::env`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use heed::{MdbError, RoTxn, WithoutTls};
use multilevel_proto::StoreError;

use crate::error::internal;
use crate::metrics::SnapshotGauge;

/// An open snapshot.
struct Snapshot {
    txn: RoTxn<'static, WithoutTls>,
    last_used: Instant,
}

/// Where an iterator's snapshot lives; empty once closed.
pub(crate) struct SnapshotSlot {
    id: u64,
    state: Mutex<Option<Snapshot>>,
}

impl SnapshotSlot {
    fn state(&self) -> MutexGuard<'_, Option<Snapshot>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `read` on the snapshot and marks it used, or fails if it was closed.
    pub(crate) fn read<R>(
        &self,
        now: Instant,
        read: impl FnOnce(&RoTxn<'static, WithoutTls>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut state = self.state();
        let snapshot = state.as_mut().ok_or(StoreError::UnknownIterator)?;
        snapshot.last_used = now;
        read(&snapshot.txn)
    }

    /// Whether the snapshot is closed, or idle since before `deadline`.
    fn is_stale(&self, deadline: Option<Instant>) -> bool {
        match &*self.state() {
            None => true,
            Some(snapshot) => deadline.is_some_and(|deadline| snapshot.last_used <= deadline),
        }
    }
}

/// Every open snapshot of the store, and their count.
#[derive(Default)]
pub(crate) struct Registry {
    slots: Mutex<HashMap<u64, Arc<SnapshotSlot>>>,
    open: AtomicUsize,
    next_id: AtomicU64,
    /// `open` as the metric sees it: snapshots actually taken.
    gauge: SnapshotGauge,
}

impl Registry {
    fn slots(&self) -> MutexGuard<'_, HashMap<u64, Arc<SnapshotSlot>>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Snapshots open now.
    pub(crate) fn open_count(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    fn try_reserve(&self, max: usize) -> bool {
        self.open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).is_ok()
    }

    /// Ends the snapshot's transaction if it is still open; returns whether it was.
    fn end(&self, slot: &SnapshotSlot) -> bool {
        let taken = slot.state().take();
        let was_open = taken.is_some();
        if was_open {
            self.open.fetch_sub(1, Ordering::AcqRel);
            self.gauge.0.decrement(1.0);
        }
        drop(taken);
        was_open
    }

    /// Closes one snapshot.
    pub(crate) fn release(&self, slot: &SnapshotSlot) {
        self.end(slot);
        self.slots().remove(&slot.id);
    }

    /// Closes every snapshot; returns how many were open. Waits for batch reads in progress.
    pub(crate) fn close_all(&self) -> usize {
        let slots = std::mem::take(&mut *self.slots());
        slots.values().filter(|slot| self.end(slot)).count()
    }

    /// Closes the snapshots of every connection that were not used since `deadline`, skipping
    /// those being read right now.
    fn close_idle(&self, deadline: Instant) -> usize {
        let mut slots = self.slots();
        let mut closed = 0;
        slots.retain(|_, slot| {
            let Ok(mut state) = slot.state.try_lock() else { return true };
            if state.as_ref().is_some_and(|s| s.last_used <= deadline) {
                drop(state.take());
                self.open.fetch_sub(1, Ordering::AcqRel);
                self.gauge.0.decrement(1.0);
                closed += 1;
                return false;
            }
            state.is_some()
        });
        closed
    }
}

/// How a snapshot transaction is begun: the store's `Shared::open_snapshot`, which hands the
/// new transaction to `register` while no remap can intervene.
pub(crate) type OpenSnapshot<'a> =
    &'a dyn Fn(&mut dyn FnMut(RoTxn<'static, WithoutTls>) -> Arc<SnapshotSlot>) -> heed::Result<Arc<SnapshotSlot>>;

impl Registry {
    /// Takes a snapshot for a new iterator through `open`, within the cap of `max` (closing
    /// snapshots idle past `idle_timeout` to make room).
    pub(crate) fn take(
        &self,
        max: usize,
        idle_timeout: Duration,
        now: Instant,
        open: OpenSnapshot<'_>,
    ) -> Result<Arc<SnapshotSlot>, StoreError> {
        if !self.try_reserve(max) {
            if let Some(deadline) = now.checked_sub(idle_timeout) {
                self.close_idle(deadline);
            }
            if !self.try_reserve(max) {
                return Err(StoreError::TooManySnapshots(max));
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let opened = open(&mut |txn| {
            let slot = Arc::new(SnapshotSlot { id, state: Mutex::new(Some(Snapshot { txn, last_used: now })) });
            self.slots().insert(id, Arc::clone(&slot));
            slot
        });
        if opened.is_ok() {
            self.gauge.0.increment(1.0);
        }
        opened.map_err(|e| {
            self.open.fetch_sub(1, Ordering::AcqRel);
            match e {
                heed::Error::Mdb(MdbError::ReadersFull) => StoreError::TooManySnapshots(max),
                e => internal("taking an iterator snapshot", &e),
            }
        })
    }
}

/// The snapshots of one connection, by iterator id.
#[derive(Default)]
pub(crate) struct ConnectionSnapshots {
    open: HashMap<u64, Arc<SnapshotSlot>>,
}

impl ConnectionSnapshots {
    /// Adds an iterator's snapshot, closing any earlier one of the same id.
    pub(crate) fn insert(&mut self, registry: &Registry, iterator: u64, slot: Arc<SnapshotSlot>) {
        if let Some(old) = self.open.insert(iterator, slot) {
            registry.release(&old);
        }
    }

    /// The snapshot of an iterator.
    pub(crate) fn get(&self, iterator: u64) -> Option<&Arc<SnapshotSlot>> {
        self.open.get(&iterator)
    }

    /// Closes an iterator's snapshot.
    pub(crate) fn close(&mut self, registry: &Registry, iterator: u64) {
        if let Some(slot) = self.open.remove(&iterator) {
            registry.release(&slot);
        }
    }

    /// Closes this connection's snapshots idle for `timeout`, and forgets closed ones.
    pub(crate) fn close_idle(&mut self, registry: &Registry, now: Instant, timeout: Duration) {
        if self.open.is_empty() {
            return;
        }
        let deadline = now.checked_sub(timeout);
        self.open.retain(|_, slot| {
            let stale = slot.is_stale(deadline);
            if stale {
                registry.release(slot);
            }
            !stale
        });
    }

    /// Closes every snapshot of the connection.
    pub(crate) fn close_all(&mut self, registry: &Registry) {
        for (_, slot) in self.open.drain() {
            registry.release(&slot);
        }
    }

    /// Snapshots this connection holds (some may have been closed by the store meanwhile).
    pub(crate) fn len(&self) -> usize {
        self.open.len()
    }
}
