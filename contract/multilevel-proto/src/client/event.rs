//! What the client state machine reports to its adapter, and where a connection stands.

use super::error::ConnectionError;
use super::error::RequestError;
use super::request::Response;
use crate::message::ServerHello;

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
    /// The queue has room again after [`IssueError::QueueFull`](super::IssueError::QueueFull).
    QueueAvailable,
}
