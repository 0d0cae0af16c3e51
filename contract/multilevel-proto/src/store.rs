//! The contract between the server state machine and a store.
//!
//! The server machine never touches storage. It emits [`StoreRequest`]s through
//! [`ServerConnection::poll_event`](crate::ServerConnection::poll_event); the adapter executes
//! each against its store and hands the result back with
//! [`ServerConnection::handle_outcome`](crate::ServerConnection::handle_outcome).
//!
//! # At-most-once writes
//!
//! Every write carries the client's [`SessionId`] and the request id the client gave it. A store
//! must apply a given `(session, request)` pair at most once, and answer a replay of it with the
//! outcome of the original, including after a restart. [`SessionRecord`] is the bookkeeping for
//! one session; a durable store persists it in the same transaction as the write it records.

use std::collections::VecDeque;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::change::{ChangeEvent, ChangeRead, Cursor, WatchStart};
use crate::condition::{Condition, ConditionFailed, WriteAnswer};
use crate::message::{BatchOp, ErrorCode, RemoteError, SessionId};
use crate::range::KeyRange;

/// A write to apply at most once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteRequest {
    /// The client session that issued it. [`NO_REPLAY_SESSION`](crate::message::NO_REPLAY_SESSION)
    /// means the client never replays: apply the write and keep no record.
    pub session: SessionId,
    /// The client's request id, increasing within the session.
    pub request: u64,
    /// What to write.
    pub op: WriteOp,
}

/// The writes a store executes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Set a key.
    Put {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
    },
    /// Remove a key.
    Del {
        /// The key.
        key: Bytes,
    },
    /// Apply the operations atomically, in order.
    Batch(Vec<BatchOp>),
    /// Remove the keys of a range.
    Clear {
        /// The keys to remove.
        range: KeyRange,
        /// Count `limit` from the highest key down.
        reverse: bool,
        /// Remove at most this many keys.
        limit: Option<u64>,
    },
    /// Apply the operations atomically, in order, if every condition holds when checked in
    /// the same transaction; otherwise apply nothing and answer [`Outcome::ConditionFailed`]
    /// with the first condition that failed. See [`condition`](crate::condition).
    Conditional {
        /// The conditions.
        conditions: Vec<Condition>,
        /// The writes.
        ops: Vec<BatchOp>,
    },
    /// Add `by` to the counter at `key` (absent counts as 0) and answer [`Outcome::Counter`];
    /// a value that is not a counter fails with [`StoreError::NotANumber`], applying nothing.
    /// See [`condition`](crate::condition) for the stored format.
    Increment {
        /// The counter's key.
        key: Bytes,
        /// What to add.
        by: i64,
    },
}

impl WriteOp {
    /// The keys this write sets or removes (not those it only checks); a `Clear` has none.
    pub fn written_keys(&self) -> Vec<&Bytes> {
        match self {
            WriteOp::Put { key, .. } | WriteOp::Del { key } | WriteOp::Increment { key, .. } => vec![key],
            WriteOp::Batch(ops) | WriteOp::Conditional { ops, .. } => ops.iter().map(BatchOp::key).collect(),
            WriteOp::Clear { .. } => Vec::new(),
        }
    }
}

/// One batch of an open iterator to read from its snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRead {
    /// The iterator, as opened with [`StoreRequest::OpenIterator`].
    pub iterator: u64,
    /// The keys still to visit; already narrowed past everything sent before.
    pub range: KeyRange,
    /// Walk from the highest key down.
    pub reverse: bool,
    /// Return at most this many entries (at least one).
    pub max_entries: u64,
    /// Stop after the entry that makes the returned keys and values reach this many bytes.
    pub max_bytes: u64,
    /// Return values, not only keys.
    pub values: bool,
}

/// Work for the store, emitted by the server state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreRequest {
    /// Read one key. Answer [`Outcome::Value`].
    Get {
        /// The key.
        key: Bytes,
    },
    /// Read several keys. Answer [`Outcome::Values`], one slot per key.
    GetMany {
        /// The keys.
        keys: Vec<Bytes>,
    },
    /// Apply a write at most once. Answer [`Outcome::Written`].
    Write(WriteRequest),
    /// Take the snapshot an iterator will read. Answer [`Outcome::IteratorOpened`].
    OpenIterator {
        /// The iterator's id, unique within the connection.
        iterator: u64,
    },
    /// Read a batch from an iterator's snapshot. Answer [`Outcome::Batch`].
    ReadBatch(BatchRead),
    /// Report counters. Answer [`Outcome::Stats`]; adapters may add their own (connections).
    Stats,
    /// Start a watch: resolve where its feed starts. Answer [`Outcome::WatchOpened`] with the
    /// cursor of the first change to deliver (for [`WatchStart::Now`], the start of the next
    /// commit), or [`StoreError::Compacted`] when the start is older than the history kept.
    /// Ordered like a read: a watch from now sees every write the connection made after it.
    OpenWatch {
        /// The watch's id, unique within the connection.
        watch: u64,
        /// Where it starts.
        start: WatchStart,
    },
    /// Read a watch's next changes. Answer [`Outcome::Changes`], but only once there is a
    /// commit at or after `from` (the read may wait, queued, for one to happen), or at once
    /// with no events when [`Executor::close_watch`](crate::backend::Executor::close_watch)
    /// closes the watch. [`StoreError::Compacted`] when `from` is older than the history kept.
    ReadChanges(ChangeRead),
}

impl StoreRequest {
    /// Whether this request changes the store.
    pub fn is_write(&self) -> bool {
        matches!(self, StoreRequest::Write(_))
    }
}

/// A successful answer to a [`StoreRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Answer to `Get`.
    Value(Option<Bytes>),
    /// Answer to `GetMany`.
    Values(Vec<Option<Bytes>>),
    /// Answer to `Write`: applied now, or applied before and replayed.
    Written,
    /// Answer to `OpenIterator`.
    IteratorOpened,
    /// Answer to `ReadBatch`.
    Batch {
        /// `(key, value)` pairs in iteration order; values are `None` when not asked for.
        entries: Vec<(Bytes, Option<Bytes>)>,
        /// Whether the range holds nothing after the last entry.
        exhausted: bool,
    },
    /// Answer to `Stats`: `(name, value)` pairs.
    Stats(Vec<(String, u64)>),
    /// Answer to an `Increment` write: the counter's new value.
    Counter(i64),
    /// Answer to a `Conditional` write whose condition failed: nothing was applied.
    ConditionFailed(ConditionFailed),
    /// Answer to `OpenWatch`: the first change the watch delivers.
    WatchOpened(Cursor),
    /// Answer to `ReadChanges`.
    Changes {
        /// The changes in the watched range, in commit order (see
        /// [`select_changes`](crate::change::select_changes)).
        events: Vec<ChangeEvent>,
        /// Where the next read starts: past every change looked at, including those outside
        /// the range. Equal to the read's `from` when nothing new was found (a wake-up: read
        /// again).
        next: Cursor,
    },
}

impl From<WriteAnswer> for Outcome {
    fn from(answer: WriteAnswer) -> Self {
        match answer {
            WriteAnswer::Done => Outcome::Written,
            WriteAnswer::Counter(value) => Outcome::Counter(value),
            WriteAnswer::Failed(failed) => Outcome::ConditionFailed(failed),
        }
    }
}

/// Why a store could not carry out a request. Each maps to an [`ErrorCode`] for the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store is read-only.
    #[error("the database is read-only")]
    ReadOnly,
    /// A hook rejected the write.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The database is full and could not grow.
    #[error("storage full: {0}")]
    StorageFull(String),
    /// A key is too long for the store.
    #[error("key of {len} bytes exceeds the maximum of {max} bytes")]
    KeyTooLarge {
        /// The key's length.
        len: usize,
        /// The store's maximum.
        max: usize,
    },
    /// No snapshot could be taken for a new iterator.
    #[error("too many open iterator snapshots ({0} allowed)")]
    TooManySnapshots(usize),
    /// The iterator's snapshot was closed, e.g. after idling too long.
    #[error("iterator snapshot expired or unknown")]
    UnknownIterator,
    /// A replayed write is older than the outcomes the store remembers.
    #[error("replayed write {request} is older than the outcomes remembered for this session")]
    ReplayExpired {
        /// The replayed request id.
        request: u64,
    },
    /// Anything else; the message has details.
    #[error("internal store error: {0}")]
    Internal(String),
    /// An increment found a value that is not a counter, or would overflow; nothing was
    /// applied.
    #[error("not a number: {0}")]
    NotANumber(String),
    /// A watch asked for changes older than the history the store keeps.
    #[error(
        "the change history before position {oldest} is no longer kept (trimmed by the retention); re-read the range and watch from position {oldest} or later"
    )]
    Compacted {
        /// The oldest position still available.
        oldest: u64,
    },
}

impl StoreError {
    /// The code the client sees.
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::ReadOnly => ErrorCode::ReadOnly,
            StoreError::Rejected(_) => ErrorCode::Rejected,
            StoreError::StorageFull(_) => ErrorCode::StorageFull,
            StoreError::KeyTooLarge { .. } => ErrorCode::KeyTooLarge,
            StoreError::TooManySnapshots(_) => ErrorCode::TooManySnapshots,
            StoreError::UnknownIterator => ErrorCode::UnknownIterator,
            StoreError::ReplayExpired { .. } => ErrorCode::ReplayExpired,
            StoreError::Internal(_) => ErrorCode::Internal,
            StoreError::NotANumber(_) => ErrorCode::NotANumber,
            StoreError::Compacted { .. } => ErrorCode::Compacted,
        }
    }

    /// The error as the client receives it. A hook's rejection keeps its message verbatim.
    pub fn to_remote(&self) -> RemoteError {
        let message = match self {
            StoreError::Rejected(message) => message.clone(),
            other => other.to_string(),
        };
        RemoteError::new(self.code(), message)
    }
}

/// What a replay check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayCheck {
    /// The write was never applied: apply it and [`record`](SessionRecord::record) the outcome.
    New,
    /// The write was handled before with this outcome: return it, do not apply again.
    Replay(Result<WriteAnswer, StoreError>),
    /// The write was handled before, but its outcome is no longer remembered.
    Expired,
}

/// What a store remembers about one session's writes.
///
/// Clients send a session's writes with increasing request ids and replay them in that order,
/// so every write up to `high_water` was handled. Successes are implied; only failures are
/// kept, which keeps the record a few bytes long. Outcomes are remembered for the ids within
/// `window` of `high_water`: a client allocates ids one per request and iterator, so a window
/// of a million ids covers any write still pending in its bounded queue.
///
/// Writes whose success carries something (an increment's counter value, a conditional
/// write's failed condition) keep that answer in `answers`, within the same window.
///
/// The serialized layout is part of the store contract: durable stores persist it, so fields
/// are only ever appended under a new version byte, and every version stays readable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The highest request id handled.
    pub high_water: u64,
    /// `(request, error)` of the writes that failed within the window, oldest first.
    pub failures: VecDeque<(u64, StoreError)>,
    /// When the session last wrote, in the store's own clock (e.g. seconds since the epoch).
    pub last_seen: u64,
    /// `(request, answer)` of the successful writes within the window whose answer is not a
    /// plain [`WriteAnswer::Done`], oldest first: at most [`MAX_ANSWERS`](Self::MAX_ANSWERS) of
    /// them, holding at most [`MAX_ANSWER_BYTES`](Self::MAX_ANSWER_BYTES) of values (the newest
    /// is always kept). Stored from version 2 on.
    pub answers: VecDeque<(u64, WriteAnswer)>,
    /// The highest request whose answer was dropped from `answers` to keep the record small: a
    /// replay of a write up to it that has no outcome kept answers
    /// [`ReplayCheck::Expired`], never a wrong "done". 0 when none was dropped within the window.
    /// Stored from version 2 on.
    pub answers_floor: u64,
}

/// The layout of version 1 of the stored record, written while `answers` is empty so records
/// of sessions that never used conditions stay readable by older servers.
#[derive(Serialize)]
struct StoredV1<'a> {
    high_water: u64,
    failures: &'a VecDeque<(u64, StoreError)>,
    last_seen: u64,
}

#[derive(Deserialize)]
struct LoadedV1 {
    high_water: u64,
    failures: VecDeque<(u64, StoreError)>,
    last_seen: u64,
}

impl SessionRecord {
    /// Most answers a record keeps. A client replays only what is pending in its bounded queue
    /// (1024 requests by default), all issued after any answer older than these.
    pub const MAX_ANSWERS: usize = 2048;
    /// Most bytes of values (failed conditions' current values) the answers keep.
    pub const MAX_ANSWER_BYTES: usize = 64 << 10;

    /// The newest layout of a stored record: version 1 (`high_water`, `failures`,
    /// `last_seen`) followed by `answers`. A record with no answers is stored as version 1.
    pub const STORED_VERSION: u8 = 2;

    /// The bytes a durable backend stores for this record: a version byte, then the postcard
    /// encoding. Every backend stores these same bytes.
    pub fn to_stored(&self) -> Vec<u8> {
        // Encoding a record into a growable buffer cannot fail.
        if self.answers.is_empty() && self.answers_floor == 0 {
            let v1 = StoredV1 { high_water: self.high_water, failures: &self.failures, last_seen: self.last_seen };
            let mut out = vec![1];
            out.extend_from_slice(&postcard::to_allocvec(&v1).unwrap_or_default());
            return out;
        }
        let mut out = vec![Self::STORED_VERSION];
        out.extend_from_slice(&postcard::to_allocvec(self).unwrap_or_default());
        out
    }

    /// The record stored as `stored`, or `None` if those bytes are not a record of a known
    /// layout (another version, trailing bytes, garbage).
    pub fn from_stored(stored: &[u8]) -> Option<Self> {
        let (&version, body) = stored.split_first()?;
        match version {
            1 => match postcard::take_from_bytes::<LoadedV1>(body) {
                Ok((v1, [])) => Some(Self {
                    high_water: v1.high_water,
                    failures: v1.failures,
                    last_seen: v1.last_seen,
                    answers: VecDeque::new(),
                    answers_floor: 0,
                }),
                _ => None,
            },
            Self::STORED_VERSION => match postcard::take_from_bytes::<Self>(body) {
                Ok((record, [])) => Some(record),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether `request` was handled before, and how, given the id `window` remembered.
    pub fn check(&self, request: u64, window: u64) -> ReplayCheck {
        if request > self.high_water {
            return ReplayCheck::New;
        }
        if request.saturating_add(window) <= self.high_water {
            return ReplayCheck::Expired;
        }
        if let Some((_, error)) = self.failures.iter().find(|(id, _)| *id == request) {
            return ReplayCheck::Replay(Err(error.clone()));
        }
        match self.answers.iter().find(|(id, _)| *id == request) {
            Some((_, answer)) => ReplayCheck::Replay(Ok(answer.clone())),
            // Its answer may have been dropped: do not guess.
            None if request <= self.answers_floor => ReplayCheck::Expired,
            None => ReplayCheck::Replay(Ok(WriteAnswer::Done)),
        }
    }

    /// Remembers the outcome of a newly handled write, forgetting outcomes that fell out of
    /// the id `window`.
    pub fn record(&mut self, request: u64, outcome: Result<WriteAnswer, StoreError>, window: u64, now: u64) {
        self.high_water = self.high_water.max(request);
        match outcome {
            Err(error) => self.failures.push_back((request, error)),
            Ok(WriteAnswer::Done) => {}
            Ok(answer) => self.answers.push_back((request, answer)),
        }
        let high_water = self.high_water;
        self.failures.retain(|(id, _)| id.saturating_add(window) > high_water);
        self.answers.retain(|(id, _)| id.saturating_add(window) > high_water);
        let bytes = |answer: &WriteAnswer| match answer {
            WriteAnswer::Failed(failed) => failed.current.as_ref().map_or(0, Bytes::len),
            _ => 0,
        };
        let mut total: usize = self.answers.iter().map(|(_, answer)| bytes(answer)).sum();
        while self.answers.len() > 1 && (self.answers.len() > Self::MAX_ANSWERS || total > Self::MAX_ANSWER_BYTES) {
            let Some((id, answer)) = self.answers.pop_front() else { break };
            total -= bytes(&answer);
            self.answers_floor = self.answers_floor.max(id);
        }
        if self.answers_floor.saturating_add(window) <= high_water {
            self.answers_floor = 0; // everything up to it is expired anyway
        }
        self.last_seen = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_get_the_original_outcome_and_old_ones_expire() {
        let window = 3;
        let mut rec = SessionRecord::default();
        assert_eq!(rec.check(1, window), ReplayCheck::New);
        rec.record(1, Ok(WriteAnswer::Done), window, 0);
        rec.record(3, Err(StoreError::Rejected("no".into())), window, 0);
        assert_eq!(rec.check(3, window), ReplayCheck::Replay(Err(StoreError::Rejected("no".into()))));
        assert_eq!(rec.check(1, window), ReplayCheck::Replay(Ok(WriteAnswer::Done)));
        assert_eq!(rec.check(4, window), ReplayCheck::New);
        rec.record(4, Ok(WriteAnswer::Done), window, 0);
        assert_eq!(rec.check(1, window), ReplayCheck::Expired);
        assert_eq!(rec.check(3, window), ReplayCheck::Replay(Err(StoreError::Rejected("no".into()))));
        rec.record(6, Ok(WriteAnswer::Done), window, 0);
        assert_eq!(rec.check(3, window), ReplayCheck::Expired);
        assert!(rec.failures.is_empty(), "failures outside the window are dropped");
    }

    #[test]
    fn stored_records_round_trip_and_reject_other_versions() {
        let mut record = SessionRecord::default();
        record.record(3, Err(StoreError::Rejected("no".into())), 10, 42);
        record.record(4, Ok(WriteAnswer::Done), 10, 43);
        let stored = record.to_stored();
        assert_eq!(stored[0], 1, "a record without answers keeps the first layout");
        assert_eq!(SessionRecord::from_stored(&stored), Some(record));
        let mut other = stored.clone();
        other[0] = 3;
        assert_eq!(SessionRecord::from_stored(&other), None);
        let mut trailing = stored;
        trailing.push(0);
        assert_eq!(SessionRecord::from_stored(&trailing), None);
        assert_eq!(SessionRecord::from_stored(&[]), None);
    }

    #[test]
    fn answers_replay_and_records_of_the_first_layout_stay_readable() {
        // The bytes a version-1 server stored: high_water 4, one failure, last_seen 43.
        let mut old = vec![1, 4, 1, 3];
        old.extend_from_slice(&postcard::to_allocvec(&StoreError::Rejected("no".into())).unwrap());
        old.push(43);
        let mut record = SessionRecord::from_stored(&old).expect("version 1 is readable");
        assert_eq!(record.high_water, 4);
        assert_eq!(record.check(3, 10), ReplayCheck::Replay(Err(StoreError::Rejected("no".into()))));
        assert_eq!(record.to_stored(), old, "unchanged records are stored as they were");

        let failed = ConditionFailed { index: 1, current: Some(Bytes::from_static(b"seen")) };
        record.record(5, Ok(WriteAnswer::Counter(-7)), 10, 44);
        record.record(6, Ok(WriteAnswer::Failed(failed.clone())), 10, 45);
        let stored = record.to_stored();
        assert_eq!(stored[0], SessionRecord::STORED_VERSION);
        let loaded = SessionRecord::from_stored(&stored).unwrap();
        assert_eq!(loaded, record);
        assert_eq!(loaded.check(5, 10), ReplayCheck::Replay(Ok(WriteAnswer::Counter(-7))));
        assert_eq!(loaded.check(6, 10), ReplayCheck::Replay(Ok(WriteAnswer::Failed(failed))));
        assert_eq!(loaded.check(4, 10), ReplayCheck::Replay(Ok(WriteAnswer::Done)));

        // Answers leave with the window, and the record goes back to the first layout.
        record.record(20, Ok(WriteAnswer::Done), 10, 46);
        assert!(record.answers.is_empty());
        assert_eq!(record.to_stored()[0], 1);
    }

    #[test]
    fn answers_are_bounded_and_a_dropped_one_expires_rather_than_guessing() {
        let window = 1 << 20;
        let mut record = SessionRecord::default();
        let count = SessionRecord::MAX_ANSWERS as u64 + 10;
        for request in 1..=count {
            record.record(request, Ok(WriteAnswer::Counter(request as i64)), window, 0);
        }
        assert_eq!(record.answers.len(), SessionRecord::MAX_ANSWERS);
        assert_eq!(record.answers_floor, 10);
        assert_eq!(record.check(10, window), ReplayCheck::Expired);
        assert_eq!(record.check(11, window), ReplayCheck::Replay(Ok(WriteAnswer::Counter(11))));
        let stored = record.to_stored();
        assert_eq!(SessionRecord::from_stored(&stored), Some(record.clone()));

        // Large current values: bounded by bytes, the newest always kept.
        let big = Bytes::from(vec![7u8; SessionRecord::MAX_ANSWER_BYTES / 2 + 1]);
        let failed =
            |current: &Bytes| Ok(WriteAnswer::Failed(ConditionFailed { index: 0, current: Some(current.clone()) }));
        record.record(count + 1, failed(&big), window, 0);
        record.record(count + 2, failed(&big), window, 0);
        assert_eq!(record.answers.len(), 1);
        assert_eq!(record.check(count + 2, window), ReplayCheck::Replay(failed(&big)));
        assert_eq!(record.check(count + 1, window), ReplayCheck::Expired);
        // Past the window the floor is forgotten with everything else.
        record.record(count + 2 + window, Ok(WriteAnswer::Done), window, 0);
        assert_eq!((record.answers.len(), record.answers_floor), (0, 0));
        assert_eq!(record.to_stored()[0], 1);
    }

    #[test]
    fn rejection_message_reaches_the_client_verbatim() {
        let remote = StoreError::Rejected("keys must start with a letter".into()).to_remote();
        assert_eq!(remote.code, ErrorCode::Rejected);
        assert_eq!(remote.message, "keys must start with a letter");
    }
}
