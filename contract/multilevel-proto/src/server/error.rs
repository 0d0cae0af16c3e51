//! Why a server connection closes.

use std::time::Duration;

use crate::frame::FrameError;
use crate::message::DecodeError;

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
