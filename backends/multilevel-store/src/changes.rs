//! The change log: every commit the writer makes, kept in the "changes" database in the same
//! transaction as the writes, so a crash keeps both or neither.
//!
//! # Layout
//!
//! - Key `position` (8 bytes, big-endian, from 1): one commit, stored as a version byte
//!   ([`COMMIT_VERSION`]), the time it was made in milliseconds since the Unix epoch (8 bytes,
//!   big-endian, for [`ChangeRetention::max_age`]), then the postcard encoding of its changes
//!   (a `Vec<Change>`).
//! - Key `0` (8 zero bytes, never a position, and the first key): the log's [`Meta`]: the
//!   newest position, the highest position trimmed by the retention, and the bytes of the
//!   commits kept. A store that has never committed has none (all zero).
//!
//! Positions are contiguous: the commits kept are exactly `trimmed + 1 ..= head`. A cursor at
//! position `p` is valid iff `p > trimmed`; older ones get [`StoreError::Compacted`].

use std::ops::Bound;
use std::time::{SystemTime, UNIX_EPOCH};

use heed::{MdbError, PutFlags, RoTxn, RwTxn};
use multilevel_proto::change::{Change, ChangeEvent, ChangeRead, Cursor, LogSpan, WatchStart, select_changes};
use multilevel_proto::{Outcome, StoreError};

use crate::env::Db;
use crate::error::internal;
use crate::options::ChangeRetention;

/// The layout version of a stored commit.
const COMMIT_VERSION: u8 = 1;
/// The layout version of the stored [`Meta`].
const META_VERSION: u8 = 1;
/// The key of the [`Meta`] record: position 0, which no commit has.
const META_KEY: [u8; 8] = [0; 8];
/// Bytes before a stored commit's changes: the version and the timestamp.
const COMMIT_HEADER: usize = 9;
/// Most commits one read looks at, so a read of a narrow range over a long history stays
/// short; it answers with a cursor past the last one looked at.
pub(crate) const MAX_COMMITS_PER_READ: usize = 10_000;

/// Milliseconds since the Unix epoch, the clock of the commits' timestamps.
pub(crate) fn now_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What the log knows about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    /// The newest commit's position (0 before the first).
    pub(crate) head: u64,
    /// The highest position dropped by the retention (0 when none was).
    pub(crate) trimmed: u64,
    /// The stored bytes of the commits kept.
    pub(crate) bytes: u64,
}

impl Meta {
    fn to_stored(self) -> [u8; 25] {
        let mut out = [0u8; 25];
        out[0] = META_VERSION;
        out[1..9].copy_from_slice(&self.head.to_be_bytes());
        out[9..17].copy_from_slice(&self.trimmed.to_be_bytes());
        out[17..25].copy_from_slice(&self.bytes.to_be_bytes());
        out
    }

    fn from_stored(stored: &[u8]) -> Option<Self> {
        let (&version, body) = stored.split_first()?;
        if version != META_VERSION || body.len() != 24 {
            return None;
        }
        let field = |i: usize| u64::from_be_bytes(body[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        Some(Meta { head: field(0), trimmed: field(1), bytes: field(2) })
    }

    /// The positions kept, by the rule every log shares.
    pub(crate) fn span(self) -> LogSpan {
        LogSpan { head: self.head, trimmed: self.trimmed }
    }

    /// The oldest position kept (`head + 1` when nothing is).
    pub(crate) fn oldest(self) -> u64 {
        self.span().oldest()
    }
}

/// The log's metadata, as of `txn`; all zero without a log (a read-only open of a database
/// made before change logs) or before the first commit.
pub(crate) fn load_meta(db: Option<Db>, txn: &RoTxn<'_>) -> heed::Result<Meta> {
    let Some(db) = db else { return Ok(Meta::default()) };
    Ok(match db.get(txn, &META_KEY)? {
        Some(stored) => Meta::from_stored(stored).unwrap_or_else(|| {
            tracing::warn!("undecodable change log metadata ignored");
            Meta::default()
        }),
        None => Meta::default(),
    })
}

/// The stored form of a commit made at `millis` with `changes`.
fn encode_commit(millis: u64, changes: &[Change]) -> Vec<u8> {
    let mut out = Vec::with_capacity(COMMIT_HEADER + 16 * changes.len());
    out.push(COMMIT_VERSION);
    out.extend_from_slice(&millis.to_be_bytes());
    // Encoding into a growable buffer cannot fail.
    out.extend_from_slice(&postcard::to_allocvec(changes).unwrap_or_default());
    out
}

/// The changes of a stored commit, or `None` for bytes of an unknown layout.
fn decode_commit(stored: &[u8]) -> Option<Vec<Change>> {
    if stored.first() != Some(&COMMIT_VERSION) || stored.len() < COMMIT_HEADER {
        return None;
    }
    match postcard::take_from_bytes::<Vec<Change>>(&stored[COMMIT_HEADER..]) {
        Ok((changes, [])) => Some(changes),
        _ => None,
    }
}

/// The timestamp of a stored commit (0 if unreadable, so an undecodable commit ages out).
fn commit_millis(stored: &[u8]) -> u64 {
    stored.get(1..COMMIT_HEADER).and_then(|b| b.try_into().ok()).map_or(0, u64::from_be_bytes)
}

/// The keys from `from` to `to`, both included, as heed takes them.
fn inclusive<'a>(from: &'a [u8; 8], to: &'a [u8; 8]) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    (Bound::Included(&from[..]), Bound::Included(&to[..]))
}

fn position_of(key: &[u8]) -> Option<u64> {
    key.try_into().ok().map(u64::from_be_bytes)
}

/// Appends the commits of one write transaction to the log and trims it.
pub(crate) struct Appender {
    db: Db,
    meta: Meta,
    /// The head when the transaction began.
    start: u64,
    millis: u64,
}

impl Appender {
    /// Starts appending in `txn`, from the log's state in it.
    pub(crate) fn begin(db: Db, txn: &RwTxn<'_>) -> heed::Result<Self> {
        let meta = load_meta(Some(db), txn)?;
        Ok(Self { db, meta, start: meta.head, millis: now_millis() })
    }

    /// Records one applied write's changes as the next commit; nothing if it changed nothing.
    pub(crate) fn append(&mut self, txn: &mut RwTxn<'_>, changes: &[Change]) -> heed::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let position = self.meta.head + 1;
        let stored = encode_commit(self.millis, changes);
        let key = position.to_be_bytes();
        // Every position is past every key of the log, so LMDB may append without a search,
        // and fills its pages instead of splitting them in half: fewer pages to write per
        // commit. Should a key past the head exist anyway, `APPEND` refuses: put it normally.
        match self.db.put_with_flags(txn, PutFlags::APPEND, &key, &stored) {
            Err(heed::Error::Mdb(MdbError::KeyExist)) => self.db.put(txn, &key, &stored)?,
            result => result?,
        }
        self.meta.head = position;
        self.meta.bytes = self.meta.bytes.saturating_add(stored.len() as u64);
        Ok(())
    }

    /// Trims the oldest commits beyond `retention` and saves the metadata. Returns the new
    /// head if this transaction appended any commit.
    pub(crate) fn finish(mut self, txn: &mut RwTxn<'_>, retention: &ChangeRetention) -> heed::Result<Option<u64>> {
        if self.meta.head == self.start {
            return Ok(None);
        }
        self.trim(txn, retention)?;
        self.db.put(txn, &META_KEY, &self.meta.to_stored())?;
        Ok(Some(self.meta.head))
    }

    /// Drops commits from the front while the log is over any limit. The newest commit is only
    /// ever dropped by `max_commits` (when it is 0): a single commit larger than `max_bytes`
    /// stays until the next one, so a watcher keeping up never misses it.
    fn trim(&mut self, txn: &mut RwTxn<'_>, retention: &ChangeRetention) -> heed::Result<()> {
        let Meta { head, trimmed, mut bytes } = self.meta;
        let cutoff =
            retention.max_age.map(|age| self.millis.saturating_sub(u64::try_from(age.as_millis()).unwrap_or(u64::MAX)));
        let mut last_dropped = trimmed;
        let (from, to) = ((trimmed + 1).to_be_bytes(), head.to_be_bytes());
        for entry in self.db.range(txn, &inclusive(&from, &to))? {
            let (key, value) = entry?;
            let Some(position) = position_of(key) else { continue };
            let newest = position == head;
            let over_count = head - last_dropped > retention.max_commits;
            let over_bytes = !newest && bytes > retention.max_bytes;
            let too_old = !newest && cutoff.is_some_and(|cutoff| commit_millis(value) < cutoff);
            if !(over_count || over_bytes || too_old) {
                break;
            }
            last_dropped = position;
            bytes = bytes.saturating_sub(value.len() as u64);
        }
        if last_dropped > trimmed {
            let dropped = last_dropped.to_be_bytes();
            self.db.delete_range(txn, &inclusive(&from, &dropped))?;
            self.meta.trimmed = last_dropped;
            self.meta.bytes = bytes;
        }
        Ok(())
    }
}

/// Answers `OpenWatch`.
pub(crate) fn open(db: Option<Db>, txn: &RoTxn<'_>, start: WatchStart) -> Result<Outcome, StoreError> {
    let meta = load_meta(db, txn).map_err(|e| internal("reading the change log", &e))?;
    meta.span().open(start).map(Outcome::WatchOpened)
}

/// Answers `ReadChanges` from `txn`, or `None` when no commit is at or after `read.from` yet
/// (the read must wait for one). Looks at most at [`MAX_COMMITS_PER_READ`] commits.
pub(crate) fn read(db: Option<Db>, txn: &RoTxn<'_>, read: &ChangeRead) -> Result<Option<Outcome>, StoreError> {
    let err = |e: heed::Error| internal("reading the change log", &e);
    let meta = load_meta(db, txn).map_err(err)?;
    meta.span().check(read.from)?;
    let Some(db) = db.filter(|_| read.from.position <= meta.head) else { return Ok(None) };
    let mut budget = read.max_bytes.max(1);
    let mut events: Vec<ChangeEvent> = Vec::new();
    let mut next = read.from;
    let (from, to) = (read.from.position.to_be_bytes(), meta.head.to_be_bytes());
    for entry in db.range(txn, &inclusive(&from, &to)).map_err(err)?.take(MAX_COMMITS_PER_READ) {
        if budget == 0 && !events.is_empty() {
            break;
        }
        let (key, value) = entry.map_err(err)?;
        let position =
            position_of(key).ok_or_else(|| StoreError::Internal("a change log key is not a position".into()))?;
        let changes = decode_commit(value)
            .ok_or_else(|| StoreError::Internal(format!("the commit at position {position} is undecodable")))?;
        next = select_changes(position, changes, read, &mut budget, &mut events);
    }
    if next == read.from {
        // Every commit from there on was looked at and none was due: move past them.
        next = Cursor::after(meta.head).max(read.from);
    }
    Ok(Some(Outcome::Changes { events, next }))
}

/// The change log's metadata in `txn`, as a `StoreError` on failure (for stats).
pub(crate) fn meta(db: Option<Db>, txn: &RoTxn<'_>) -> Result<Meta, StoreError> {
    load_meta(db, txn).map_err(|e| internal("reading the change log", &e))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn commits_and_meta_round_trip() {
        let changes = vec![
            Change::Put { key: Bytes::from_static(b"k"), value: Bytes::from_static(b"v") },
            Change::Del { key: Bytes::from_static(b"") },
        ];
        let stored = encode_commit(1234, &changes);
        assert_eq!(stored[0], COMMIT_VERSION);
        assert_eq!(commit_millis(&stored), 1234);
        assert_eq!(decode_commit(&stored), Some(changes));
        let mut trailing = stored.clone();
        trailing.push(0);
        assert_eq!(decode_commit(&trailing), None);
        assert_eq!(decode_commit(&[2, 0, 0, 0, 0, 0, 0, 0, 0, 0]), None);

        let meta = Meta { head: 7, trimmed: 3, bytes: 99 };
        assert_eq!(Meta::from_stored(&meta.to_stored()), Some(meta));
        assert_eq!(Meta::from_stored(&[META_VERSION]), None);
        assert_eq!(meta.oldest(), 4);
        assert_eq!(meta.span().check(Cursor::at(3)), Err(StoreError::Compacted { oldest: 4 }));
        assert_eq!(meta.span().check(Cursor::at(4)), Ok(()));
    }

    #[test]
    fn a_key_past_the_head_does_not_stop_an_append() {
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: a fresh directory of this test's own; nothing else maps the file.
        #[allow(unsafe_code)]
        let env = unsafe { heed::EnvOpenOptions::new().max_dbs(1).map_size(1 << 20).open(dir.path()) }.unwrap();
        let created = env.write_txn().unwrap();
        let db: Db = env
            .create_databases_and_commit(created, |opener, txn| {
                let db = opener.create_database::<heed::types::Bytes, heed::types::Bytes>(txn, Some("changes"))?;
                Ok::<_, heed::Error>(heed::CommitOrAbort::<_, ()>::Commit(db))
            })
            .unwrap()
            .unwrap_commit();
        let mut txn = env.write_txn().unwrap();
        // A stray commit at position 5 while the head says 0: appending position 1 at the end
        // is refused by LMDB, and the append falls back to a plain put.
        db.put(&mut txn, &5u64.to_be_bytes(), &encode_commit(1, &[])).unwrap();
        let mut log = Appender::begin(db, &txn).unwrap();
        let change = Change::Del { key: Bytes::from_static(b"k") };
        log.append(&mut txn, std::slice::from_ref(&change)).unwrap();
        let stored = db.get(&txn, &1u64.to_be_bytes()).unwrap().unwrap();
        assert_eq!(decode_commit(stored), Some(vec![change]));
    }
}
