//! Iterator batches: ranges at the iterator's revision.
//!
//! Forward batches are ascending ranges from the batch's lower bound with a limit: etcd reads
//! only what it returns. etcd has no byte cap, so the limit is estimated from the sizes seen
//! so far and the batch is trimmed to `max_bytes` (what was trimmed is read again next time).
//!
//! Reverse batches would cost the whole remaining range each as etcd `DESCEND` ranges (etcd
//! reads every key of the range, then sorts). Instead the first reverse batch of an iterator
//! makes one forward keys-only pass over its range and keeps every
//! [`CHECKPOINT_SPACING`]-th key. A reverse batch then reads, forward, only the keys between
//! the nearest checkpoint below its upper bound and that bound (keys only, at most
//! `CHECKPOINT_SPACING` of them, kept for the batches that follow in the same window), takes
//! its entries from their end, and reads values for those alone.

use bytes::Bytes;
use multilevel_proto::store::BatchRead;
use multilevel_proto::{Outcome, StoreError};

use crate::call::Shared;
use crate::compact::Registration;
use crate::error::EtcdError;
use crate::keys::successor;

/// Keys between two reverse-iteration checkpoints.
pub(crate) const CHECKPOINT_SPACING: usize = 1024;
/// Keys per page of the forward pass that finds checkpoints.
const PASS_PAGE: i64 = 4096;
/// Entries asked for at once when nothing is known about their sizes.
const FIRST_GUESS: u64 = 128;

/// One open iterator.
#[derive(Debug)]
pub(crate) struct IterState {
    /// The snapshot: an etcd revision.
    pub(crate) revision: i64,
    /// Average bytes per entry seen so far (0: none seen).
    average: u64,
    checkpoints: Option<Checkpoints>,
    /// The keys of the reverse window read last.
    window: Option<Window>,
    /// Holds compaction back while the iterator is in use.
    registration: Registration,
}

/// The keys of `[from, upper)` at the iterator's revision.
#[derive(Debug)]
struct Window {
    from: Vec<u8>,
    upper: Vec<u8>,
    keys: Vec<Vec<u8>>,
}

/// Every `CHECKPOINT_SPACING`-th key of `[start, end)` at the iterator's revision, from the
/// first one.
#[derive(Debug)]
struct Checkpoints {
    start: Vec<u8>,
    end: Vec<u8>,
    keys: Vec<Vec<u8>>,
}

impl IterState {
    pub(crate) fn new(revision: i64, registration: Registration) -> Self {
        Self { revision, average: 0, checkpoints: None, window: None, registration }
    }

    /// How many entries to ask for to fill about `bytes_left`, at most `entries_left`.
    fn guess(&self, bytes_left: u64, entries_left: u64) -> i64 {
        let guess = bytes_left.checked_div(self.average).map_or(FIRST_GUESS, |n| n + 1);
        i64::try_from(guess.clamp(1, entries_left.max(1))).unwrap_or(i64::MAX)
    }

    fn observe(&mut self, entries: usize, bytes: u64) {
        if entries > 0 {
            self.average = (bytes / entries as u64).max(1);
        }
    }
}

/// A batch being filled.
struct Filling<'a> {
    read: &'a BatchRead,
    entries: Vec<(Bytes, Option<Bytes>)>,
    bytes: u64,
}

impl Filling<'_> {
    fn full(&self) -> bool {
        self.entries.len() as u64 >= self.read.max_entries || self.bytes >= self.read.max_bytes
    }

    fn push(&mut self, shared: &Shared, key: &[u8], value: Option<&[u8]>) {
        let key = shared.layout.user_key(key);
        let value = if self.read.values { Some(Bytes::copy_from_slice(value.unwrap_or_default())) } else { None };
        self.bytes += (key.len() + value.as_ref().map_or(0, |v| v.len())) as u64;
        self.entries.push((key, value));
    }

    fn bytes_left(&self) -> u64 {
        self.read.max_bytes.saturating_sub(self.bytes)
    }

    fn entries_left(&self) -> u64 {
        self.read.max_entries.saturating_sub(self.entries.len() as u64)
    }
}

/// Reads one batch of an iterator; see the module docs.
pub(crate) async fn read_batch(
    shared: &Shared,
    state: &mut IterState,
    read: &BatchRead,
) -> Result<Outcome, StoreError> {
    state.registration.touch();
    let Some((start, end)) = shared.layout.range(&read.range) else {
        return Ok(Outcome::Batch { entries: Vec::new(), exhausted: true });
    };
    let mut batch = Filling { read, entries: Vec::new(), bytes: 0 };
    let exhausted = if read.reverse {
        reverse(shared, state, &mut batch, start, end).await?
    } else {
        forward(shared, state, &mut batch, start, end).await?
    };
    state.observe(batch.entries.len(), batch.bytes);
    Ok(Outcome::Batch { entries: batch.entries, exhausted })
}

/// Fills `batch` ascending from `start`; returns whether the range is exhausted.
async fn forward(
    shared: &Shared,
    state: &mut IterState,
    batch: &mut Filling<'_>,
    mut start: Vec<u8>,
    end: Vec<u8>,
) -> Result<bool, EtcdError> {
    loop {
        let limit = state.guess(batch.bytes_left(), batch.entries_left());
        let (kvs, more, _) = shared.range(&start, &end, state.revision, limit, !batch.read.values).await?;
        let count = kvs.len();
        for (i, kv) in kvs.iter().enumerate() {
            batch.push(shared, kv.key(), Some(kv.value()));
            if batch.full() {
                return Ok(i + 1 == count && !more);
            }
        }
        state.observe(batch.entries.len(), batch.bytes);
        match kvs.last() {
            Some(last) if more => start = successor(last.key().to_vec()),
            _ => return Ok(true),
        }
    }
}

/// Fills `batch` descending from below `end`; returns whether the range is exhausted.
async fn reverse(
    shared: &Shared,
    state: &mut IterState,
    batch: &mut Filling<'_>,
    start: Vec<u8>,
    end: Vec<u8>,
) -> Result<bool, EtcdError> {
    let covered = state.checkpoints.as_ref().is_some_and(|c| c.start == start && end <= c.end);
    if !covered {
        state.checkpoints = Some(checkpoints(shared, state.revision, start, end.clone()).await?);
        state.window = None;
    }
    let revision = state.revision;
    let mut upper = end;
    loop {
        let checkpoints = state.checkpoints.as_ref().map(|c| c.keys.as_slice()).unwrap_or_default();
        // The nearest checkpoint below `upper`: between it and `upper` lie at most
        // CHECKPOINT_SPACING keys.
        let index = checkpoints.partition_point(|key| key < &upper);
        let Some(from) = index.checked_sub(1).map(|i| checkpoints[i].clone()) else {
            return Ok(true);
        };
        let earlier_windows = index > 1;
        // The keys of [from, upper): read once per window (keys only), then reused by the
        // batches that follow in it.
        let cached = state.window.as_ref().is_some_and(|w| w.from == from && upper <= w.upper);
        if !cached {
            let (kvs, _, _) = shared.range(&from, &upper, revision, 0, true).await?;
            let keys = kvs.into_iter().map(|kv| kv.into_key_value().0).collect();
            state.window = Some(Window { from, upper: upper.clone(), keys });
        }
        let window = state.window.as_ref().map(|w| w.keys.as_slice()).unwrap_or_default();
        let available = window.partition_point(|key| key < &upper);
        if available == 0 {
            return Ok(!earlier_windows);
        }
        let take = if batch.read.values {
            usize::try_from(state.guess(batch.bytes_left(), batch.entries_left())).unwrap_or(usize::MAX)
        } else {
            usize::try_from(batch.entries_left()).unwrap_or(usize::MAX)
        }
        .clamp(1, available);
        let first = available - take;
        let chosen: Vec<(Vec<u8>, Option<Vec<u8>>)> = if batch.read.values {
            let (kvs, _, _) = shared.range(&window[first], &upper, revision, 0, false).await?;
            kvs.into_iter().map(|kv| kv.into_key_value()).map(|(k, v)| (k, Some(v))).collect()
        } else {
            window[first..available].iter().map(|k| (k.clone(), None)).collect()
        };
        for (i, (key, value)) in chosen.iter().enumerate().rev() {
            batch.push(shared, key, value.as_deref());
            if batch.full() {
                return Ok(i == 0 && first == 0 && !earlier_windows);
            }
        }
        state.observe(batch.entries.len(), batch.bytes);
        match chosen.into_iter().next() {
            Some((lowest, _)) => upper = lowest,
            None => return Ok(first == 0 && !earlier_windows),
        }
    }
}

/// One forward keys-only pass over `[start, end)` at `revision`, keeping every
/// `CHECKPOINT_SPACING`-th key.
async fn checkpoints(shared: &Shared, revision: i64, start: Vec<u8>, end: Vec<u8>) -> Result<Checkpoints, EtcdError> {
    let mut keys = Vec::new();
    let mut seen = 0usize;
    let mut from = start.clone();
    loop {
        let (page, more, _) = shared.range(&from, &end, revision, PASS_PAGE, true).await?;
        for kv in &page {
            if seen.is_multiple_of(CHECKPOINT_SPACING) {
                keys.push(kv.key().to_vec());
            }
            seen += 1;
        }
        match page.last() {
            Some(last) if more => from = successor(last.key().to_vec()),
            _ => break,
        }
    }
    tracing::debug!(keys = seen, checkpoints = keys.len(), revision, "reverse iteration checkpoints");
    Ok(Checkpoints { start, end, keys })
}
