//! Settings, requests, answers, events and errors of the client state machine.

use std::time::Duration;

use bytes::Bytes;

use crate::frame::FrameError;
use crate::message::{BatchOp, DecodeError, Goodbye, RemoteError, ServerHello, SessionId};
use crate::range::KeyRange;

/// Settings of a client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The session id, which must be unique among the server's clients: pick it at random.
    /// It stays the same across reconnects so the server can recognise replayed writes.
    pub session: SessionId,
    /// Replay pending requests and resume iterators on the next connection. With retry off,
    /// a lost connection fails them with [`RequestError::ConnectionLost`].
    pub retry: bool,
    /// Largest frame accepted from the server. Default 16 MiB.
    pub max_frame: u32,
    /// Requests waiting for an answer at once; past it, issuing fails with
    /// [`IssueError::QueueFull`] until [`ClientEvent::QueueAvailable`]. Default 1024.
    pub max_pending: usize,
    /// Bytes of iterator entries the server may send ahead of what the caller consumed.
    /// Default 256 KiB.
    pub iterator_window: u64,
    /// Send a ping after this long without hearing from the server. Default 10 s.
    pub keepalive_interval: Duration,
    /// Give up on a connection (and on a handshake) that was silent this long. Default 30 s.
    pub keepalive_timeout: Duration,
    /// Fail requests not answered within this long; `None` waits forever. Default `None`.
    pub request_timeout: Option<Duration>,
    /// The token to present to a server that requires one. Default `None`.
    pub token: Option<String>,
}

impl ClientConfig {
    /// Default settings with the given session id.
    pub fn new(session: SessionId) -> Self {
        Self {
            session,
            retry: false,
            max_frame: 16 << 20,
            max_pending: 1024,
            iterator_window: 256 << 10,
            keepalive_interval: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(30),
            request_timeout: None,
            token: None,
        }
    }

    /// These settings with `retry` set.
    pub fn with_retry(mut self, retry: bool) -> Self {
        self.retry = retry;
        self
    }
}

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

    /// Whether this request changes the database.
    pub fn is_write(&self) -> bool {
        !matches!(self, Request::Get { .. } | Request::GetMany { .. } | Request::Stats)
    }

    pub(crate) fn keys(&self) -> Vec<&Bytes> {
        match self {
            Request::Get { key } | Request::Put { key, .. } | Request::Del { key } => vec![key],
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

    /// The counters of a `Stats`.
    pub fn into_stats(self) -> Result<Vec<(String, u64)>, CallError> {
        match self {
            Response::Stats(stats) => Ok(stats),
            other => Err(CallError::UnexpectedResponse(other)),
        }
    }
}

/// Why an operation of an adapter's client failed: what its `get`, `put`... return.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The request could not be issued (e.g. a key over the server's limit).
    #[error(transparent)]
    Issue(#[from] IssueError),
    /// The request failed (a server error, a lost connection without retry, a timeout).
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The server answered with something that does not fit the request.
    #[error("unexpected answer from the server: {0:?}")]
    UnexpectedResponse(Response),
}

/// Where an adapter client's connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Connecting, or waiting to connect again.
    Connecting,
    /// Connected, handshake done.
    Connected,
    /// The last connection ended with this error; a new one is being made.
    Disconnected(ConnectionError),
    /// The client was closed.
    Closed,
}

/// Why a request or iterator failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The server refused or failed it; the code says how.
    #[error("server error: {0}")]
    Remote(#[from] RemoteError),
    /// The connection was lost and retry is off. A write may or may not have been applied.
    #[error("connection to the server lost")]
    ConnectionLost,
    /// No answer came within the request's deadline. A write may still be applied.
    #[error("request timed out")]
    TimedOut,
    /// The client was closed.
    #[error("client closed")]
    Closed,
    /// The server speaks another protocol version or is not a multilevel server.
    #[error("incompatible server: {0}")]
    Incompatible(String),
    /// The server refused the client's token, or wanted one and got none.
    #[error("not allowed in: {0}")]
    Unauthenticated(String),
}

/// Why a request could not even be issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The queue is full; wait for [`ClientEvent::QueueAvailable`] and try again.
    #[error("request queue full; wait for it to drain")]
    QueueFull,
    /// A key is longer than the server accepts.
    #[error("key of {len} bytes exceeds the server's maximum of {max} bytes")]
    KeyTooLarge {
        /// The key's length.
        len: usize,
        /// The server's maximum.
        max: usize,
    },
    /// The request would not fit in one frame.
    #[error("request of {len} bytes exceeds the server's maximum frame of {max} bytes")]
    TooLarge {
        /// The encoded size.
        len: usize,
        /// The server's maximum.
        max: usize,
    },
    /// The client was closed.
    #[error("client closed")]
    Closed,
}

/// Why a connection was given up. The adapter must close the transport and, with retry on,
/// connect again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The transport reported that it ended.
    #[error("transport closed")]
    TransportClosed,
    /// The byte stream could not be split into frames.
    #[error("bad framing from server: {0}")]
    Frame(#[from] FrameError),
    /// A frame did not hold a valid server message.
    #[error("bad message from server: {0}")]
    Decode(#[from] DecodeError),
    /// The server broke the protocol.
    #[error("protocol violation by server: {0}")]
    Protocol(String),
    /// The server said goodbye.
    #[error("server closed the connection ({:?}): {}", .0.reason, .0.message)]
    Goodbye(Goodbye),
    /// The server is not a multilevel server or speaks another version; retrying will not help.
    #[error("incompatible server: {0}")]
    Incompatible(String),
    /// The server refused the token (or wanted one); retrying will not help.
    #[error("not allowed in: {0}")]
    Unauthenticated(String),
    /// Nothing arrived from the server within the keepalive timeout.
    #[error("server silent for {0:?}")]
    KeepaliveTimeout(Duration),
}

impl ConnectionError {
    /// Whether connecting again to the same server cannot help.
    pub fn is_fatal(&self) -> bool {
        matches!(self, ConnectionError::Incompatible(_) | ConnectionError::Unauthenticated(_))
    }
}

/// What happened, for the adapter to pass on to callers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The handshake completed; requests flow.
    Connected(ServerHello),
    /// The connection was given up; close the transport.
    Disconnected(ConnectionError),
    /// A request finished.
    Response {
        /// The id [`issue`](super::Client::issue) returned.
        id: u64,
        /// Its outcome.
        result: Result<Response, RequestError>,
    },
    /// An iterator has entries, its end, or its error to read.
    IteratorReadable {
        /// The iterator.
        id: u64,
    },
    /// The queue has room again after [`IssueError::QueueFull`].
    QueueAvailable,
}
