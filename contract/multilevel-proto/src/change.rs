//! The change feed: what a watch delivers and where it resumes.
//!
//! Every write that changes the store is one *commit*, numbered by a position that grows with
//! commit order (on LMDB a sequence number, on etcd the revision). A commit's changes are its
//! puts and deletes in the order the write made them: a batch's operations in batch order, an
//! increment as the put of its new value, and a clear as one delete per key it removed (so a
//! watcher of part of the cleared range sees exactly its keys go). A delete of an absent key
//! and a conditional write whose condition failed change nothing and make no commit.
//!
//! A watch asks for the changes to keys in a range, from "now" or after a position, and
//! receives them as [`ChangeEvent`]s in commit order. Each event names its commit and its
//! place in it, so a client resumes exactly after the last event it received: no gap, no
//! duplicate, across reconnects, server restarts and (with a shared backend) failover.
//!
//! History is bounded: a backend keeps the commits of a retention window, and a watch from
//! before it fails with [`ErrorCode::Compacted`](crate::ErrorCode::Compacted), naming the
//! oldest position still kept.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::iter_cost::ENTRY_OVERHEAD;
use crate::range::KeyRange;
use crate::store::StoreError;

/// The hello feature bit for watches.
pub const FEATURE_WATCH: u64 = 1 << 1;

/// One change to one key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Change {
    /// The key was set. The value is empty when the watch asked for keys only.
    Put {
        /// The key.
        key: Bytes,
        /// The new value.
        value: Bytes,
    },
    /// The key was removed.
    Del {
        /// The key.
        key: Bytes,
    },
}

impl Change {
    /// The key changed.
    pub fn key(&self) -> &Bytes {
        match self {
            Change::Put { key, .. } | Change::Del { key } => key,
        }
    }

    /// The new value, for a put.
    pub fn value(&self) -> Option<&Bytes> {
        match self {
            Change::Put { value, .. } => Some(value),
            Change::Del { .. } => None,
        }
    }

    /// The same change with its value dropped (a keys-only watch).
    pub fn without_value(self) -> Change {
        match self {
            Change::Put { key, .. } => Change::Put { key, value: Bytes::new() },
            del => del,
        }
    }

    /// The same change with `strip` bytes cut from the front of its key (a sublevel's prefix).
    pub(crate) fn strip_key(self, strip: usize) -> Change {
        if strip == 0 {
            return self;
        }
        match self {
            Change::Put { key, value } => Change::Put { key: key.slice(strip.min(key.len())..), value },
            Change::Del { key } => Change::Del { key: key.slice(strip.min(key.len())..) },
        }
    }
}

/// A place in the change feed: change `index` of the commit at `position`. A watch resumes at
/// a cursor, delivering that change and everything after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cursor {
    /// The commit's position.
    pub position: u64,
    /// The change's index within the commit (counting every change of the commit, not only
    /// those in a watch's range).
    pub index: u32,
}

impl Cursor {
    /// The start of the commit at `position`.
    pub fn at(position: u64) -> Self {
        Self { position, index: 0 }
    }

    /// The start of the first commit after `position`.
    pub fn after(position: u64) -> Self {
        Self::at(position.saturating_add(1))
    }
}

/// The commits a change log still holds, as a backend with positions of its own (the memory
/// log, LMDB) answers `OpenWatch` and checks the cursor of a `ReadChanges` from it: the same
/// rule everywhere, written once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogSpan {
    /// The newest commit's position (0 before the first).
    pub head: u64,
    /// The highest position dropped by the retention (0 when none was): the log holds exactly
    /// `trimmed + 1 ..= head`.
    pub trimmed: u64,
}

impl LogSpan {
    /// The oldest position a watch may still start at.
    pub fn oldest(self) -> u64 {
        self.trimmed.saturating_add(1)
    }

    /// Fails with [`StoreError::Compacted`] if a read from `from` would miss trimmed commits.
    pub fn check(self, from: Cursor) -> Result<(), StoreError> {
        if from.position <= self.trimmed {
            return Err(StoreError::Compacted { oldest: self.oldest() });
        }
        Ok(())
    }

    /// Where a watch starting at `start` begins: after the head for [`WatchStart::Now`], else
    /// the cursor given, if the log still holds it.
    pub fn open(self, start: WatchStart) -> Result<Cursor, StoreError> {
        match start {
            WatchStart::Now => Ok(Cursor::after(self.head)),
            WatchStart::At(cursor) => self.check(cursor).map(|()| cursor),
        }
    }
}

/// One change as a watch delivers it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// The position of the commit it belongs to.
    pub position: u64,
    /// Its index within the commit (counting the commit's changes outside the watched range
    /// too, so indices may skip).
    pub index: u32,
    /// Whether it is the commit's last change in the watched range: the events of one commit
    /// arrive together, and this marks where they end.
    pub commit_end: bool,
    /// What changed.
    pub change: Change,
}

impl ChangeEvent {
    /// The cursor just past this event: where a watch resumes to continue after it.
    pub fn next_cursor(&self) -> Cursor {
        Cursor { position: self.position, index: self.index.saturating_add(1) }
    }

    /// What this event costs in a watch's flow control: its key and value plus
    /// [`ENTRY_OVERHEAD`], as an iterator entry.
    pub fn cost(&self) -> u64 {
        let value = self.change.value().map_or(0, Bytes::len);
        (self.change.key().len() + value) as u64 + ENTRY_OVERHEAD
    }
}

/// Where a new watch starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WatchStart {
    /// With the first commit after the watch is opened: only changes made from now on. The
    /// server answers with the cursor this is, so a resumed watch misses nothing.
    #[default]
    Now,
    /// At this cursor: replay the history kept from there, then go live.
    At(Cursor),
}

impl WatchStart {
    /// The changes of every commit after `position` (for example an event's `position`
    /// saved earlier).
    pub fn after(position: u64) -> Self {
        WatchStart::At(Cursor::after(position))
    }
}

/// What a watch asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchOptions {
    /// The keys whose changes to deliver.
    pub range: KeyRange,
    /// Where to start.
    pub start: WatchStart,
    /// Deliver the new values of puts (otherwise keys only, with empty values).
    pub values: bool,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self { range: KeyRange::all(), start: WatchStart::Now, values: true }
    }
}

impl WatchOptions {
    /// Every key, from now on, with values.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only the keys of `range`.
    pub fn range(mut self, range: KeyRange) -> Self {
        self.range = range;
        self
    }

    /// Starting at `start`.
    pub fn start(mut self, start: WatchStart) -> Self {
        self.start = start;
        self
    }

    /// Starting after the commit at `position`.
    pub fn after(self, position: u64) -> Self {
        self.start(WatchStart::after(position))
    }

    /// Keys only: puts come with empty values.
    pub fn keys_only(mut self) -> Self {
        self.values = false;
        self
    }
}

/// One read of a watch's changes, emitted by the server machine
/// ([`StoreRequest::ReadChanges`](crate::StoreRequest::ReadChanges)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRead {
    /// The watch, as opened with [`StoreRequest::OpenWatch`](crate::StoreRequest::OpenWatch).
    pub watch: u64,
    /// The first change not yet delivered.
    pub from: Cursor,
    /// Deliver only changes to keys in this range.
    pub range: KeyRange,
    /// Deliver values.
    pub values: bool,
    /// Stop after the event that makes the returned events cost this many bytes (by
    /// [`ChangeEvent::cost`]); at least one event is returned when any is due.
    pub max_bytes: u64,
}

/// Selects the events of one stored commit that a read delivers: the changes from `from` on
/// (when the commit is `from`'s) that lie in `range`, up to the byte budget. Returns the
/// events, and the cursor after the last change looked at (the next one to look at).
///
/// Backends that keep commits as lists of changes (LMDB, memory) share it, so they agree on
/// what `commit_end` and the cursors mean.
pub fn select_changes(
    position: u64,
    changes: impl IntoIterator<Item = Change>,
    read: &ChangeRead,
    budget: &mut u64,
    out: &mut Vec<ChangeEvent>,
) -> Cursor {
    let first = if position == read.from.position { read.from.index } else { 0 };
    let start = out.len();
    let mut next = Cursor { position: position.saturating_add(1), index: 0 };
    for (index, change) in changes.into_iter().enumerate() {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        if index < first || !read.range.contains(change.key()) {
            continue;
        }
        if *budget == 0 && out.len() > start {
            // The rest of the commit waits for the next read, which starts here.
            next = Cursor { position, index };
            break;
        }
        let change = if read.values { change } else { change.without_value() };
        let event = ChangeEvent { position, index, commit_end: false, change };
        *budget = budget.saturating_sub(event.cost());
        out.push(event);
    }
    if next.position != position
        && let Some(last) = out.get_mut(start..).and_then(|events| events.last_mut())
    {
        last.commit_end = true;
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_span_opens_and_checks_by_one_rule() {
        let span = LogSpan { head: 9, trimmed: 3 };
        assert_eq!(span.open(WatchStart::Now), Ok(Cursor::at(10)));
        assert_eq!(span.open(WatchStart::At(Cursor::at(4))), Ok(Cursor::at(4)));
        assert_eq!(span.open(WatchStart::At(Cursor::at(3))), Err(StoreError::Compacted { oldest: 4 }));
        assert_eq!(span.check(Cursor { position: 3, index: 2 }), Err(StoreError::Compacted { oldest: 4 }));
        assert_eq!(LogSpan::default().open(WatchStart::At(Cursor::at(1))), Ok(Cursor::at(1)));
    }
}
