//! Settings, events and errors of the server state machine.

use std::time::Duration;

use crate::frame::FrameError;
use crate::message::DecodeError;
use crate::store::StoreRequest;

/// Settings of one server connection.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest frame accepted from a client. Default 16 MiB.
    pub max_frame: u32,
    /// Largest key accepted; announced in the handshake. Default 64 KiB; the LMDB store
    /// lowers it to what LMDB accepts.
    pub max_key_size: u32,
    /// Requests worked on at once per connection; past it the connection stops reading.
    /// Default 256.
    pub max_in_flight: u32,
    /// Iterators open at once per connection. Default 64.
    pub max_iterators: u32,
    /// Refuse every write with a read-only error. Default off.
    pub readonly: bool,
    /// Tokens a client must present (with their roles); `None` lets everyone in. Default
    /// `None`.
    pub tokens: Option<std::sync::Arc<crate::auth::Tokens>>,
    /// Close a connection that sent nothing for this long (clients ping well within it).
    /// Default 60 s.
    pub idle_timeout: Duration,
    /// Stop reading requests and iterator batches while this many bytes wait to be sent;
    /// also about the most an adapter writes at once. Default 256 KiB: enough to batch many
    /// frames per write, small enough that a client that stops reading holds little.
    pub output_high_water: usize,
    /// Most bytes of entries asked of the store per iterator batch, and so about the largest
    /// iterator frame. Default 64 KiB: large enough for throughput, small enough that a frame
    /// does not hold up other answers for long or need a long-lived connection to get through.
    pub max_batch_bytes: u64,
    /// Most entries asked of the store per iterator batch. Default 4096.
    pub max_batch_entries: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_frame: 16 << 20,
            max_key_size: 64 << 10,
            max_in_flight: 256,
            max_iterators: 64,
            readonly: false,
            tokens: None,
            idle_timeout: Duration::from_secs(60),
            output_high_water: 256 << 10,
            max_batch_bytes: 64 << 10,
            max_batch_entries: 4096,
        }
    }
}

/// Identifies one store request of one connection, to match its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub u64);

/// What the server state machine asks of its adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// Execute `request` against the store, then pass the result to
    /// [`handle_outcome`](super::ServerConnection::handle_outcome) with `op`.
    Store {
        /// Token to hand back with the outcome.
        op: OpId,
        /// The work.
        request: StoreRequest,
    },
    /// Release the snapshot of this iterator; no outcome is expected.
    CloseIterator {
        /// The iterator's id.
        iterator: u64,
    },
}

/// Why a server connection is closing. The peer has been sent a goodbye saying so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The byte stream could not be split into frames (e.g. a length over the maximum).
    #[error("bad framing: {0}")]
    Frame(#[from] FrameError),
    /// A frame did not hold a valid client message.
    #[error("bad message: {0}")]
    Decode(#[from] DecodeError),
    /// The first frame was not a multilevel handshake.
    #[error("the client did not start with the multilevel handshake")]
    BadMagic,
    /// The client speaks another protocol version.
    #[error("client speaks protocol version {client}, this server speaks {server}")]
    VersionMismatch {
        /// The client's version.
        client: u16,
        /// Ours.
        server: u16,
    },
    /// A message arrived that is not allowed at this point (e.g. a request before the
    /// handshake, or a second handshake).
    #[error("unexpected message: {0}")]
    Unexpected(&'static str),
    /// A request id was not greater than the previous one on this connection.
    #[error("request id {id} is not greater than the previous request id {previous}")]
    IdNotIncreasing {
        /// The offending id.
        id: u64,
        /// The previous id.
        previous: u64,
    },
    /// An iterator id was opened while already open.
    #[error("iterator {0} is already open")]
    IteratorIdInUse(u64),
    /// The server requires a token and the client presented none or a wrong one.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The client sent nothing for longer than the idle timeout.
    #[error("no data from the client for {0:?}")]
    IdleTimeout(Duration),
}
