//! The cap on connections served at once: one count per server, a [`ConnectionPermit`] per
//! connection served, and a [`Refusal`] (with the goodbye to send) for one past the cap.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use multilevel_proto::{GoodbyeReason, Protocol};

/// How many connections a server serves at once, and how many it serves now. Cheap to clone;
/// clones share the count.
#[derive(Debug, Clone)]
pub struct ConnectionLimit {
    open: Arc<AtomicUsize>,
    max: usize,
}

impl Default for ConnectionLimit {
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX)
    }
}

impl ConnectionLimit {
    /// The cap of every server unless told otherwise.
    pub const DEFAULT_MAX: usize = 10_000;

    /// A limit of `max` connections at once, none open yet.
    pub fn new(max: usize) -> Self {
        Self { open: Arc::default(), max }
    }

    /// The same count with the cap set to `max`.
    #[must_use]
    pub fn with_max(self, max: usize) -> Self {
        Self { max, ..self }
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections open right now (permits not yet dropped).
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Takes a place for a new connection speaking `protocol`: a permit that holds it until
    /// dropped, or, with `max` connections open, the refusal to send before closing it.
    pub fn admit(&self, protocol: Protocol) -> Result<ConnectionPermit, Refusal> {
        let taken =
            self.open.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |open| (open < self.max).then_some(open + 1));
        match taken {
            Ok(_) => Ok(ConnectionPermit { open: Arc::clone(&self.open) }),
            Err(_) => Err(Refusal::new(protocol, self.max)),
        }
    }
}

/// One connection's place under a [`ConnectionLimit`]; dropping it frees the place.
#[derive(Debug)]
pub struct ConnectionPermit {
    open: Arc<AtomicUsize>,
}

impl ConnectionPermit {
    /// Connections open right now under the same limit, this one included.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection turned away by a [`ConnectionLimit`]: write [`goodbye`](Self::goodbye) (briefly:
/// do not wait long on a peer that does not read), then close the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    max: usize,
    goodbye: Vec<u8>,
}

impl Refusal {
    fn new(protocol: Protocol, max: usize) -> Self {
        let message = format!("the server holds its maximum of {max} connections; try again later");
        Self { max, goodbye: protocol.goodbye(GoodbyeReason::TooManyConnections, &message) }
    }

    /// The bytes to send: a `TooManyConnections` goodbye, encoded by the protocol's own
    /// machine; empty for many-level, which has no goodbye.
    pub fn goodbye(&self) -> &[u8] {
        &self.goodbye
    }

    /// The cap that was reached.
    pub fn max(&self) -> usize {
        self.max
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refusing a connection: {} open, the maximum", self.max)
    }
}
