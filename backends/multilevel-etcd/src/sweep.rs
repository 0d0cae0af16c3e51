//! Forgetting sessions: records of sessions idle for longer than
//! [`EtcdOptions::session_retention`](crate::EtcdOptions::session_retention) are deleted, as the
//! LMDB store does, so records of clients long gone do not fill etcd's quota.
//!
//! A record is deleted only if it did not change since it was read (a compare on its
//! `mod_revision`), so a sweep racing a write of that session, or another server's sweep,
//! deletes nothing it should not.

use std::sync::Weak;
use std::time::Duration;

use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use multilevel_proto::store::SessionRecord;

use crate::call::{Retry, Shared};
use crate::error::EtcdError;
use crate::keys::successor;
use crate::write::now_secs;

/// Longest time between two sweeps.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// Records read per page.
const PAGE: i64 = 1000;

/// Deletes the records idle for longer than the retention; returns how many.
pub(crate) async fn forget_idle(shared: &Shared) -> Result<usize, EtcdError> {
    let (start, end) = shared.layout.all_records();
    let record_len = start.len() + 8;
    let retention = shared.options.session_retention.as_secs();
    let now = now_secs();
    let mut from = start;
    let mut forgotten = 0;
    loop {
        let (page, more, _) = shared.range(&from, &end, 0, PAGE, false).await?;
        let idle: Vec<(Vec<u8>, i64)> = page
            .iter()
            .filter(|kv| kv.key().len() == record_len)
            .filter(|kv| {
                SessionRecord::from_stored(kv.value())
                    .is_some_and(|record| now.saturating_sub(record.last_seen) > retention)
            })
            .map(|kv| (kv.key().to_vec(), kv.mod_revision()))
            .collect();
        for chunk in idle.chunks(shared.options.max_txn_ops) {
            let compares: Vec<Compare> = chunk
                .iter()
                .map(|(key, revision)| Compare::mod_revision(key.clone(), CompareOp::Equal, *revision))
                .collect();
            let deletes: Vec<TxnOp> = chunk.iter().map(|(key, _)| TxnOp::delete(key.clone(), None)).collect();
            let txn = Txn::new().when(compares).and_then(deletes);
            let response = shared
                .call(Retry::Idempotent, None, |mut kv| {
                    let txn = txn.clone();
                    async move { kv.txn(txn).await }
                })
                .await?;
            if response.succeeded() {
                forgotten += chunk.len();
            }
        }
        match page.last() {
            Some(last) if more => from = successor(last.key().to_vec()),
            _ => return Ok(forgotten),
        }
    }
}

/// Sweeps every minute (or every retention, if shorter; at least a second apart) until the
/// backend is dropped.
pub(crate) async fn run(shared: Weak<Shared>, retention: Duration) {
    let interval = SWEEP_INTERVAL.min(retention).max(Duration::from_secs(1));
    loop {
        tokio::time::sleep(interval).await;
        let Some(shared) = shared.upgrade() else { return };
        match forget_idle(&shared).await {
            Ok(0) => {}
            Ok(forgotten) => tracing::debug!(forgotten, "forgot idle sessions"),
            Err(error) => tracing::warn!(%error, "could not forget idle sessions"),
        }
    }
}
