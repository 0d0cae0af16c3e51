//! Why a request, an issue or a connection failed.

use std::time::Duration;

use super::request::Response;
use crate::frame::FrameError;
use crate::message::{DecodeError, ErrorCode, Goodbye, RemoteError};

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
            CallError::Issue(IssueError::Unsupported(_)) => ErrorKind::Unsupported,
            CallError::Request(RequestError::Remote(remote)) => match remote.code {
                ErrorCode::ReadOnly => ErrorKind::ReadOnly,
                ErrorCode::Rejected => ErrorKind::Rejected,
                ErrorCode::KeyTooLarge | ErrorCode::TooLarge => ErrorKind::TooLarge,
                ErrorCode::OutOfScope => ErrorKind::OutOfScope,
                ErrorCode::NotANumber => ErrorKind::NotANumber,
                ErrorCode::Unsupported => ErrorKind::Unsupported,
                ErrorCode::Compacted => ErrorKind::Compacted,
                _ => ErrorKind::Server,
            },
            CallError::Request(RequestError::ConnectionLost) => ErrorKind::ConnectionLost,
            CallError::Request(RequestError::TimedOut) => ErrorKind::TimedOut,
            CallError::Request(RequestError::Incompatible(_)) => ErrorKind::Incompatible,
            CallError::Request(RequestError::Unauthenticated(_)) => ErrorKind::Unauthenticated,
            CallError::Request(RequestError::Unreachable(_)) => ErrorKind::Unreachable,
            CallError::Request(RequestError::NotMultilevel(_)) => ErrorKind::NotMultilevel,
            CallError::Request(RequestError::Compacted { .. }) => ErrorKind::Compacted,
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
    /// The connection's token is limited to a sublevel and the request (a key, a batch op, a
    /// clear's or an iterator's range) reaches outside it; [`CallError::remote`] says which
    /// sublevel. Work through that sublevel (`db.sublevel(..)`) instead.
    OutOfScope,
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
    /// An increment found a value that is not a decimal integer, or would overflow; nothing
    /// was applied.
    NotANumber,
    /// The server does not offer what the request needs (conditional writes with an older
    /// server).
    Unsupported,
    /// A watch asked for changes older than the history the server keeps
    /// ([`RequestError::Compacted`] names the oldest position available).
    Compacted,
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
    /// A watch asked for changes older than the history the server keeps. Re-read the range,
    /// then watch from `oldest` or later (or from now).
    #[error("the change history before position {oldest} is no longer kept; re-read the range and watch from there")]
    Compacted {
        /// The oldest position still available.
        oldest: u64,
    },
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
    /// The queue is full; wait for [`ClientEvent::QueueAvailable`](super::ClientEvent::QueueAvailable) and try again.
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
    /// The connected server does not offer what the request needs (it did not announce the
    /// feature in its hello).
    #[error("{0}")]
    Unsupported(&'static str),
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
    Protocol(PeerMisbehaved),
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

/// How a server broke the protocol: what [`ConnectionError::Protocol`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerMisbehaved {
    /// A message other than the handshake answer came first.
    #[error("a message before the handshake answer")]
    MessageBeforeHandshake,
    /// A second handshake answer on one connection.
    #[error("a second handshake")]
    SecondHandshake,
    /// More iterator entries than the iterator's limit allows.
    #[error("more iterator entries than the limit allows")]
    IteratorPastLimit,
    /// An iterator entry outside the range left to visit.
    #[error("an iterator entry outside the range left to visit")]
    IteratorOutsideRange,
    /// Watch events out of order, or before the cursor the watch resumed at.
    #[error("watch events out of order or repeated")]
    WatchOutOfOrder,
    /// A watch event for a key outside the watched range.
    #[error("a watch event outside the watched range")]
    WatchOutsideRange,
}
