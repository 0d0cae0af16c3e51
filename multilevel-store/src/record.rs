//! Durable session records for at-most-once writes.
//!
//! The "sessions" database maps a session id (8 bytes, big-endian) to a version byte followed
//! by the postcard encoding of its [`SessionRecord`]. The writer updates a record in the same
//! transaction as the writes it records, so a restart keeps both or neither.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use heed::{RoTxn, RwTxn};
use multilevel_proto::SessionId;
use multilevel_proto::store::SessionRecord;

use crate::env::Db;

/// The layout of a stored record; bumped if `SessionRecord` ever changes shape.
const RECORD_VERSION: u8 = 1;

/// Seconds since the Unix epoch, the clock of [`SessionRecord::last_seen`].
pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn encode(record: &SessionRecord) -> Result<Vec<u8>, postcard::Error> {
    let mut out = vec![RECORD_VERSION];
    out.extend_from_slice(&postcard::to_allocvec(record)?);
    Ok(out)
}

fn decode(stored: &[u8]) -> Option<SessionRecord> {
    let (&version, body) = stored.split_first()?;
    if version != RECORD_VERSION {
        return None;
    }
    match postcard::take_from_bytes::<SessionRecord>(body) {
        Ok((record, [])) => Some(record),
        _ => None,
    }
}

/// The record of `session`, empty if it has none. A record that cannot be decoded (written by
/// an incompatible version) is logged and treated as empty.
pub(crate) fn load(sessions: Db, txn: &RoTxn<'_>, session: SessionId) -> heed::Result<SessionRecord> {
    let Some(stored) = sessions.get(txn, &session.to_be_bytes())? else {
        return Ok(SessionRecord::default());
    };
    Ok(decode(stored).unwrap_or_else(|| {
        tracing::warn!(session, "undecodable session record ignored; replays of its writes may apply again");
        SessionRecord::default()
    }))
}

/// Writes the record of `session`.
pub(crate) fn save(sessions: Db, txn: &mut RwTxn<'_>, session: SessionId, record: &SessionRecord) -> heed::Result<()> {
    let encoded = encode(record).map_err(|e| heed::Error::Encoding(Box::new(e)))?;
    sessions.put(txn, &session.to_be_bytes(), &encoded)
}

/// Deletes the records of sessions that have not written for longer than `retention`; returns
/// how many. Undecodable records are left alone.
pub(crate) fn forget_idle(sessions: Db, txn: &mut RwTxn<'_>, now: u64, retention: Duration) -> heed::Result<usize> {
    let retention = retention.as_secs();
    let mut idle = Vec::new();
    for entry in sessions.iter(txn)? {
        let (key, value) = entry?;
        if decode(value).is_some_and(|record| now.saturating_sub(record.last_seen) > retention) {
            idle.push(key.to_vec());
        }
    }
    for key in &idle {
        sessions.delete(txn, key)?;
    }
    Ok(idle.len())
}

#[cfg(test)]
mod tests {
    use multilevel_proto::StoreError;

    use super::*;

    #[test]
    fn records_round_trip_and_reject_other_versions() {
        let mut record = SessionRecord::default();
        record.record(3, Err(StoreError::Rejected("no".into())), 10, 42);
        record.record(4, Ok(()), 10, 43);
        let stored = encode(&record).unwrap();
        assert_eq!(decode(&stored), Some(record));
        let mut other = stored.clone();
        other[0] = 2;
        assert_eq!(decode(&other), None);
        let mut trailing = stored;
        trailing.push(0);
        assert_eq!(decode(&trailing), None);
        assert_eq!(decode(&[]), None);
    }
}
