//! What every request shares: the etcd client, the namespace's key layout, the options, and
//! calls with retries.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{GetOptions, KvClient};

use crate::EtcdOptions;
use crate::compact::Snapshots;
use crate::error::{CallError, EtcdError, classify};
use crate::keys::Layout;

/// The largest answer accepted from etcd (tonic's default is 4 MiB; iterator batches and
/// `GetMany` of large values need more).
pub(crate) const MAX_DECODING: usize = 512 << 20;
/// First pause before retrying a call that did not reach a member; doubles up to a second.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(20);

/// Whether a call may be repeated when etcd may already have carried it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Reads, and writes guarded by a session-record compare (a repeat finds the record
    /// changed): repeat on any transient error.
    Idempotent,
    /// Writes without a guard: repeat only what never reached a member.
    NotSentOnly,
}

/// State shared by every connection and request of a backend.
pub(crate) struct Shared {
    pub(crate) client: etcd_client::Client,
    pub(crate) layout: Layout,
    pub(crate) options: EtcdOptions,
    /// The endpoints, comma-separated, for error messages.
    pub(crate) endpoints: String,
    /// The revisions this backend's open iterators read, for compaction.
    pub(crate) snapshots: Arc<Mutex<Snapshots>>,
}

impl Shared {
    pub(crate) fn kv(&self) -> KvClient {
        self.client.kv_client().max_decoding_message_size(MAX_DECODING).max_encoding_message_size(MAX_DECODING)
    }

    /// Runs `call` until it succeeds, fails for good, or transient failures outlast
    /// [`EtcdOptions::retry_for`]. `revision` names an iterator's snapshot in errors.
    pub(crate) async fn call<T, Fut>(
        &self,
        retry: Retry,
        revision: Option<i64>,
        mut call: impl FnMut(KvClient) -> Fut,
    ) -> Result<T, EtcdError>
    where
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let started = Instant::now();
        let mut delay = FIRST_RETRY_DELAY;
        let limits = (self.options.max_txn_ops, self.options.max_request_bytes);
        loop {
            let error = match call(self.kv()).await {
                Ok(value) => return Ok(value),
                Err(error) => classify(error, limits, revision),
            };
            match error {
                CallError::Final(error) => return Err(error),
                CallError::Unsure(message) if retry == Retry::NotSentOnly => {
                    return Err(EtcdError::Etcd(format!(
                        "{message}; this write carries no session (its client does not replay), so it was not \
                         retried and may or may not have been applied"
                    )));
                }
                other => {
                    if started.elapsed() + delay > self.options.retry_for {
                        return Err(EtcdError::Unavailable {
                            endpoints: self.endpoints.clone(),
                            waited: started.elapsed(),
                            cause: other.message(),
                        });
                    }
                    tracing::debug!(error = other.message(), ?delay, "etcd call failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// The keys (and values unless `keys_only`) of `[start, end)` at `revision` (0: now,
    /// linearizable), ascending, at most `limit` (0: all); and whether more follow, and the
    /// revision read.
    pub(crate) async fn range(
        &self,
        start: &[u8],
        end: &[u8],
        revision: i64,
        limit: i64,
        keys_only: bool,
    ) -> Result<(Vec<etcd_client::KeyValue>, bool, i64), EtcdError> {
        let mut options = GetOptions::new().with_range(end.to_vec()).with_limit(limit).with_revision(revision);
        if keys_only {
            options = options.with_keys_only();
        }
        let revision_named = (revision > 0).then_some(revision);
        let mut response = self
            .call(Retry::Idempotent, revision_named, |mut kv| {
                let (start, options) = (start.to_vec(), options.clone());
                async move { kv.get(start, Some(options)).await }
            })
            .await?;
        let read = response.header().map_or(revision, |h| h.revision());
        let more = response.more();
        Ok((response.take_kvs(), more, read))
    }
}
