//! The many-level 2.0 wire protocol, so Node programs using `many-level` (and `rave-level`)
//! can share a database with Rust programs.
//!
//! - Framing: `varint(len)`, one tag byte, a proto2 protobuf body ([`codec`]).
//! - Messages: [`messages`], derived with prost, field numbers as in many-level's schema.
//! - [`ManyLevelServer`]: the host side of one connection, driven like
//!   [`ServerConnection`](crate::ServerConnection) and emitting the same
//!   [`ServerEvent`](crate::ServerEvent)s, so the same store serves both protocols.
//!
//! # Differences from the original host (wire-compatible)
//!
//! - Undecodable frames and unknown tags are not dropped silently: the request is answered
//!   with `LEVEL_REMOTE_ERROR` when its id can be read, and the connection closes.
//! - An iterator never reads past its limit: the limit is counted against entries sent.
//! - Resuming from a bookmark uses an exclusive bound at the bookmark, so a reverse
//!   iterator keeps keys that extend a smaller key.
//! - A getMany error is an error reply, not a crash.
//! - Writes are at-least-once across reconnects, as with the original: see
//!   [`ManyLevelServer`].

pub mod codec;
mod iter;
pub mod messages;
mod server;

pub use codec::{GuestMessage, HostMessage, ManyLevelDecodeError, encode_message};
pub use server::ManyLevelServer;

use crate::store::StoreError;

/// The key does not exist (a get's answer).
pub const LEVEL_NOT_FOUND: &str = "LEVEL_NOT_FOUND";
/// The host refuses writes.
pub const LEVEL_READONLY: &str = "LEVEL_READONLY";
/// Any other failure on the host; many-level never sends error messages, only codes.
pub const LEVEL_REMOTE_ERROR: &str = "LEVEL_REMOTE_ERROR";

/// The many-level code for a store error: `LEVEL_READONLY` for a read-only store, else
/// `LEVEL_REMOTE_ERROR` (the original host sends only `LEVEL_*` codes of the database and
/// turns everything else into this one).
pub fn error_code(err: &StoreError) -> &'static str {
    match err {
        StoreError::ReadOnly => LEVEL_READONLY,
        _ => LEVEL_REMOTE_ERROR,
    }
}
