//! Compaction that spares open iterators ([`EtcdOptions::compaction`](crate::EtcdOptions)).
//!
//! etcd keeps every revision until compacted; an iterator reads at its revision, so
//! compacting past it breaks the iterator. With compaction on, each backend publishes a
//! floor: the oldest revision one of its iterators still reads (iterators idle for longer than
//! [`Compaction::idle_timeout`] excepted), or the revision it last saw when it has none. The
//! floor lives under [`FLOORS`] ‖ backend id, attached to a lease that expires if the backend
//! stops renewing it. Every interval each backend renews its floor, then compacts the cluster
//! to the lowest floor published. A backend publishes its floor before it serves, and any
//! iterator it opens later reads at a revision at or above it, so no compaction can pass an
//! iterator of a backend with compaction on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use etcd_client::{CompactionOptions, PutOptions};

use crate::call::{Retry, Shared};
use crate::error::EtcdError;

/// Where floors are published, for the whole cluster (compaction is cluster-wide): in the
/// session-record space of the namespace `0x02 "multilevel"`, at keys no record can have.
pub(crate) const FLOORS: &[u8] = b"\x02multilevel\x01floors/";

/// How often to compact, and how long an idle iterator is spared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compaction {
    /// Between two compactions (and floor renewals). The floor's lease lasts three of these
    /// (at least 5 s).
    pub interval: Duration,
    /// An iterator that read nothing for this long no longer holds compaction back; its next
    /// batch may fail as compacted.
    pub idle_timeout: Duration,
}

impl Default for Compaction {
    fn default() -> Self {
        Self { interval: Duration::from_secs(60), idle_timeout: Duration::from_secs(300) }
    }
}

/// The revisions this backend's open iterators read, with when each was last used.
#[derive(Debug, Default)]
pub(crate) struct Snapshots {
    next: u64,
    open: HashMap<u64, (i64, Instant)>,
}

/// One open iterator's entry in [`Snapshots`]; removed on drop.
#[derive(Debug)]
pub(crate) struct Registration {
    id: u64,
    snapshots: Arc<Mutex<Snapshots>>,
}

fn lock(snapshots: &Mutex<Snapshots>) -> std::sync::MutexGuard<'_, Snapshots> {
    snapshots.lock().unwrap_or_else(|e| e.into_inner())
}

impl Registration {
    pub(crate) fn new(snapshots: &Arc<Mutex<Snapshots>>, revision: i64) -> Self {
        let mut guard = lock(snapshots);
        guard.next += 1;
        let id = guard.next;
        guard.open.insert(id, (revision, Instant::now()));
        Registration { id, snapshots: Arc::clone(snapshots) }
    }

    pub(crate) fn touch(&self) {
        if let Some(entry) = lock(&self.snapshots).open.get_mut(&self.id) {
            entry.1 = Instant::now();
        }
    }

    /// Marks the entry used now, reading at `revision` (a watch that moved on).
    pub(crate) fn move_to(&self, revision: i64) {
        if let Some(entry) = lock(&self.snapshots).open.get_mut(&self.id) {
            *entry = (revision, Instant::now());
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.snapshots).open.remove(&self.id);
    }
}

impl Snapshots {
    /// The oldest revision read by an iterator used within `idle`.
    fn floor(&self, idle: Duration) -> Option<i64> {
        self.open.values().filter(|(_, used)| used.elapsed() < idle).map(|(revision, _)| *revision).min()
    }
}

/// The key of this backend's floor.
fn floor_key(id: u64) -> Vec<u8> {
    [FLOORS, &id.to_be_bytes()[..]].concat()
}

/// Publishes this backend's floor under a fresh lease.
pub(crate) async fn publish(shared: &Shared, config: Compaction, id: u64) -> Result<i64, EtcdError> {
    let current = shared.current_revision().await?;
    let floor = lock(&shared.snapshots).floor(config.idle_timeout).unwrap_or(current).min(current);
    let ttl = i64::try_from((config.interval * 3).as_secs()).unwrap_or(i64::MAX).max(5);
    let mut client = shared.client.clone();
    let lease = client.lease_grant(ttl, None).await.map_err(|e| EtcdError::Etcd(format!("granting a lease: {e}")))?;
    let options = PutOptions::new().with_lease(lease.id());
    let key = floor_key(id);
    shared
        .call(Retry::Idempotent, None, |mut kv| {
            let (key, options) = (key.clone(), options.clone());
            async move { kv.put(key, floor.to_be_bytes().to_vec(), Some(options)).await }
        })
        .await?;
    Ok(floor)
}

/// Compacts the cluster to the lowest floor published; returns it.
pub(crate) async fn compact(shared: &Shared) -> Result<Option<i64>, EtcdError> {
    let end = crate::keys::prefix_end(FLOORS);
    let (floors, _, _) = shared.range(FLOORS, &end, 0, 0, false).await?;
    let lowest = floors.iter().filter_map(|kv| <[u8; 8]>::try_from(kv.value()).ok()).map(i64::from_be_bytes).min();
    let Some(lowest) = lowest else { return Ok(None) };
    let result = shared
        .call(Retry::Idempotent, None, |mut kv| async move { kv.compact(lowest, Some(CompactionOptions::new())).await })
        .await;
    match result {
        Ok(_) => Ok(Some(lowest)),
        // Someone compacted as far already, or further.
        Err(EtcdError::Compacted { .. }) => Ok(Some(lowest)),
        Err(EtcdError::Etcd(message)) if message.contains("compacted") => Ok(Some(lowest)),
        Err(error) => Err(error),
    }
}

/// Renews the floor and compacts every interval, until the backend is dropped.
pub(crate) async fn run(shared: Weak<Shared>, config: Compaction, id: u64) {
    loop {
        tokio::time::sleep(config.interval).await;
        let Some(shared) = shared.upgrade() else { return };
        match publish(&shared, config, id).await {
            Ok(floor) => tracing::debug!(floor, "published the compaction floor"),
            Err(error) => {
                tracing::warn!(%error, "could not publish the compaction floor; not compacting");
                continue;
            }
        }
        match compact(&shared).await {
            Ok(revision) => tracing::debug!(?revision, "compacted"),
            Err(error) => tracing::warn!(%error, "compaction failed"),
        }
        drop(shared);
    }
}
