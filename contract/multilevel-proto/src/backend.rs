//! The backend boundary: what a server needs from whatever keeps the data.
//!
//! A server state machine turns frames into [`StoreRequest`]s; a [`Backend`] carries them out.
//! LMDB on one host (`multilevel-store`) and the in-memory [`MemoryStore`](crate::MemoryStore)
//! implement it; a replicated engine can too. The serving glue (`multilevel-serve`) joins the
//! two, so every adapter serves every backend.
//!
//! The contract, beyond the [store semantics](crate::store):
//! - A request may be answered at once ([`Execution::Ready`]) or later ([`Execution::Queued`]);
//!   a backend that keeps the data elsewhere may queue every request. A queued request is
//!   answered exactly once, through [`Completions::complete`], from any thread.
//! - Nothing here blocks on a runtime: a backend that needs one owns it inside itself.
//! - Requests of one connection arrive in the order the machine released them: a write only
//!   after the reads before it were answered and a read only after the writes before it. A
//!   backend applies the writes it is given in that order (several may be in flight), and may
//!   run reads concurrently.

use std::sync::Arc;

use crate::server::{OpId, ServerConfig};
use crate::store::{Outcome, StoreError, StoreRequest};

/// What [`Executor::execute`] did with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Execution {
    /// The request ran inline; here is its result. Nothing will be sent to the completions.
    Ready(Result<Outcome, StoreError>),
    /// The request was queued; its result will be sent to the completions exactly once.
    Queued,
}

/// Where a backend sends the results of the requests it queued: one per connection, shared
/// with whatever thread or task finishes them. Keep `complete` short (e.g. push on a queue
/// and wake the connection): a backend may call it while holding up other work.
pub trait Completions: Send + Sync + 'static {
    /// The result of the queued request `op`.
    fn complete(&self, op: OpId, result: Result<Outcome, StoreError>);
}

/// A backend: the data shared by every connection of a server. Cheap to clone; every clone is
/// the same backend.
pub trait Backend: Clone + Send + Sync + 'static {
    /// One connection's view of the backend (its iterator snapshots).
    type Connection: BackendConnection;

    /// State for a new client connection.
    fn connection(&self) -> Self::Connection;

    /// The server settings this backend needs (its largest key, whether it is read-only).
    /// Servers start from these.
    fn server_config(&self) -> ServerConfig;

    /// Waits until every write accepted before this call is durable. Servers call it when they
    /// shut down.
    fn flush(&self) -> Result<(), StoreError>;
}

/// Runs one connection's requests.
pub trait Executor {
    /// Carries out `request`, the machine's operation `op`: at once, or queued with its result
    /// sent to `completions` later.
    fn execute(&mut self, op: OpId, request: StoreRequest, completions: &Arc<dyn Completions>) -> Execution;

    /// Releases an iterator's snapshot (`ServerEvent::CloseIterator`). Unknown ids are ignored.
    fn close_iterator(&mut self, iterator: u64);

    /// Ends a watch (`ServerEvent::CloseWatch`): a `ReadChanges` of it still waiting for a
    /// commit is answered at once, with no events, and whatever the backend keeps for the
    /// watch is released. Unknown ids are ignored. The default does nothing, for backends
    /// whose reads never wait.
    fn close_watch(&mut self, watch: u64) {
        let _ = watch;
    }
}

/// One connection's view of a [`Backend`]. `Send`, so a connection's task or thread owns it;
/// dropping it releases the connection's iterator snapshots.
pub trait BackendConnection: Executor + Send + 'static {
    /// Runs `run` with an executor whose point reads (`Get`, `GetMany`) may share one snapshot,
    /// taken at the first of them: the serving glue passes, in one call, only requests that
    /// arrived before it began, so each read still sees every write acknowledged before its
    /// request was sent. Other requests end the shared snapshot first. The default shares
    /// nothing.
    fn read_scope(&mut self, run: &mut dyn FnMut(&mut dyn Executor))
    where
        Self: Sized,
    {
        run(self);
    }
}
