//! Checking and applying one write inside the writer's transaction.

use std::ops::Bound;
use std::panic::{AssertUnwindSafe, catch_unwind};

use heed::RwTxn;
use multilevel_proto::{BatchOp, KeyRange, StoreError, WriteOp};

use crate::env::Db;
use crate::keys;
use crate::options::Hooks;

/// Keys removed per step of a limited `Clear`, to bound the memory it uses.
const CLEAR_CHUNK: usize = 1024;

fn check_key(key: &[u8], max: usize) -> Result<(), StoreError> {
    if key.len() > max { Err(StoreError::KeyTooLarge { len: key.len(), max }) } else { Ok(()) }
}

/// Fails if any key the write sets or removes is longer than `max`. A `Clear` range may have
/// bounds of any length.
pub(crate) fn check_keys(op: &WriteOp, max: usize) -> Result<(), StoreError> {
    match op {
        WriteOp::Put { key, .. } | WriteOp::Del { key } => check_key(key, max),
        WriteOp::Batch(ops) => ops.iter().try_for_each(|op| check_key(op.key(), max)),
        WriteOp::Clear { .. } => Ok(()),
    }
}

/// Runs the hook for the write, if any; a panicking hook rejects the write.
pub(crate) fn run_hook(hooks: &Hooks, op: &WriteOp) -> Result<(), StoreError> {
    let verdict = match op {
        WriteOp::Put { key, value } => {
            hooks.preput.as_ref().map(|hook| catch_unwind(AssertUnwindSafe(|| hook(key, value))))
        }
        WriteOp::Del { key } => hooks.predel.as_ref().map(|hook| catch_unwind(AssertUnwindSafe(|| hook(key)))),
        WriteOp::Batch(ops) => hooks.prebatch.as_ref().map(|hook| catch_unwind(AssertUnwindSafe(|| hook(ops)))),
        WriteOp::Clear { .. } => None,
    };
    match verdict {
        None | Some(Ok(Ok(()))) => Ok(()),
        Some(Ok(Err(message))) => Err(StoreError::Rejected(message)),
        Some(Err(_panic)) => Err(StoreError::Rejected("the server's write hook panicked".into())),
    }
}

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
