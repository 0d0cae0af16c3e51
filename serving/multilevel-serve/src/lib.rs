//! The serving glue of multilevel: one server connection bound to a backend, the part of a
//! server every adapter shares.
//!
//! [`ServedConnection`] joins a server state machine
//! ([`ServerConnection`](multilevel_proto::ServerConnection) for multilevel's own protocol, or
//! [`ManyLevelServer`](multilevel_proto::ManyLevelServer) for many-level's) to a
//! [`BackendConnection`]: requests the backend answers at once go straight back to the machine;
//! those it queues come back through a queue that wakes the adapter with a
//! [`Waker`](std::task::Waker). An adapter only moves bytes and waits; it serves any
//! [`Backend`] (LMDB, in memory, a replicated engine).
//!
//! [`Serving`] is the rest every server adapter shares: the backend, the protocol settings and
//! protocol, and the connection cap ([`ConnectionLimit`]): a [`ConnectionPermit`] per connection
//! served, a [`Refusal`] with the `TooManyConnections` goodbye for one past the cap.
//!
//! The crates, and the one way their arrows run: adapters -> this crate -> the contract in
//! `multilevel-proto` (<- backends such as `multilevel-store`).

#![warn(missing_docs)]

mod completions;
mod connection;
mod limit;
pub mod metrics;
mod serving;

pub use connection::ServedConnection;
pub use limit::{ConnectionLimit, ConnectionPermit, Refusal};

/// The span a server gives each connection, so that every log line of the connection shows
/// its peer: `connection{peer=... session=...}`. [`ServedConnection`] records `session` once
/// the handshake gives it, when the span is current while it handles input.
pub fn connection_span(peer: &dyn std::fmt::Display) -> tracing::Span {
    tracing::info_span!("connection", peer = %peer, session = tracing::field::Empty)
}
pub use multilevel_proto::backend::{Backend, BackendConnection, Completions, Execution, Executor};
pub use serving::Serving;

#[doc(hidden)]
pub use multilevel_proto as __proto;
