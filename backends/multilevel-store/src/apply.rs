//! Applying one checked write inside the writer's transaction.

use std::ops::Bound;

use heed::RwTxn;
use multilevel_proto::__bytes::Bytes;
use multilevel_proto::condition::{WriteAnswer, encode_counter, first_failure, increment};
use multilevel_proto::{BatchOp, KeyRange, StoreError, WriteOp};

use crate::env::Db;
use crate::keys;

/// Keys removed per step of a limited `Clear`, to bound the memory it uses.
const CLEAR_CHUNK: usize = 1024;

/// Applies a checked write. An error leaves the transaction unusable: the caller aborts it.
fn apply(data: Db, txn: &mut RwTxn<'_>, op: &WriteOp) -> heed::Result<()> {
    match op {
        WriteOp::Put { key, value } => keys::with_stored(key, |key| data.put(txn, key, value)),
        WriteOp::Del { key } => keys::with_stored(key, |key| data.delete(txn, key).map(drop)),
        WriteOp::Batch(ops) => apply_ops(data, txn, ops),
        WriteOp::Clear { range, reverse, limit } => clear(data, txn, range, *reverse, *limit),
        // Only `apply_answered` knows what these write.
        WriteOp::Conditional { .. } | WriteOp::Increment { .. } => Ok(()),
    }
}

/// Applies a checked write and says what it answers: a conditional write checks its conditions
/// and an increment reads its counter inside the same transaction. A failed condition or a
/// counter that is not a number leaves the transaction untouched, so the other writes of the
/// group go on. An `Err` leaves the transaction unusable: the caller aborts it.
pub(crate) fn apply_answered(
    data: Db,
    txn: &mut RwTxn<'_>,
    op: &WriteOp,
) -> heed::Result<Result<WriteAnswer, StoreError>> {
    match op {
        WriteOp::Conditional { conditions, ops } => {
            let failed = first_failure(conditions, |key| {
                keys::with_stored(key, |stored| data.get(txn, stored).map(|v| v.map(Bytes::copy_from_slice)))
            })?;
            if let Some(failed) = failed {
                return Ok(Ok(WriteAnswer::Failed(failed)));
            }
            apply_ops(data, txn, ops)?;
            Ok(Ok(WriteAnswer::Done))
        }
        WriteOp::Increment { key, by } => {
            let current = keys::with_stored(key, |stored| data.get(txn, stored).map(|v| v.map(<[u8]>::to_vec)))?;
            match increment(key, current.as_deref(), *by) {
                Ok(value) => {
                    keys::with_stored(key, |stored| data.put(txn, stored, &encode_counter(value)))?;
                    Ok(Ok(WriteAnswer::Counter(value)))
                }
                Err(error) => Ok(Err(error)),
            }
        }
        op => apply(data, txn, op).map(|()| Ok(WriteAnswer::Done)),
    }
}

fn apply_ops(data: Db, txn: &mut RwTxn<'_>, ops: &[BatchOp]) -> heed::Result<()> {
    ops.iter().try_for_each(|op| match op {
        BatchOp::Put { key, value } => keys::with_stored(key, |key| data.put(txn, key, value)),
        BatchOp::Del { key } => keys::with_stored(key, |key| data.delete(txn, key).map(drop)),
    })
}

/// Removes the keys of `range`, at most `limit` of them, counted from the top if `reverse`.
fn clear(data: Db, txn: &mut RwTxn<'_>, range: &KeyRange, reverse: bool, limit: Option<u64>) -> heed::Result<()> {
    let Some(mut range) = keys::stored_range(range) else { return Ok(()) };
    let Some(limit) = limit else {
        data.delete_range(txn, &keys::as_slices(&range))?;
        return Ok(());
    };
    let mut remaining = usize::try_from(limit).unwrap_or(usize::MAX);
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
