//! What a caller asks of the client and what it gets back.

use bytes::Bytes;

use super::error::CallError;
use crate::condition::{Condition, ConditionFailed};
use crate::message::{BatchOp, ClientMessage};
use crate::range::KeyRange;

/// An operation to issue with [`Client::issue`](super::Client::issue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Read a key; answered with [`Response::Value`].
    Get {
        /// The key.
        key: Bytes,
    },
    /// Read several keys; answered with [`Response::Values`].
    GetMany {
        /// The keys.
        keys: Vec<Bytes>,
    },
    /// Write a key; answered with [`Response::Done`].
    Put {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
    },
    /// Remove a key; answered with [`Response::Done`].
    Del {
        /// The key.
        key: Bytes,
    },
    /// Apply writes atomically; answered with [`Response::Done`].
    Batch {
        /// The writes, in order.
        ops: Vec<BatchOp>,
    },
    /// Ask for the server's counters; answered with [`Response::Stats`].
    Stats,
    /// Remove a range of keys; answered with [`Response::Done`].
    Clear {
        /// The keys.
        range: KeyRange,
        /// Count `limit` from the highest key down.
        reverse: bool,
        /// Remove at most this many.
        limit: Option<u64>,
    },
    /// Apply writes atomically if every condition holds, checked in the same transaction on
    /// the server; answered with [`Response::Done`] or [`Response::ConditionFailed`]. Needs a
    /// server that announced [`FEATURE_CONDITIONS`](crate::FEATURE_CONDITIONS).
    Conditional {
        /// The conditions.
        conditions: Vec<Condition>,
        /// The writes, in order.
        ops: Vec<BatchOp>,
    },
    /// Add `by` to the counter at `key` on the server; answered with [`Response::Counter`].
    /// Needs a server that announced [`FEATURE_CONDITIONS`](crate::FEATURE_CONDITIONS).
    Increment {
        /// The counter's key.
        key: Bytes,
        /// What to add.
        by: i64,
    },
}

impl Request {
    /// Read `key`.
    pub fn get(key: impl AsRef<[u8]>) -> Self {
        Request::Get { key: copy(key) }
    }

    /// Read several keys.
    pub fn get_many<K: AsRef<[u8]>>(keys: impl IntoIterator<Item = K>) -> Self {
        Request::GetMany { keys: keys.into_iter().map(copy).collect() }
    }

    /// Set `key` to `value`.
    pub fn put(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        Request::Put { key: copy(key), value: copy(value) }
    }

    /// Remove `key`.
    pub fn del(key: impl AsRef<[u8]>) -> Self {
        Request::Del { key: copy(key) }
    }

    /// Add `by` to the counter at `key`.
    pub fn increment(key: impl AsRef<[u8]>, by: i64) -> Self {
        Request::Increment { key: copy(key), by }
    }

    /// Whether this request needs [`FEATURE_CONDITIONS`](crate::FEATURE_CONDITIONS).
    pub fn needs_conditions(&self) -> bool {
        matches!(self, Request::Conditional { .. } | Request::Increment { .. })
    }

    /// Whether this request changes the database.
    pub fn is_write(&self) -> bool {
        !matches!(self, Request::Get { .. } | Request::GetMany { .. } | Request::Stats)
    }

    pub(crate) fn keys(&self) -> Vec<&Bytes> {
        match self {
            Request::Get { key } | Request::Put { key, .. } | Request::Del { key } | Request::Increment { key, .. } => {
                vec![key]
            }
            Request::Conditional { conditions, ops } => {
                conditions.iter().map(Condition::key).chain(ops.iter().map(BatchOp::key)).collect()
            }
            Request::GetMany { keys } => keys.iter().collect(),
            Request::Batch { ops } => ops.iter().map(BatchOp::key).collect(),
            Request::Clear { .. } | Request::Stats => Vec::new(),
        }
    }
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The value of a `Get`, `None` when the key is absent.
    Value(Option<Bytes>),
    /// The values of a `GetMany`, in the order asked.
    Values(Vec<Option<Bytes>>),
    /// A write was applied (exactly once, even if it was replayed).
    Done,
    /// The server's counters, as `(name, value)` pairs.
    Stats(Vec<(String, u64)>),
    /// An increment's counter value, after it was applied (exactly once).
    Counter(i64),
    /// A conditional write's condition failed; nothing was applied.
    ConditionFailed(ConditionFailed),
}

fn copy(data: impl AsRef<[u8]>) -> Bytes {
    Bytes::copy_from_slice(data.as_ref())
}

impl Response {
    /// The value of a `Get`.
    pub fn into_value(self) -> Result<Option<Bytes>, CallError> {
        match self {
            Response::Value(value) => Ok(value),
            other => Err(CallError::UnexpectedResponse(other)),
        }
    }

    /// The values of a `GetMany`.
    pub fn into_values(self) -> Result<Vec<Option<Bytes>>, CallError> {
        match self {
            Response::Values(values) => Ok(values),
            other => Err(CallError::UnexpectedResponse(other)),
        }
    }

    /// The acknowledgement of a write.
    pub fn into_done(self) -> Result<(), CallError> {
        match self {
            Response::Done => Ok(()),
            other => Err(CallError::UnexpectedResponse(other)),
        }
    }

    /// The answer to a conditional write: applied, or which condition failed.
    pub fn into_conditional(self) -> Result<Result<(), ConditionFailed>, CallError> {
        match self {
            Response::Done => Ok(Ok(())),
            Response::ConditionFailed(failed) => Ok(Err(failed)),
            other => Err(CallError::UnexpectedResponse(other)),
        }
    }

    /// The counter value of an `Increment`.
    pub fn into_counter(self) -> Result<i64, CallError> {
        match self {
            Response::Counter(value) => Ok(value),
            other => Err(CallError::UnexpectedResponse(other)),
        }
    }

    /// The counters of a `Stats`.
    pub fn into_stats(self) -> Result<Vec<(String, u64)>, CallError> {
        match self {
            Response::Stats(stats) => Ok(stats),
            other => Err(CallError::UnexpectedResponse(other)),
        }
    }
}

/// The message of request `id`, taking the request's keys and values.
pub(super) fn into_message(id: u64, request: Request) -> ClientMessage {
    match request {
        Request::Get { key } => ClientMessage::Get { id, key },
        Request::GetMany { keys } => ClientMessage::GetMany { id, keys },
        Request::Put { key, value } => ClientMessage::Put { id, key, value },
        Request::Del { key } => ClientMessage::Del { id, key },
        Request::Batch { ops } => ClientMessage::Batch { id, ops },
        Request::Clear { range, reverse, limit } => ClientMessage::Clear { id, range, reverse, limit },
        Request::Stats => ClientMessage::Stats { id },
        Request::Conditional { conditions, ops } => ClientMessage::Conditional { id, conditions, ops },
        Request::Increment { key, by } => ClientMessage::Increment { id, key, by },
    }
}

/// The request a message made by [`into_message`] came from.
pub(super) fn from_message(msg: ClientMessage) -> Request {
    match msg {
        ClientMessage::Get { key, .. } => Request::Get { key },
        ClientMessage::GetMany { keys, .. } => Request::GetMany { keys },
        ClientMessage::Put { key, value, .. } => Request::Put { key, value },
        ClientMessage::Del { key, .. } => Request::Del { key },
        ClientMessage::Batch { ops, .. } => Request::Batch { ops },
        ClientMessage::Clear { range, reverse, limit, .. } => Request::Clear { range, reverse, limit },
        ClientMessage::Conditional { conditions, ops, .. } => Request::Conditional { conditions, ops },
        ClientMessage::Increment { key, by, .. } => Request::Increment { key, by },
        // `into_message` makes only the messages above.
        _ => Request::Stats,
    }
}

pub(super) fn request_message(id: u64, request: &Request) -> ClientMessage {
    into_message(id, request.clone())
}
