//! Watches: the change feed as etcd watch streams.
//!
//! A position is the etcd revision of a commit (each write is one transaction, so one
//! revision); a change's index is its place among that revision's events in the watched key
//! range, in transaction order, as etcd's watch delivers them. A resumed watch asks for the
//! same range, so its indices are the same.
//!
//! Each watch keeps at most one etcd watch stream, opened by the first read at the read's
//! cursor, and at most one etcd watch response buffered: the stream is read only when a read
//! finds nothing buffered, so a watcher that stops reading costs this process nothing more.
//! A read whose cursor is not where the stream stands (a resumed watch, another range) opens
//! a new stream there.
//!
//! A stream for cursor `(P, i)` starts at revision `P - 1` and drops that revision's events:
//! etcd keeps the state at its compaction revision `C` but not all of revision `C`'s events
//! (the delete events of `C` are gone, measured on etcd 3.4), so the oldest position a feed
//! can start at is `C + 1`, and asking etcd for `P - 1` makes it refuse exactly the positions
//! `P <= C`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_client::{EventType, GetOptions, WatchOptions, WatchResponse, WatchStream};
use multilevel_proto::change::{Change, ChangeEvent, ChangeRead, Cursor, WatchStart};
use multilevel_proto::{Outcome, StoreError};

use crate::call::{MAX_DECODING, Retry, Shared};
use crate::compact::Registration;
use crate::error::EtcdError;

/// First pause before reopening a failed stream; doubles up to a second.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(20);

/// One watch of a connection.
pub(crate) struct WatchState {
    /// Set once by [`WatchState::close`]; reads waiting on it give up.
    closed: tokio::sync::watch::Sender<bool>,
    feed: tokio::sync::Mutex<Feed>,
}

impl WatchState {
    pub(crate) fn new() -> Self {
        Self { closed: tokio::sync::watch::Sender::new(false), feed: tokio::sync::Mutex::new(Feed::default()) }
    }

    /// Ends the watch: a read in progress answers at once with no events.
    pub(crate) fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Answers [`StoreRequest::OpenWatch`](multilevel_proto::StoreRequest::OpenWatch), and
    /// holds compaction at the start until the first read.
    pub(crate) async fn open(&self, shared: &Shared, start: WatchStart) -> Result<Outcome, StoreError> {
        let outcome = open_watch(shared, start).await?;
        if let Outcome::WatchOpened(cursor) = &outcome {
            self.feed.lock().await.hold(shared, *cursor);
        }
        Ok(outcome)
    }

    /// Answers a [`ChangeRead`]: the buffered events from `read.from`, or the next ones etcd
    /// sends, or no events once the watch is closed.
    pub(crate) async fn read(&self, shared: &Shared, read: &ChangeRead) -> Result<Outcome, StoreError> {
        let mut closed = self.closed.subscribe();
        let empty = Outcome::Changes { events: Vec::new(), next: read.from };
        tokio::select! {
            biased;
            _ = closed.wait_for(|closed| *closed) => Ok(empty),
            result = async {
                let mut feed = self.feed.lock().await;
                let result = feed.read(shared, read).await;
                if result.is_err() {
                    feed.stream = None;
                }
                result
            } => result,
        }
    }
}

/// A watch's etcd stream, if open, and where it stands.
#[derive(Default)]
struct Feed {
    stream: Option<Stream>,
    /// Holds compaction (with [`EtcdOptions::compaction`](crate::EtcdOptions)) at the
    /// revision before the feed's cursor.
    registration: Option<Registration>,
}

/// An open etcd watch stream over one key range.
struct Stream {
    watch: WatchStream,
    /// The etcd range `[start, end)` watched.
    range: (Vec<u8>, Vec<u8>),
    /// The first change not yet delivered: the next read must start here to use this stream.
    next: Cursor,
    /// Events of the last response not yet delivered, all at or after `next`.
    buffer: VecDeque<Buffered>,
    /// The last revision seen and how many of its events, so that a revision split across
    /// responses keeps counting.
    last: Option<(u64, u32)>,
}

/// One buffered event.
struct Buffered {
    position: u64,
    index: u32,
    /// The last event of its revision in the response.
    commit_end: bool,
    change: Change,
}

/// Where a stream for `from` starts in etcd: the revision before it (see the module docs).
fn start_revision(from: Cursor) -> i64 {
    i64::try_from(from.position.saturating_sub(1)).unwrap_or(i64::MAX).max(1)
}

impl Feed {
    /// Holds compaction where a feed at `from` needs history from.
    fn hold(&mut self, shared: &Shared, from: Cursor) {
        let revision = start_revision(from);
        match &self.registration {
            Some(registration) => registration.move_to(revision),
            None => self.registration = Some(Registration::new(&shared.snapshots, revision)),
        }
    }

    async fn read(&mut self, shared: &Shared, read: &ChangeRead) -> Result<Outcome, StoreError> {
        let Some(range) = shared.layout.range(&read.range) else {
            // No key can change in an empty range: such a read never finds anything.
            return std::future::pending().await;
        };
        self.hold(shared, read.from);
        if self.stream.as_ref().is_some_and(|s| s.next != read.from || s.range != range) {
            self.stream = None;
        }
        let mut failing: Option<(Instant, Duration)> = None;
        loop {
            let stream = match &mut self.stream {
                Some(stream) => stream,
                None => match open(shared, &range, read.from).await {
                    Ok(stream) => self.stream.insert(stream),
                    Err(cause) => {
                        backoff(shared, &mut failing, cause).await?;
                        continue;
                    }
                },
            };
            if !stream.buffer.is_empty() {
                return Ok(stream.deliver(read));
            }
            match stream.watch.message().await {
                Ok(Some(response)) => {
                    failing = None;
                    if let Some(outcome) = stream.take(shared, response, read)? {
                        return Ok(outcome);
                    }
                }
                Ok(None) => {
                    self.stream = None;
                    backoff(shared, &mut failing, "etcd ended the watch stream".into()).await?;
                }
                Err(error) => {
                    self.stream = None;
                    backoff(shared, &mut failing, format!("the watch stream failed: {error}")).await?;
                }
            }
        }
    }
}

/// Waits before the next attempt, or fails once attempts have failed for longer than
/// [`EtcdOptions::retry_for`](crate::EtcdOptions).
async fn backoff(shared: &Shared, failing: &mut Option<(Instant, Duration)>, cause: String) -> Result<(), StoreError> {
    let (since, delay) = failing.get_or_insert((Instant::now(), FIRST_RETRY_DELAY));
    if since.elapsed() + *delay > shared.options.retry_for {
        return Err(
            EtcdError::Unavailable { endpoints: shared.endpoints.clone(), waited: since.elapsed(), cause }.into()
        );
    }
    tracing::debug!(cause, ?delay, "etcd watch failed; reopening");
    tokio::time::sleep(*delay).await;
    *delay = (*delay * 2).min(Duration::from_secs(1));
    Ok(())
}

/// Opens a stream over `range` for a feed at `from`.
async fn open(shared: &Shared, range: &(Vec<u8>, Vec<u8>), from: Cursor) -> Result<Stream, String> {
    let options = WatchOptions::new()
        .with_range(range.1.clone())
        .with_start_revision(start_revision(from))
        .with_progress_notify();
    let mut client = shared.client.watch_client().max_decoding_message_size(MAX_DECODING);
    let watch =
        client.watch(range.0.clone(), Some(options)).await.map_err(|e| format!("opening an etcd watch: {e}"))?;
    Ok(Stream { watch, range: range.clone(), next: from, buffer: VecDeque::new(), last: None })
}

impl Stream {
    /// Takes in one etcd response: buffers its events from `read.from` on, or answers the
    /// read with the progress it reports; `None` when there is nothing to say yet.
    fn take(
        &mut self,
        shared: &Shared,
        response: WatchResponse,
        read: &ChangeRead,
    ) -> Result<Option<Outcome>, StoreError> {
        if response.compact_revision() > 0 {
            let oldest = u64::try_from(response.compact_revision()).unwrap_or(0).saturating_add(1);
            return Err(StoreError::Compacted { oldest });
        }
        if response.canceled() {
            let reason = response.cancel_reason();
            return Err(EtcdError::Etcd(format!("etcd canceled the watch: {reason}")).into());
        }
        if response.created() {
            return Ok(None);
        }
        let events = response.events();
        if events.is_empty() {
            // A progress notification: every event up to the header's revision was sent.
            let revision = response.header().map_or(0, |h| h.revision());
            let next = Cursor::after(u64::try_from(revision).unwrap_or(0));
            if next > read.from {
                self.next = next;
                return Ok(Some(Outcome::Changes { events: Vec::new(), next }));
            }
            return Ok(None);
        }
        for (i, event) in events.iter().enumerate() {
            let Some(kv) = event.kv() else { continue };
            let position = u64::try_from(kv.mod_revision()).unwrap_or(0);
            let index = match self.last {
                Some((last, count)) if last == position => count,
                _ => 0,
            };
            self.last = Some((position, index.saturating_add(1)));
            if (Cursor { position, index }) < read.from {
                continue;
            }
            let commit_end =
                events.get(i + 1).and_then(|e| e.kv()).is_none_or(|next| next.mod_revision() != kv.mod_revision());
            let key = shared.layout.user_key(kv.key());
            let change = match event.event_type() {
                EventType::Put => Change::Put { key, value: Bytes::copy_from_slice(kv.value()) },
                EventType::Delete => Change::Del { key },
            };
            self.buffer.push_back(Buffered { position, index, commit_end, change });
        }
        if self.buffer.is_empty() { Ok(None) } else { Ok(Some(self.deliver(read))) }
    }

    /// Answers `read` from the buffer (which must hold something): at least one event, then
    /// more while the byte budget lasts.
    fn deliver(&mut self, read: &ChangeRead) -> Outcome {
        let mut budget = read.max_bytes.max(1);
        let mut events: Vec<ChangeEvent> = Vec::new();
        while !self.buffer.is_empty() && (budget > 0 || events.is_empty()) {
            let Some(b) = self.buffer.pop_front() else { break };
            let change = if read.values { b.change } else { b.change.without_value() };
            let event = ChangeEvent { position: b.position, index: b.index, commit_end: b.commit_end, change };
            budget = budget.saturating_sub(event.cost());
            events.push(event);
        }
        let next = match events.last() {
            Some(last) if last.commit_end => Cursor::after(last.position),
            Some(last) => last.next_cursor(),
            None => read.from,
        };
        self.next = next;
        Outcome::Changes { events, next }
    }
}

/// Answers [`StoreRequest::OpenWatch`](multilevel_proto::StoreRequest::OpenWatch): the
/// cursor after the current revision, or the given cursor if its history is still kept.
async fn open_watch(shared: &Shared, start: WatchStart) -> Result<Outcome, StoreError> {
    match start {
        WatchStart::Now => {
            let revision = shared.current_revision().await?;
            Ok(Outcome::WatchOpened(Cursor::after(u64::try_from(revision).unwrap_or(0))))
        }
        WatchStart::At(cursor) => {
            if let Some(oldest) = compacted(shared, start_revision(cursor)).await? {
                return Err(StoreError::Compacted { oldest });
            }
            Ok(Outcome::WatchOpened(cursor))
        }
    }
}

/// Whether the state at `revision` was compacted away; if so, the oldest position a feed can
/// start at (the compaction revision plus one).
async fn compacted(shared: &Shared, revision: i64) -> Result<Option<u64>, EtcdError> {
    if readable(shared, revision).await? {
        return Ok(None);
    }
    // The compaction revision is the lowest readable one; etcd tells it no other way.
    let (mut low, mut high) = (revision, shared.current_revision().await?);
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if readable(shared, middle).await? {
            high = middle;
        } else {
            low = middle;
        }
    }
    Ok(Some(u64::try_from(high).unwrap_or(0).saturating_add(1)))
}

/// Whether a range at `revision` is served (not compacted; a future revision counts as
/// readable).
async fn readable(shared: &Shared, revision: i64) -> Result<bool, EtcdError> {
    let probe = shared.layout.record_key(0);
    let options = GetOptions::new().with_keys_only().with_revision(revision);
    let result = shared
        .call(Retry::Idempotent, Some(revision), |mut kv| {
            let (probe, options) = (probe.clone(), options.clone());
            async move { kv.get(probe, Some(options)).await }
        })
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(EtcdError::Compacted { .. }) => Ok(false),
        Err(EtcdError::Etcd(message)) if message.contains("future revision") => Ok(true),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_start_a_revision_early() {
        assert_eq!(start_revision(Cursor::at(0)), 1);
        assert_eq!(start_revision(Cursor::at(1)), 1);
        assert_eq!(start_revision(Cursor { position: 10, index: 3 }), 9);
    }
}
