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
//! The crates, and the one way their arrows run: adapters -> this crate -> the contract in
//! `multilevel-proto` (<- backends such as `multilevel-store`).

#![warn(missing_docs)]

mod completions;
mod connection;

pub use connection::ServedConnection;
pub use multilevel_proto::backend::{Backend, BackendConnection, Completions, Execution, Executor};
