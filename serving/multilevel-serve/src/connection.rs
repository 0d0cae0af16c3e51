//! [`ServedConnection`]: a server state machine driven against a backend connection.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use multilevel_proto::backend::{Backend, BackendConnection, Completions, Execution};
use multilevel_proto::message::SessionId;
use multilevel_proto::{
    GoodbyeReason, Outcome, Protocol, ServerConfig, ServerError, ServerEvent, ServerMachine, StoreError, StoreRequest,
};

use crate::completions::CompletionQueue;
use crate::limit::ConnectionPermit;
use crate::metrics::{ConnectionMetrics, Kind};

/// A server connection on a backend, driven by an adapter.
///
/// Call [`handle_input`](Self::handle_input) with bytes read (only while
/// [`wants_input`](Self::wants_input)), [`poll_completions`](Self::poll_completions) when its
/// waker fires, [`handle_timeout`](Self::handle_timeout) at [`poll_timeout`](Self::poll_timeout),
/// and after each, write what [`take_output`](Self::take_output) gives. Close the transport once
/// [`is_closed`](Self::is_closed) and the output is written.
///
/// It records [metrics](crate::metrics) through the `metrics` facade (no-ops unless the
/// program installs a recorder), and once the handshake gives the client's session, records it
/// as the `session` field of the current `tracing` span, if that span has one (see
/// [`connection_span`](crate::connection_span)).
pub struct ServedConnection<C: BackendConnection> {
    machine: Box<dyn ServerMachine>,
    backend: C,
    queue: Arc<CompletionQueue>,
    /// The same queue, as the backend sees it.
    completions: Arc<dyn Completions>,
    /// Its place under the server's connection cap, held until the connection is dropped.
    permit: ConnectionPermit,
    /// Most bytes [`take_output`](Self::take_output) hands out at once.
    output_limit: usize,
    metrics: ConnectionMetrics,
    /// Whether the session was recorded in the tracing span.
    session_recorded: bool,
}

impl<C: BackendConnection> std::fmt::Debug for ServedConnection<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedConnection").field("machine", &self.machine).finish_non_exhaustive()
    }
}

impl<C: BackendConnection> ServedConnection<C> {
    /// A new connection on `backend`, holding `permit` (from the server's
    /// [`ConnectionLimit`](crate::ConnectionLimit)) until it is dropped; `Stats` requests
    /// report the limit's open connections.
    pub fn new<B: Backend<Connection = C>>(backend: &B, config: ServerConfig, permit: ConnectionPermit) -> Self {
        Self::with_protocol(backend, config, permit, Protocol::Multilevel)
    }

    /// A new connection on `backend` speaking `protocol`; otherwise as [`new`](Self::new).
    pub fn with_protocol<B: Backend<Connection = C>>(
        backend: &B,
        config: ServerConfig,
        permit: ConnectionPermit,
        protocol: Protocol,
    ) -> Self {
        let queue = Arc::new(CompletionQueue::default());
        Self {
            output_limit: config.output_high_water.max(1),
            machine: protocol.machine(config, Instant::now()),
            backend: backend.connection(),
            completions: Arc::clone(&queue) as Arc<dyn Completions>,
            queue,
            permit,
            metrics: ConnectionMetrics::new(),
            session_recorded: false,
        }
    }

    /// The state machine, for what this type does not wrap.
    pub fn machine(&self) -> &dyn ServerMachine {
        &*self.machine
    }

    /// The backend connection, e.g. to count its snapshots.
    pub fn backend(&self) -> &C {
        &self.backend
    }

    /// Whether the adapter should read from the transport now (see
    /// [`ServerConnection::wants_input`](multilevel_proto::ServerConnection::wants_input)).
    pub fn wants_input(&self) -> bool {
        self.machine.wants_input()
    }

    /// Whether the connection is finished (see
    /// [`ServerConnection::is_closed`](multilevel_proto::ServerConnection::is_closed)).
    pub fn is_closed(&self) -> bool {
        self.machine.is_closed()
    }

    /// Requests received and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.machine.in_flight()
    }

    /// The client's session, once the handshake gave it (multilevel's protocol only).
    pub fn session(&self) -> Option<SessionId> {
        self.machine.session()
    }

    /// Feeds bytes read from the transport and runs what they ask of the backend. An error
    /// means the connection is closing; a goodbye waits in the output.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), ServerError> {
        self.metrics.received(bytes.len());
        let result = self.machine.handle_input(bytes, Instant::now());
        if !self.session_recorded {
            self.record_session();
        }
        self.run_events();
        result
    }

    /// Takes the results the backend finished later; `Pending` (with `cx`'s waker registered)
    /// when there were none.
    pub fn poll_completions(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let done = self.queue.take_or_register(cx.waker());
        if done.is_empty() {
            return Poll::Pending;
        }
        let now = Instant::now(); // once for all: see `run_events`
        for (op, result) in done {
            self.metrics.answered_later(op, now, &result);
            let result = with_connections(result, &self.permit);
            let _ = self.machine.handle_outcome(op, result, now);
        }
        self.run_events();
        Poll::Ready(())
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.machine.poll_timeout()
    }

    /// Tells the connection the time (idle timeout).
    pub fn handle_timeout(&mut self) {
        self.machine.handle_timeout(Instant::now());
        self.run_events();
    }

    /// Starts an orderly close: a goodbye, and the iterators' snapshots released.
    pub fn close(&mut self, reason: GoodbyeReason, message: &str) {
        self.machine.close(reason, message);
        self.run_events();
    }

    /// Appends what there is to send to `out`, up to about the configured output high-water
    /// mark; returns whether it appended anything. Write it, then call again: draining output
    /// lets paused iterators read on, and stopping at the mark is what makes a peer that does
    /// not read push back instead of growing this process.
    pub fn take_output(&mut self, out: &mut Vec<u8>) -> bool {
        let start = out.len();
        self.run_events();
        while out.len() - start < self.output_limit {
            let Some(bytes) = self.machine.poll_transmit() else { break };
            out.extend_from_slice(&bytes);
            self.run_events();
        }
        self.metrics.sent(out.len() - start);
        out.len() > start
    }

    /// Records the session in the current span once the handshake has given it.
    #[cold]
    fn record_session(&mut self) {
        if let Some(session) = self.machine.session() {
            tracing::Span::current().record("session", session);
            self.session_recorded = true;
        }
    }

    /// Runs what the machine asks of the backend, in one read scope.
    ///
    /// The point reads of one call may share a snapshot: every request they answer was
    /// received before the call began (the machine only decodes input already fed to it), and
    /// a read waits in the machine until the writes before it are acknowledged, so each still
    /// sees every write acknowledged before it was sent.
    fn run_events(&mut self) {
        let Self { machine, backend, completions, permit, metrics, .. } = self;
        let Some(first) = machine.poll_event() else { return };
        let mut next = Some(first);
        // One clock read for the batch: the machine only needs the time for its idle timer,
        // and a read per answer was a measurable share of a pipelined get. Timed requests
        // (metrics with timing on) still read it per answer.
        let batch_now = Instant::now();
        backend.read_scope(&mut |executor| {
            while let Some(event) = next.take() {
                match event {
                    ServerEvent::Store { op, request } => {
                        let kind = Kind::of(&request);
                        let opens = match request {
                            StoreRequest::OpenIterator { iterator } => Some(iterator),
                            _ => None,
                        };
                        let start = metrics.start();
                        match executor.execute(op, request, completions) {
                            Execution::Ready(result) => {
                                let now = if start.is_some() { Instant::now() } else { batch_now };
                                metrics.answered(kind, start, now, opens, &result);
                                let result = with_connections(result, permit);
                                let _ = machine.handle_outcome(op, result, now);
                            }
                            Execution::Queued => metrics.queue(op, kind, start, opens),
                        }
                    }
                    ServerEvent::CloseIterator { iterator } => {
                        metrics.iterator_closed(iterator);
                        executor.close_iterator(iterator);
                    }
                    ServerEvent::CloseWatch { watch } => executor.close_watch(watch),
                }
                next = machine.poll_event();
            }
        });
    }
}

/// Adds the server's open connections to a `Stats` answer, which only the server knows.
fn with_connections(mut result: Result<Outcome, StoreError>, permit: &ConnectionPermit) -> Result<Outcome, StoreError> {
    if let Ok(Outcome::Stats(stats)) = &mut result {
        stats.push(("connections".into(), permit.open() as u64));
    }
    result
}
