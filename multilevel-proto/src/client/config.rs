//! Settings, requests, answers, events and errors of the client state machine.

use std::time::Duration;

use bytes::Bytes;

use crate::frame::FrameError;
use crate::message::{BatchOp, DecodeError, ErrorCode, Goodbye, RemoteError, ServerHello, SessionId};
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

impl CallError {
    /// What kind of failure this is, to decide what to do about it without matching on the
    /// nested errors.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CallError::Issue(IssueError::QueueFull) => ErrorKind::QueueFull,
            CallError::Issue(IssueError::KeyTooLarge { .. } | IssueError::TooLarge { .. }) => ErrorKind::TooLarge,
            CallError::Issue(IssueError::Closed) | CallError::Request(RequestError::Closed) => ErrorKind::Closed,
            CallError::Request(RequestError::Remote(remote)) => match remote.code {
                ErrorCode::ReadOnly => ErrorKind::ReadOnly,
                ErrorCode::Rejected => ErrorKind::Rejected,
                ErrorCode::KeyTooLarge | ErrorCode::TooLarge => ErrorKind::TooLarge,
                _ => ErrorKind::Server,
            },
            CallError::Request(RequestError::ConnectionLost) => ErrorKind::ConnectionLost,
            CallError::Request(RequestError::TimedOut) => ErrorKind::TimedOut,
            CallError::Request(RequestError::Incompatible(_)) => ErrorKind::Incompatible,
            CallError::Request(RequestError::Unauthenticated(_)) => ErrorKind::Unauthenticated,
            CallError::Request(RequestError::Unreachable(_)) => ErrorKind::Unreachable,
            CallError::Request(RequestError::NotMultilevel(_)) => ErrorKind::NotMultilevel,
            CallError::UnexpectedResponse(_) => ErrorKind::Protocol,
        }
    }

    /// Whether no answer came within the request's deadline.
    pub fn is_timeout(&self) -> bool {
        self.kind() == ErrorKind::TimedOut
    }

    /// Whether the server could not be reached because nothing accepted the connection
    /// (refused, no route, no socket at the path).
    pub fn is_connection_refused(&self) -> bool {
        self.connect_failure().is_some_and(ConnectFailure::is_refused)
    }

    /// Why the server could not be reached, for [`ErrorKind::Unreachable`].
    pub fn connect_failure(&self) -> Option<&ConnectFailure> {
        match self {
            CallError::Request(RequestError::Unreachable(failure)) => Some(failure),
            _ => None,
        }
    }

    /// The server's error (its code and message), when the server refused or failed the request.
    pub fn remote(&self) -> Option<&RemoteError> {
        match self {
            CallError::Request(RequestError::Remote(remote)) => Some(remote),
            _ => None,
        }
    }
}

/// What kind of failure a [`CallError`] is; see [`CallError::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No answer came within the deadline. A write may still be applied.
    TimedOut,
    /// The server could not be reached (retry off); nothing was sent.
    Unreachable,
    /// The connection was lost (retry off). A write may or may not have been applied.
    ConnectionLost,
    /// The peer is not a multilevel server.
    NotMultilevel,
    /// The server speaks another protocol version.
    Incompatible,
    /// The server refused the token, or wanted one.
    Unauthenticated,
    /// The write was refused: the database, or this connection's token, is read-only.
    ReadOnly,
    /// A server hook rejected the write; [`CallError::remote`] has its message.
    Rejected,
    /// A key, value or request is over the server's limits.
    TooLarge,
    /// The client's queue is full (only from a non-waiting issue).
    QueueFull,
    /// The client was closed.
    Closed,
    /// The server failed the request for another reason; [`CallError::remote`] has its code.
    Server,
    /// The server answered with something that does not fit the request.
    Protocol,
}

/// Where an adapter client's connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Connecting for the first time.
    Connecting,
    /// Connected, handshake done.
    Connected,
    /// The last connection, or the last attempt to make one, ended with this error (for a
    /// server that could not be reached, [`ConnectionError::Connect`]); another attempt is
    /// being made or waits for its backoff.
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
    /// The server could not be reached and retry is off: the attempt to connect failed with
    /// this cause. Nothing was sent, so a write was not applied.
    #[error("cannot reach the server: {0}")]
    Unreachable(ConnectFailure),
    /// Something answered that is not a multilevel server (another service on that port?).
    #[error("the peer is not a multilevel server: {0}")]
    NotMultilevel(String),
}

/// Why an attempt to open a transport to the server failed, as the adapter's connector
/// reported it. Cloneable and comparable, unlike [`std::io::Error`], so that it can be handed
/// to every waiting caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConnectFailure {
    /// The kind of the I/O error, e.g. [`ConnectionRefused`](std::io::ErrorKind::ConnectionRefused)
    /// when nothing listens at the address.
    pub kind: std::io::ErrorKind,
    /// The error's message, e.g. "Connection refused (os error 111)".
    pub message: String,
}

impl ConnectFailure {
    /// A failure with this kind and message.
    pub fn new(kind: std::io::ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }

    /// Whether nothing accepted the connection: refused, reset, or no route to it.
    pub fn is_refused(&self) -> bool {
        use std::io::ErrorKind::*;
        matches!(
            self.kind,
            ConnectionRefused | ConnectionReset | ConnectionAborted | NotFound | HostUnreachable | NetworkUnreachable
        )
    }
}

impl From<&std::io::Error> for ConnectFailure {
    fn from(err: &std::io::Error) -> Self {
        Self::new(err.kind(), err.to_string())
    }
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
    /// No transport could be opened: the connector failed (refused, name not found, TLS
    /// refused...). With retry on, the adapter tries again after its backoff.
    #[error("cannot reach the server: {0}")]
    Connect(ConnectFailure),
    /// The peer answered the handshake with bytes that are not multilevel frames (another
    /// service listens there); retrying will not help.
    #[error("the peer is not a multilevel server: {0}")]
    NotMultilevel(String),
}

impl ConnectionError {
    /// Whether connecting again to the same server cannot help.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            ConnectionError::Incompatible(_) | ConnectionError::Unauthenticated(_) | ConnectionError::NotMultilevel(_)
        )
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
