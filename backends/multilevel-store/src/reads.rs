//! Reads, run inline on the caller's thread: point reads in a short transaction (shared by the
//! point reads of one [`ReadScope`](crate::ReadScope)), and iterator
//! batches from a snapshot.

use bytes::Bytes;
use heed::RoTxn;
use multilevel_proto::{BatchRead, Outcome, StoreError};

use crate::env::{Db, ReadTxn, Shared};
use crate::error::internal;
use crate::keys;

fn get_one(shared: &Shared, txn: &RoTxn<'_>, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
    if key.len() > shared.max_key_size {
        // No such key can be stored.
        return Ok(None);
    }
    // The stored key is built on the stack: no allocation per read.
    let value = keys::with_stored(key, |stored| shared.data.get(txn, stored));
    Ok(value.map_err(|e| internal("reading a key", &e))?.map(Bytes::copy_from_slice))
}

/// `Get`: one key, in the read transaction `txn`.
pub(crate) fn get(shared: &Shared, txn: &ReadTxn<'_>, key: &[u8]) -> Result<Outcome, StoreError> {
    get_one(shared, &txn.txn, key).map(Outcome::Value)
}

/// `GetMany`: several keys from one read transaction, so they are consistent.
pub(crate) fn get_many(shared: &Shared, txn: &ReadTxn<'_>, keys: &[Bytes]) -> Result<Outcome, StoreError> {
    let values = keys.iter().map(|key| get_one(shared, &txn.txn, key)).collect::<Result<Vec<_>, _>>()?;
    Ok(Outcome::Values(values))
}

/// One iterator batch from a snapshot, with the same caps and `exhausted` rule as
/// [`multilevel_proto::memory::read_batch`]: at most `max_entries` entries, stopping after the
/// entry that makes the key (and value, when asked for) bytes reach `max_bytes`, and
/// `exhausted` when nothing in the range follows the last entry.
pub(crate) fn read_batch(data: Db, txn: &RoTxn<'_>, read: &BatchRead) -> Result<Outcome, StoreError> {
    let Some(range) = keys::stored_range(&read.range) else {
        return Ok(Outcome::Batch { entries: Vec::new(), exhausted: true });
    };
    let bounds = keys::as_slices(&range);
    // Each direction's iterator has its own type: one copy of the loop each, no dynamic call
    // per entry.
    if read.reverse {
        collect_batch(data.rev_range(txn, &bounds).map_err(batch_error)?, read)
    } else {
        collect_batch(data.range(txn, &bounds).map_err(batch_error)?, read)
    }
}

fn batch_error(e: heed::Error) -> StoreError {
    internal("reading an iterator batch", &e)
}

/// Reads one batch from `iter` under `read`'s caps.
fn collect_batch<'t>(
    mut iter: impl Iterator<Item = heed::Result<(&'t [u8], &'t [u8])>>,
    read: &BatchRead,
) -> Result<Outcome, StoreError> {
    // Keys and values are copied into one buffer, and the entries are slices of it: one
    // allocation per batch rather than two per entry. The last entry may go past `max_bytes`:
    // leave room for a usual one so the buffer does not grow (and copy) for it.
    let capacity = usize::try_from(read.max_bytes).unwrap_or(usize::MAX).min(1 << 20) + 4096;
    let mut buf = Vec::with_capacity(capacity);
    let mut spans: Vec<(usize, usize, Option<usize>)> = Vec::new();
    let mut bytes = 0u64;
    let exhausted = loop {
        if spans.len() as u64 >= read.max_entries || bytes >= read.max_bytes {
            break iter.next().transpose().map_err(batch_error)?.is_none();
        }
        let Some((key, value)) = iter.next().transpose().map_err(batch_error)? else {
            break true;
        };
        let key = keys::decode(key);
        let start = buf.len();
        buf.extend_from_slice(key);
        let key_end = buf.len();
        let value_end = read.values.then(|| {
            buf.extend_from_slice(value);
            buf.len()
        });
        bytes += (buf.len() - start) as u64;
        spans.push((start, key_end, value_end));
    };
    let buf = Bytes::from(buf);
    let entries = spans
        .into_iter()
        .map(|(start, key_end, value_end)| (buf.slice(start..key_end), value_end.map(|end| buf.slice(key_end..end))))
        .collect();
    Ok(Outcome::Batch { entries, exhausted })
}
