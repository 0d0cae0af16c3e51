//! Writes: one etcd transaction each, guarded by the session record.
//!
//! The transaction compares the session record's `mod_revision` (or `version == 0` when the
//! record is absent), and on success applies the write's operations and puts the updated
//! record; on failure it reads the record, so the next attempt knows whether the write is a
//! replay (answered from the record, not applied again) or new (tried again against the
//! record read). Two servers seeing the same session therefore never both apply a write.
//!
//! Conditional writes put their conditions next to the record's compare: a value equality is
//! `value == v`, an absence `create_revision == 0`. The failure branch also reads the
//! conditions' keys, all at the transaction's revision. If the record held, a condition
//! failed at that revision: the next transaction, guarded by the record alone, records that
//! failure (which condition, the value read) and applies nothing, so a replay answers it
//! again. An increment reads its counter, then writes the new value guarded by the counter's
//! `mod_revision` (or its absence) next to the record; a lost race reads and tries again.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use etcd_client::{Compare, CompareOp, DeleteOptions, GetOptions, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse};
use multilevel_proto::condition::{ConditionFailed, WriteAnswer, encode_counter, increment};
use multilevel_proto::hooks::{verdict, verdict as verdict_of};
use multilevel_proto::store::{ReplayCheck, SessionRecord};
use multilevel_proto::{BatchOp, Condition, NO_REPLAY_SESSION, SessionId, StoreError, WriteOp, WriteRequest};

use crate::call::{Retry, Shared};
use crate::error::EtcdError;
use crate::keys::successor;

/// Attempts at a write that keeps losing compare races before it fails.
const MAX_ATTEMPTS: u32 = 64;
/// Bytes etcd's request encoding adds per operation, roughly (field tags, lengths).
const OP_OVERHEAD: usize = 16;

/// A session record as last seen, with its `mod_revision` (0: absent).
#[derive(Debug, Clone, Default)]
pub(crate) struct KnownRecord {
    record: SessionRecord,
    mod_revision: i64,
}

/// The records one connection's writes last saw.
pub(crate) type RecordCache = HashMap<SessionId, KnownRecord>;

/// The etcd side of one write: what must still hold, and what to do.
#[derive(Debug, Default)]
struct Plan {
    compares: Vec<Compare>,
    ops: Vec<TxnOp>,
    bytes: usize,
    /// What the write answers if the transaction succeeds; `None`: plain `Done`.
    answer: Option<Result<WriteAnswer, StoreError>>,
    /// Keys the failure branch reads (a conditional write's condition keys), in order.
    reads: Vec<Vec<u8>>,
}

impl Plan {
    fn put(&mut self, key: Vec<u8>, value: &[u8]) {
        self.bytes += key.len() + value.len() + OP_OVERHEAD;
        self.ops.push(TxnOp::put(key, value.to_vec(), None));
    }

    fn del(&mut self, key: Vec<u8>) {
        self.bytes += key.len() + OP_OVERHEAD;
        self.ops.push(TxnOp::delete(key, None));
    }

    fn del_range(&mut self, start: Vec<u8>, end: Vec<u8>) {
        self.bytes += start.len() + end.len() + OP_OVERHEAD;
        self.ops.push(TxnOp::delete(start, Some(DeleteOptions::new().with_range(end))));
    }

    fn compare(&mut self, compare: Compare, key_bytes: usize) {
        self.bytes += key_bytes + OP_OVERHEAD;
        self.compares.push(compare);
    }
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Whether an error means the write as asked cannot go through etcd at all: it is refused
/// (and recorded, so a replay gets the same answer), nothing of it applied.
fn is_refusal(error: &EtcdError) -> bool {
    matches!(error, EtcdError::TooManyOperations { .. } | EtcdError::RequestTooLarge { .. })
}

/// Applies one write at most once; see the module docs.
pub(crate) async fn write_one(
    shared: &Shared,
    cache: &mut RecordCache,
    write: WriteRequest,
) -> Result<WriteAnswer, StoreError> {
    if write.session == NO_REPLAY_SESSION {
        return write_unrecorded(shared, &write.op).await;
    }
    let options = &shared.options;
    let record_key = shared.layout.record_key(write.session);
    let mut checked: Option<Result<(), StoreError>> = None;
    let mut refused: Option<EtcdError> = None;
    // A condition seen failing with the record unchanged: record that, apply nothing.
    let mut failed: Option<ConditionFailed> = None;
    for _ in 0..MAX_ATTEMPTS {
        let known = cache.get(&write.session).cloned().unwrap_or_default();
        match known.record.check(write.request, options.replay_window) {
            ReplayCheck::Replay(outcome) => return outcome,
            ReplayCheck::Expired => return Err(StoreError::ReplayExpired { request: write.request }),
            ReplayCheck::New => {}
        }
        let verdict = checked.get_or_insert_with(|| verdict(&write.op, options.max_key_size, &options.hooks)).clone();
        let mut plan = Plan::default();
        let outcome = match (verdict, &refused, &failed) {
            (Err(error), _, _) => Err(error),
            (Ok(()), Some(error), _) => Err(error.clone().into()),
            (Ok(()), None, Some(failed)) => Ok(WriteAnswer::Failed(failed.clone())),
            (Ok(()), None, None) => match plan_op(shared, &write.op).await {
                Ok(mut p) => match check_limits(shared, &p, true) {
                    Ok(()) => {
                        let answer = p.answer.take().unwrap_or(Ok(WriteAnswer::Done));
                        if answer.is_err() {
                            p = Plan::default(); // a counter that is not a number: apply nothing
                        }
                        plan = p;
                        answer
                    }
                    Err(error) => Err(error.into()),
                },
                Err(error) if is_refusal(&error) => Err(error.into()),
                Err(error) => return Err(error.into()),
            },
        };
        let mut record = known.record.clone();
        record.record(write.request, outcome.clone(), options.replay_window, now_secs());
        let guard = if known.mod_revision > 0 {
            Compare::mod_revision(record_key.clone(), CompareOp::Equal, known.mod_revision)
        } else {
            Compare::version(record_key.clone(), CompareOp::Equal, 0)
        };
        let mut compares = vec![guard];
        compares.append(&mut plan.compares);
        let mut ops = std::mem::take(&mut plan.ops);
        ops.push(TxnOp::put(record_key.clone(), record.to_stored(), None));
        let mut otherwise = vec![TxnOp::get(record_key.clone(), None)];
        otherwise.extend(plan.reads.iter().map(|key| TxnOp::get(key.clone(), None)));
        let txn = Txn::new().when(compares).and_then(ops).or_else(otherwise);
        let response = match shared
            .call(Retry::Idempotent, None, |mut kv| {
                let txn = txn.clone();
                async move { kv.txn(txn).await }
            })
            .await
        {
            Ok(response) => response,
            Err(error) if is_refusal(&error) && refused.is_none() && outcome.is_ok() => {
                // etcd's own limits are lower than the options say: refuse, and record that.
                refused = Some(error);
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        if response.succeeded() {
            let mod_revision = response.header().map_or(0, |h| h.revision());
            cache.insert(write.session, KnownRecord { record, mod_revision });
            return outcome;
        }
        let current = read_record(&response);
        failed = None;
        if current.mod_revision == known.mod_revision {
            if let WriteOp::Conditional { conditions, .. } = &write.op {
                // The record held, so a condition failed at this revision (unless a clear's
                // compare did): record the first that failed, with the value read.
                failed = first_failed(conditions, &response);
            }
            // Otherwise a clear's range or a counter changed under it: plan again.
            tracing::debug!(session = write.session, request = write.request, "a compare failed; planning again");
        }
        cache.insert(write.session, current);
    }
    Err(EtcdError::Contended(MAX_ATTEMPTS).into())
}

/// The first of `conditions` that fails against the values the failure branch read after the
/// record (one get per condition, in order).
fn first_failed(conditions: &[Condition], response: &etcd_client::TxnResponse) -> Option<ConditionFailed> {
    let values: Vec<Option<Vec<u8>>> = response
        .op_responses()
        .into_iter()
        .filter_map(|op| match op {
            TxnOpResponse::Get(get) => Some(get.kvs().first().map(|kv| kv.value().to_vec())),
            _ => None,
        })
        .skip(1)
        .collect();
    failure_among(conditions, &values)
}

/// [`first_failed`] for a transaction whose failure branch reads only the condition keys.
fn first_failed_unrecorded(conditions: &[Condition], response: &etcd_client::TxnResponse) -> Option<ConditionFailed> {
    let values: Vec<Option<Vec<u8>>> = response
        .op_responses()
        .into_iter()
        .filter_map(|op| match op {
            TxnOpResponse::Get(get) => Some(get.kvs().first().map(|kv| kv.value().to_vec())),
            _ => None,
        })
        .collect();
    failure_among(conditions, &values)
}

/// The first of `conditions` that fails given its key's value in `values`.
fn failure_among(conditions: &[Condition], values: &[Option<Vec<u8>>]) -> Option<ConditionFailed> {
    conditions.iter().zip(values).enumerate().find_map(|(index, (condition, value))| {
        (!condition.holds(value.as_deref())).then(|| ConditionFailed {
            index: u32::try_from(index).unwrap_or(u32::MAX),
            current: value.clone().map(Into::into),
        })
    })
}

/// The record the failure branch of a write's transaction read.
fn read_record(response: &etcd_client::TxnResponse) -> KnownRecord {
    let kv = response.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Get(get) => get.kvs().first().cloned(),
        _ => None,
    });
    match kv {
        None => KnownRecord::default(),
        Some(kv) => {
            let record = SessionRecord::from_stored(kv.value()).unwrap_or_else(|| {
                tracing::warn!("undecodable session record ignored; replays of its writes may apply again");
                SessionRecord::default()
            });
            KnownRecord { record, mod_revision: kv.mod_revision() }
        }
    }
}

/// A write of a client that never replays: no record to check or keep.
async fn write_unrecorded(shared: &Shared, op: &WriteOp) -> Result<WriteAnswer, StoreError> {
    verdict(op, shared.options.max_key_size, &shared.options.hooks)?;
    for _ in 0..MAX_ATTEMPTS {
        let mut plan = plan_op(shared, op).await?;
        check_limits(shared, &plan, false)?;
        let answer = plan.answer.take().unwrap_or(Ok(WriteAnswer::Done))?;
        if plan.ops.is_empty() {
            return Ok(answer);
        }
        let otherwise: Vec<TxnOp> = plan.reads.iter().map(|key| TxnOp::get(key.clone(), None)).collect();
        let txn = Txn::new().when(plan.compares).and_then(plan.ops).or_else(otherwise);
        let response = shared
            .call(Retry::NotSentOnly, None, |mut kv| {
                let txn = txn.clone();
                async move { kv.txn(txn).await }
            })
            .await?;
        if response.succeeded() {
            return Ok(answer);
        }
        if let WriteOp::Conditional { conditions, .. } = op
            && let Some(failed) = first_failed_unrecorded(conditions, &response)
        {
            return Ok(WriteAnswer::Failed(failed));
        }
    }
    Err(EtcdError::Contended(MAX_ATTEMPTS).into())
}

/// Fails if the transaction would exceed etcd's limits (`with_record`: plus the session
/// record's compare and put).
fn check_limits(shared: &Shared, plan: &Plan, with_record: bool) -> Result<(), EtcdError> {
    let extra = usize::from(with_record);
    let ops = (plan.ops.len() + extra).max(plan.compares.len() + extra);
    let max = shared.options.max_txn_ops;
    if ops > max {
        return Err(EtcdError::TooManyOperations { ops, max });
    }
    // A record is a few bytes plus the failures it remembers; 256 covers the usual case.
    let bytes = plan.bytes + if with_record { 256 } else { 0 };
    let max = shared.options.max_request_bytes;
    if bytes > max {
        return Err(EtcdError::RequestTooLarge { bytes, max });
    }
    Ok(())
}

/// The compares and operations that carry out `op`.
async fn plan_op(shared: &Shared, op: &WriteOp) -> Result<Plan, EtcdError> {
    let layout = &shared.layout;
    let mut plan = Plan::default();
    match op {
        WriteOp::Put { key, value } => plan.put(layout.data_key(key), value),
        WriteOp::Del { key } => plan.del(layout.data_key(key)),
        WriteOp::Batch(ops) => plan_batch(shared, &mut plan, ops),
        WriteOp::Conditional { conditions, ops } => {
            for condition in conditions {
                let key = layout.data_key(condition.key());
                let len = key.len();
                match condition {
                    Condition::Absent { .. } => {
                        plan.compare(Compare::create_revision(key.clone(), CompareOp::Equal, 0), len)
                    }
                    Condition::Equals { value, .. } => {
                        plan.compare(Compare::value(key.clone(), CompareOp::Equal, value.to_vec()), len + value.len());
                    }
                }
                plan.reads.push(key);
            }
            plan_batch(shared, &mut plan, ops);
        }
        WriteOp::Increment { key, by } => {
            let data_key = layout.data_key(key);
            let mut response = shared
                .call(Retry::Idempotent, None, |mut kv| {
                    let data_key = data_key.clone();
                    async move { kv.get(data_key, None).await }
                })
                .await?;
            let current = response.take_kvs().into_iter().next();
            match increment(key, current.as_ref().map(|kv| kv.value()), *by) {
                Ok(value) => {
                    let guard = match &current {
                        Some(kv) => Compare::mod_revision(data_key.clone(), CompareOp::Equal, kv.mod_revision()),
                        None => Compare::create_revision(data_key.clone(), CompareOp::Equal, 0),
                    };
                    plan.compare(guard, data_key.len());
                    plan.put(data_key, &encode_counter(value));
                    plan.answer = Some(Ok(WriteAnswer::Counter(value)));
                }
                Err(error) => plan.answer = Some(Err(error)),
            }
        }
        WriteOp::Clear { range, reverse, limit } => {
            if let Some((start, end)) = layout.range(range) {
                match limit {
                    None => plan.del_range(start, end),
                    Some(0) => {}
                    Some(limit) => plan_limited_clear(shared, &mut plan, start, end, *reverse, *limit).await?,
                }
            }
        }
    }
    Ok(plan)
}

/// The operations of a batch. etcd refuses a key twice in one transaction: keep the last
/// operation per key, which leaves the same state as applying them all in order.
fn plan_batch(shared: &Shared, plan: &mut Plan, ops: &[BatchOp]) {
    let layout = &shared.layout;
    let mut last: HashMap<&[u8], usize> = HashMap::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        last.insert(&op.key()[..], i);
    }
    for (i, op) in ops.iter().enumerate() {
        if last.get(&op.key()[..]) != Some(&i) {
            continue;
        }
        match op {
            BatchOp::Put { key, value } => plan.put(layout.data_key(key), value),
            BatchOp::Del { key } => plan.del(layout.data_key(key)),
        }
    }
}

/// A clear of at most `limit` keys: read the first (or last) keys at revision R, then delete
/// exactly those, provided nothing in the deleted span changed since R and each of them still
/// exists. A failed compare makes the write plan again.
async fn plan_limited_clear(
    shared: &Shared,
    plan: &mut Plan,
    start: Vec<u8>,
    end: Vec<u8>,
    reverse: bool,
    limit: u64,
) -> Result<(), EtcdError> {
    let max = shared.options.max_txn_ops;
    // One more than can be deleted key by key tells "the whole range" from "more than fits".
    let read = i64::try_from(limit.min(max as u64)).unwrap_or(i64::MAX).saturating_add(1);
    let mut options = GetOptions::new().with_range(end.clone()).with_limit(read).with_keys_only();
    if reverse {
        // etcd sorts after reading the whole range: O(range) once per clear.
        options = options.with_sort(SortTarget::Key, SortOrder::Descend);
    }
    let mut response = shared
        .call(Retry::Idempotent, None, |mut kv| {
            let (start, options) = (start.clone(), options.clone());
            async move { kv.get(start, Some(options)).await }
        })
        .await?;
    let revision = response.header().map_or(0, |h| h.revision());
    let keys: Vec<Vec<u8>> = response.take_kvs().into_iter().map(|kv| kv.into_key_value().0).collect();
    let unchanged_since = |start: &[u8], end: &[u8]| {
        Compare::mod_revision(start.to_vec(), CompareOp::Less, revision + 1).with_range(end.to_vec())
    };
    // `count` is the whole range's, whatever the read's limit.
    if u64::try_from(response.count()).unwrap_or(0) <= limit {
        // The whole range: delete it, unless a key appeared or changed in it since.
        plan.compare(unchanged_since(&start, &end), start.len() + end.len());
        plan.del_range(start, end);
        return Ok(());
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if limit + 2 > max {
        return Err(EtcdError::TooManyOperations { ops: limit + 2, max });
    }
    let chosen = &keys[..limit.min(keys.len())];
    let (span_start, span_end) = if reverse {
        (chosen.last().cloned().unwrap_or_default(), end)
    } else {
        (start, successor(chosen.last().cloned().unwrap_or_default()))
    };
    plan.compare(unchanged_since(&span_start, &span_end), span_start.len() + span_end.len());
    for key in chosen {
        plan.compare(Compare::version(key.clone(), CompareOp::Greater, 0), key.len());
    }
    plan.del_range(span_start, span_end);
    Ok(())
}

/// Most writes committed in one group.
pub(crate) const MAX_GROUP: usize = 256;

/// Whether `write` may join a group: a put, delete or batch of a session that replays (a
/// clear reads before it writes, and its range delete could meet a key of another write).
pub(crate) fn groupable(write: &WriteRequest) -> bool {
    write.session != NO_REPLAY_SESSION
        && matches!(write.op, WriteOp::Put { .. } | WriteOp::Del { .. } | WriteOp::Batch(_))
}

/// Keys a groupable write touches, before collapsing.
pub(crate) fn op_count(op: &WriteOp) -> usize {
    match op {
        WriteOp::Batch(ops) => ops.len(),
        _ => 1,
    }
}

/// Bytes of keys and values a write carries.
pub(crate) fn op_bytes(op: &WriteOp) -> usize {
    match op {
        WriteOp::Put { key, value } => key.len() + value.len() + OP_OVERHEAD,
        WriteOp::Del { key } => key.len() + OP_OVERHEAD,
        WriteOp::Increment { key, .. } => key.len() + 20 + OP_OVERHEAD,
        WriteOp::Batch(ops) | WriteOp::Conditional { ops, .. } => ops
            .iter()
            .map(|op| match op {
                BatchOp::Put { key, value } => key.len() + value.len() + OP_OVERHEAD,
                BatchOp::Del { key } => key.len() + OP_OVERHEAD,
            })
            .sum(),
        WriteOp::Clear { range, .. } => range.key_bytes() + OP_OVERHEAD,
    }
}

/// Applies consecutive [`groupable`] writes of one session, in order, as one transaction (group
/// commit): the state and the record left are those of applying them one by one. Falls back
/// to one transaction each if together they exceed etcd's limits.
pub(crate) async fn write_group<'a>(
    shared: &Shared,
    cache: &mut RecordCache,
    writes: &'a [WriteRequest],
) -> Vec<Result<WriteAnswer, StoreError>> {
    let options = &shared.options;
    let session = writes[0].session;
    debug_assert!(writes.iter().all(|w| w.session == session && groupable(w)));
    let record_key = shared.layout.record_key(session);
    let mut verdicts: Vec<Option<Result<(), StoreError>>> = vec![None; writes.len()];
    for _ in 0..MAX_ATTEMPTS {
        let known = cache.get(&session).cloned().unwrap_or_default();
        let mut record = known.record.clone();
        let mut results = Vec::with_capacity(writes.len());
        // The last operation per key across the group: the state applying them in order leaves.
        let mut last: HashMap<Vec<u8>, Option<&'a [u8]>> = HashMap::new();
        let mut order: Vec<Vec<u8>> = Vec::new();
        let mut any_new = false;
        let mut set = |key: &[u8], value: Option<&'a [u8]>, last: &mut HashMap<Vec<u8>, Option<&'a [u8]>>| {
            let key = shared.layout.data_key(key);
            if last.insert(key.clone(), value).is_none() {
                order.push(key);
            }
        };
        for (write, verdict) in writes.iter().zip(verdicts.iter_mut()) {
            match record.check(write.request, options.replay_window) {
                ReplayCheck::Replay(outcome) => {
                    results.push(outcome);
                    continue;
                }
                ReplayCheck::Expired => {
                    results.push(Err(StoreError::ReplayExpired { request: write.request }));
                    continue;
                }
                ReplayCheck::New => any_new = true,
            }
            let outcome =
                verdict.get_or_insert_with(|| verdict_of(&write.op, options.max_key_size, &options.hooks)).clone();
            if outcome.is_ok() {
                match &write.op {
                    WriteOp::Put { key, value } => set(key, Some(value), &mut last),
                    WriteOp::Del { key } => set(key, None, &mut last),
                    WriteOp::Batch(ops) => {
                        for op in ops {
                            match op {
                                BatchOp::Put { key, value } => set(key, Some(value), &mut last),
                                BatchOp::Del { key } => set(key, None, &mut last),
                            }
                        }
                    }
                    WriteOp::Clear { .. } | WriteOp::Conditional { .. } | WriteOp::Increment { .. } => {
                        unreachable!("clears, conditional writes and increments are not grouped")
                    }
                }
            }
            let outcome = outcome.map(|()| WriteAnswer::Done);
            record.record(write.request, outcome.clone(), options.replay_window, now_secs());
            results.push(outcome);
        }
        if !any_new {
            return results;
        }
        let mut plan = Plan::default();
        for key in order {
            match last[&key] {
                Some(value) => plan.put(key, value),
                None => plan.del(key),
            }
        }
        if check_limits(shared, &plan, true).is_err() {
            let mut one_by_one = Vec::with_capacity(writes.len());
            for write in writes {
                one_by_one.push(write_one(shared, cache, write.clone()).await);
            }
            return one_by_one;
        }
        let guard = if known.mod_revision > 0 {
            Compare::mod_revision(record_key.clone(), CompareOp::Equal, known.mod_revision)
        } else {
            Compare::version(record_key.clone(), CompareOp::Equal, 0)
        };
        let mut ops = plan.ops;
        ops.push(TxnOp::put(record_key.clone(), record.to_stored(), None));
        let txn = Txn::new().when(vec![guard]).and_then(ops).or_else(vec![TxnOp::get(record_key.clone(), None)]);
        let response = shared
            .call(Retry::Idempotent, None, |mut kv| {
                let txn = txn.clone();
                async move { kv.txn(txn).await }
            })
            .await;
        match response {
            Ok(response) if response.succeeded() => {
                let mod_revision = response.header().map_or(0, |h| h.revision());
                cache.insert(session, KnownRecord { record, mod_revision });
                return results;
            }
            Ok(response) => {
                cache.insert(session, read_record(&response));
            }
            Err(error) if is_refusal(&error) => {
                // etcd refused the group (its limits are below the options): one by one,
                // each write gets its own answer.
                let mut one_by_one = Vec::with_capacity(writes.len());
                for write in writes {
                    one_by_one.push(write_one(shared, cache, write.clone()).await);
                }
                return one_by_one;
            }
            Err(error) => {
                // Unreachable after the retries: every write of the group fails with it (a
                // replay later is answered from the record, whether or not it applied).
                return writes.iter().map(|_| Err(error.clone().into())).collect();
            }
        }
    }
    writes.iter().map(|_| Err(EtcdError::Contended(MAX_ATTEMPTS).into())).collect()
}
