//! Applying one checked write inside the writer's transaction, noting its changes for the
//! change log (see [`multilevel_proto::change`]): a put, a delete of a key that was there, a
//! batch's operations in order, a clear's deletes in the order removed, an increment's new
//! value; nothing for a failed condition.

use std::ops::Bound;

use heed::RwTxn;
use multilevel_proto::__bytes::Bytes;
use multilevel_proto::change::Change;
use multilevel_proto::condition::{WriteAnswer, encode_counter, first_failure, increment};
use multilevel_proto::{BatchOp, KeyRange, StoreError, WriteOp};

use crate::env::Db;
use crate::keys;

/// Keys removed per step of a limited `Clear`, to bound the memory it uses.
const CLEAR_CHUNK: usize = 1024;

/// Applies a checked write, pushing its changes on `changes`. An error leaves the transaction
/// unusable: the caller aborts it.
fn apply(data: Db, txn: &mut RwTxn<'_>, op: &WriteOp, changes: &mut Vec<Change>) -> heed::Result<()> {
    match op {
        WriteOp::Put { key, value } => put(data, txn, key, value, changes),
        WriteOp::Del { key } => del(data, txn, key, changes),
        WriteOp::Batch(ops) => apply_ops(data, txn, ops, changes),
        WriteOp::Clear { range, reverse, limit } => clear(data, txn, range, *reverse, *limit, changes),
        // Only `apply_answered` knows what these write.
        WriteOp::Conditional { .. } | WriteOp::Increment { .. } => Ok(()),
    }
}

/// Applies a checked write and says what it answers: a conditional write checks its conditions
/// and an increment reads its counter inside the same transaction. A failed condition or a
/// counter that is not a number leaves the transaction untouched, so the other writes of the
/// group go on. An `Err` leaves the transaction unusable: the caller aborts it. The write's
/// changes are pushed on `changes` (nothing when it applies nothing).
pub(crate) fn apply_answered(
    data: Db,
    txn: &mut RwTxn<'_>,
    op: &WriteOp,
    changes: &mut Vec<Change>,
) -> heed::Result<Result<WriteAnswer, StoreError>> {
    match op {
        WriteOp::Conditional { conditions, ops } => {
            let failed = first_failure(conditions, |key| {
                keys::with_stored(key, |stored| data.get(txn, stored).map(|v| v.map(Bytes::copy_from_slice)))
            })?;
            if let Some(failed) = failed {
                return Ok(Ok(WriteAnswer::Failed(failed)));
            }
            apply_ops(data, txn, ops, changes)?;
            Ok(Ok(WriteAnswer::Done))
        }
        WriteOp::Increment { key, by } => {
            let current = keys::with_stored(key, |stored| data.get(txn, stored).map(|v| v.map(<[u8]>::to_vec)))?;
            match increment(key, current.as_deref(), *by) {
                Ok(value) => {
                    put(data, txn, key, &encode_counter(value), changes)?;
                    Ok(Ok(WriteAnswer::Counter(value)))
                }
                Err(error) => Ok(Err(error)),
            }
        }
        op => apply(data, txn, op, changes).map(|()| Ok(WriteAnswer::Done)),
    }
}

fn put(data: Db, txn: &mut RwTxn<'_>, key: &Bytes, value: &Bytes, changes: &mut Vec<Change>) -> heed::Result<()> {
    keys::with_stored(key, |stored| data.put(txn, stored, value))?;
    changes.push(Change::Put { key: key.clone(), value: value.clone() });
    Ok(())
}

/// Deletes `key`; a change only if it was there.
fn del(data: Db, txn: &mut RwTxn<'_>, key: &Bytes, changes: &mut Vec<Change>) -> heed::Result<()> {
    if keys::with_stored(key, |stored| data.delete(txn, stored))? {
        changes.push(Change::Del { key: key.clone() });
    }
    Ok(())
}

fn apply_ops(data: Db, txn: &mut RwTxn<'_>, ops: &[BatchOp], changes: &mut Vec<Change>) -> heed::Result<()> {
    ops.iter().try_for_each(|op| match op {
        BatchOp::Put { key, value } => put(data, txn, key, value, changes),
        BatchOp::Del { key } => del(data, txn, key, changes),
    })
}

/// Removes the keys of `range`, at most `limit` of them, counted from the top if `reverse`, one
/// by one in that order (each is a change).
fn clear(
    data: Db,
    txn: &mut RwTxn<'_>,
    range: &KeyRange,
    reverse: bool,
    limit: Option<u64>,
    changes: &mut Vec<Change>,
) -> heed::Result<()> {
    let Some(mut range) = keys::stored_range(range) else { return Ok(()) };
    let mut remaining = limit.map_or(usize::MAX, |limit| usize::try_from(limit).unwrap_or(usize::MAX));
    while remaining > 0 {
        let step = remaining.min(CLEAR_CHUNK);
        let bounds = keys::as_slices(&range);
        let chunk: Vec<Vec<u8>> = if reverse {
            data.rev_range(txn, &bounds)?
                .take(step)
                .map(|entry| entry.map(|(k, _)| k.to_vec()))
                .collect::<Result<_, _>>()?
        } else {
            data.range(txn, &bounds)?
                .take(step)
                .map(|entry| entry.map(|(k, _)| k.to_vec()))
                .collect::<Result<_, _>>()?
        };
        for key in &chunk {
            data.delete(txn, key)?;
            changes.push(Change::Del { key: Bytes::copy_from_slice(keys::decode(key)) });
        }
        remaining -= chunk.len();
        match chunk.into_iter().last() {
            // Resume past the last key removed; a short chunk means the range is done.
            Some(last) if remaining > 0 => {
                if reverse {
                    range.1 = Bound::Excluded(last);
                } else {
                    range.0 = Bound::Excluded(last);
                }
            }
            _ => break,
        }
    }
    Ok(())
}
