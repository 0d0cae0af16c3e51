//! The settings of the client state machine.

use std::time::Duration;

use crate::message::SessionId;

/// Settings of a client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The session id, which must be unique among the server's clients: pick it at random.
    /// It stays the same across reconnects so the server can recognise replayed writes.
    pub session: SessionId,
    /// Replay pending requests and resume iterators on the next connection. With retry off,
    /// a lost connection fails them with [`RequestError::ConnectionLost`](super::RequestError::ConnectionLost).
    pub retry: bool,
    /// Largest frame accepted from the server. Default 16 MiB.
    pub max_frame: u32,
    /// Requests waiting for an answer at once; past it, issuing fails with
    /// [`IssueError::QueueFull`](super::IssueError::QueueFull) until [`ClientEvent::QueueAvailable`](super::ClientEvent::QueueAvailable). Default 1024.
    pub max_pending: usize,
    /// Bytes of iterator entries (and watch events) the server may send ahead of what the
    /// caller consumed, so at most about this much waits in the client per iterator. Default
    /// 1 MiB: with client and server on different cores, each grant of credit takes a wake-up
    /// on the other side, and a 256 KiB window held a scan to 6.2M entries/s where 1 MiB
    /// reached 9-10M (BENCHMARKS.md). On one shared core a smaller window is a few percent
    /// faster, and it bounds the client's memory more tightly.
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
            iterator_window: 1 << 20,
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
