//! What the server state machine asks of its adapter.

use crate::store::StoreRequest;

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
    /// End this watch ([`Executor::close_watch`](crate::backend::Executor::close_watch)); no
    /// outcome is expected.
    CloseWatch {
        /// The watch's id.
        watch: u64,
    },
}
