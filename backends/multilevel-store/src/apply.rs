//! Applying one checked write inside the writer's transaction.

use std::ops::Bound;

use heed::RwTxn;
use multilevel_proto::{BatchOp, KeyRange, WriteOp};

use crate::env::Db;
use crate::keys;

/// Keys removed per step of a limited `Clear`, to bound the memory it uses.
const CLEAR_CHUNK: usize = 1024;

/// Applies a checked write. An error leaves the transaction unusable: the caller aborts it.
pub(crate) fn apply(data: Db, txn: &mut RwTxn<'_>, op: &WriteOp) -> heed::Result<()> {
    match op {
        WriteOp::Put { key, value } => keys::with_stored(key, |key| data.put(txn, key, value)),
        WriteOp::Del { key } => keys::with_stored(key, |key| data.delete(txn, key).map(drop)),
        WriteOp::Batch(ops) => ops.iter().try_for_each(|op| match op {
            BatchOp::Put { key, value } => keys::with_stored(key, |key| data.put(txn, key, value)),
            BatchOp::Del { key } => keys::with_stored(key, |key| data.delete(txn, key).map(drop)),
        }),
        WriteOp::Clear { range, reverse, limit } => clear(data, txn, range, *reverse, *limit),
    }
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
