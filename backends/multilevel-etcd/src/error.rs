//! Errors of the etcd backend, and how etcd's own errors map onto the store contract.

use std::time::Duration;

use multilevel_proto::StoreError;

/// What went wrong talking to etcd, or what etcd cannot do.
///
/// Converted into a [`StoreError`] for the client: [`EtcdError::QuotaFull`] becomes
/// [`StoreError::StorageFull`], everything else [`StoreError::Internal`] with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EtcdError {
    /// No endpoint was given.
    #[error("no etcd endpoint given: pass at least one, e.g. http://127.0.0.1:2379")]
    NoEndpoints,
    /// The namespace contains a byte that would let it overlap another namespace.
    #[error("namespace {0:?} contains a 0x00 or 0x01 byte; those separate a namespace from its keys")]
    InvalidNamespace(Vec<u8>),
    /// An option is out of range.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// The backend's runtime could not start.
    #[error("could not start the etcd backend's runtime: {0}")]
    Runtime(String),
    /// No member answered within the retry time.
    #[error(
        "no etcd member at {endpoints} answered within {waited:?} ({cause}); check that the cluster runs, that the \
         endpoints are its client URLs, and that a quorum of members is up"
    )]
    Unavailable {
        /// The endpoints tried, comma-separated.
        endpoints: String,
        /// How long calls were retried.
        waited: Duration,
        /// The last error seen.
        cause: String,
    },
    /// A write needs more operations than one etcd transaction may hold.
    #[error(
        "the write needs {ops} operations in one etcd transaction but the cluster allows {max} (etcd \
         --max-txn-ops); it was not applied, and is never split because that would break its atomicity: use \
         smaller batches or raise --max-txn-ops on every member and EtcdOptions::max_txn_ops"
    )]
    TooManyOperations {
        /// Operations the write needs (its distinct keys, the session record, compares).
        ops: usize,
        /// The limit.
        max: usize,
    },
    /// A write is larger than one etcd request may be.
    #[error(
        "the write needs a request of about {bytes} bytes but the cluster accepts at most {max} (etcd \
         --max-request-bytes); it was not applied: use smaller values or batches, or raise --max-request-bytes \
         on every member and EtcdOptions::max_request_bytes"
    )]
    RequestTooLarge {
        /// Estimated size of the request.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// An iterator's snapshot revision was compacted away.
    #[error(
        "the iterator's snapshot (etcd revision {revision}) was compacted; the iterator cannot continue, open a new \
         one (keep etcd's --auto-compaction-retention above the longest iteration)"
    )]
    Compacted {
        /// The iterator's revision.
        revision: i64,
    },
    /// The cluster's storage quota is used up.
    #[error(
        "etcd's storage quota is exhausted (mvcc: database space exceeded): delete data, compact and defragment, \
         then disarm the NOSPACE alarm (etcdctl alarm disarm), or raise --quota-backend-bytes"
    )]
    QuotaFull,
    /// A write kept losing races with other writers.
    #[error("the write lost {0} races in a row with concurrent writers; it was not applied")]
    Contended(u32),
    /// etcd answered something this backend does not expect.
    #[error("etcd error: {0}")]
    Etcd(String),
}

impl From<EtcdError> for StoreError {
    fn from(error: EtcdError) -> Self {
        match error {
            EtcdError::QuotaFull => StoreError::StorageFull(error.to_string()),
            other => StoreError::Internal(other.to_string()),
        }
    }
}

/// How an etcd call failed, for the retry decision.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The request never reached a member (connect failed): safe to retry any call.
    NotSent(String),
    /// The request may have reached a member (leader change, timeout, lost reply): safe to
    /// retry reads and writes guarded by a session-record compare.
    Unsure(String),
    /// A definite answer that retrying will not change.
    Final(EtcdError),
}

impl CallError {
    pub(crate) fn message(&self) -> String {
        match self {
            CallError::NotSent(m) | CallError::Unsure(m) => m.clone(),
            CallError::Final(e) => e.to_string(),
        }
    }
}

/// Classifies an etcd-client error.
pub(crate) fn classify(error: etcd_client::Error, limits: (usize, usize), revision: Option<i64>) -> CallError {
    let (max_txn_ops, max_request_bytes) = limits;
    match error {
        etcd_client::Error::GRpcStatus(status) => {
            let message = status.message().to_string();
            if message.contains("required revision has been compacted") {
                return CallError::Final(EtcdError::Compacted { revision: revision.unwrap_or(0) });
            }
            if message.contains("database space exceeded") {
                return CallError::Final(EtcdError::QuotaFull);
            }
            if message.contains("too many operations in txn request") {
                return CallError::Final(EtcdError::TooManyOperations { ops: max_txn_ops + 1, max: max_txn_ops });
            }
            // etcd's own check, and gRPC's cap on what a member receives (`--max-request-bytes`
            // plus some overhead). A reply too large for this client is another matter.
            if message.contains("request is too large") || message.contains("received message larger than max") {
                return CallError::Final(EtcdError::RequestTooLarge {
                    bytes: max_request_bytes + 1,
                    max: max_request_bytes,
                });
            }
            let text = format!("{:?}: {message}", status.code());
            match status.code() as i32 {
                tonic_code::UNAVAILABLE if is_connect_error(&message) => CallError::NotSent(text),
                tonic_code::UNAVAILABLE
                | tonic_code::DEADLINE_EXCEEDED
                | tonic_code::ABORTED
                | tonic_code::UNKNOWN
                | tonic_code::CANCELLED => {
                    if message.contains("duplicate key") {
                        CallError::Final(EtcdError::Etcd(text))
                    } else {
                        CallError::Unsure(text)
                    }
                }
                _ => CallError::Final(EtcdError::Etcd(text)),
            }
        }
        etcd_client::Error::TransportError(e) => CallError::NotSent(format!("transport error: {e}")),
        etcd_client::Error::IoError(e) => CallError::Unsure(format!("io error: {e}")),
        other => CallError::Final(EtcdError::Etcd(other.to_string())),
    }
}

fn is_connect_error(message: &str) -> bool {
    message.contains("tcp connect error")
        || message.contains("error trying to connect")
        || message.contains("Connection refused")
        || message.contains("connection refused")
}

/// gRPC status codes, as numbers (tonic is not a direct dependency).
mod tonic_code {
    /// Also what tonic reports when the client's own request timeout expires.
    pub(super) const CANCELLED: i32 = 1;
    pub(super) const UNKNOWN: i32 = 2;
    pub(super) const DEADLINE_EXCEEDED: i32 = 4;
    pub(super) const ABORTED: i32 = 10;
    pub(super) const UNAVAILABLE: i32 = 14;
}
