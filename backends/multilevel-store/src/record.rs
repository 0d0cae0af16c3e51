//! Durable session records for at-most-once writes.
//!
//! The "sessions" database maps a session id (8 bytes, big-endian) to the stored form of its
//! [`SessionRecord`] ([`SessionRecord::to_stored`], the same bytes every backend stores). The
//! writer updates a record in the same transaction as the writes it records, so a restart
//! keeps both or neither.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use heed::{RoTxn, RwTxn};
use multilevel_proto::SessionId;
use multilevel_proto::store::SessionRecord;

use crate::env::Db;

/// Seconds since the Unix epoch, the clock of [`SessionRecord::last_seen`].
pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The record of `session`, empty if it has none. A record that cannot be decoded (written by
/// an incompatible version) is logged and treated as empty.
pub(crate) fn load(sessions: Db, txn: &RoTxn<'_>, session: SessionId) -> heed::Result<SessionRecord> {
    let Some(stored) = sessions.get(txn, &session.to_be_bytes())? else {
        return Ok(SessionRecord::default());
    };
    Ok(SessionRecord::from_stored(stored).unwrap_or_else(|| {
        tracing::warn!(session, "undecodable session record ignored; replays of its writes may apply again");
        SessionRecord::default()
    }))
}

/// Writes the record of `session`.
pub(crate) fn save(sessions: Db, txn: &mut RwTxn<'_>, session: SessionId, record: &SessionRecord) -> heed::Result<()> {
    sessions.put(txn, &session.to_be_bytes(), &record.to_stored())
}

/// Deletes the records of sessions that have not written for longer than `retention`; returns
/// how many. Undecodable records are left alone.
pub(crate) fn forget_idle(sessions: Db, txn: &mut RwTxn<'_>, now: u64, retention: Duration) -> heed::Result<usize> {
    let retention = retention.as_secs();
    let mut idle = Vec::new();
    for entry in sessions.iter(txn)? {
        let (key, value) = entry?;
        if SessionRecord::from_stored(value).is_some_and(|record| now.saturating_sub(record.last_seen) > retention) {
            idle.push(key.to_vec());
        }
    }
    for key in &idle {
        sessions.delete(txn, key)?;
    }
    Ok(idle.len())
}
