//! One server connection bound to the store: the part of a server that every adapter shares.
//!
//! [`ServedConnection`] joins a server state machine
//! ([`ServerConnection`](multilevel_proto::ServerConnection) for multilevel's own protocol, or
//! [`ManyLevelServer`](multilevel_proto::ManyLevelServer) for many-level's) to a
//! [`ConnectionStore`]: reads run inline, writes go to the writer thread, and their outcomes
//! come back through a queue that wakes the adapter with a [`Waker`]. An adapter only moves
//! bytes and waits.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use multilevel_proto::{
    GoodbyeReason, OpId, Outcome, Protocol, ServerConfig, ServerError, ServerEvent, ServerMachine, StoreError,
    StoreRequest,
};

use crate::{ConnectionStore, Execution, Store};

type Completion = (OpId, Result<Outcome, StoreError>);

/// Write outcomes waiting for the connection, and who to wake when one arrives.
#[derive(Default)]
struct Completions {
    queue: Mutex<(VecDeque<Completion>, Option<Waker>)>,
}

impl Completions {
    fn push(&self, completion: Completion) {
        let waker = {
            let mut guard = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            guard.0.push_back(completion);
            guard.1.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// A server connection on a store, driven by an adapter.
///
/// Call [`handle_input`](Self::handle_input) with bytes read (only while
/// [`wants_input`](Self::wants_input)), [`poll_completions`](Self::poll_completions) when its
/// waker fires, [`handle_timeout`](Self::handle_timeout) at [`poll_timeout`](Self::poll_timeout),
/// and after each, write what [`take_output`](Self::take_output) gives. Close the transport once
/// [`is_closed`](Self::is_closed) and the output is written.
pub struct ServedConnection {
    machine: Box<dyn ServerMachine>,
    store: ConnectionStore,
    completions: Arc<Completions>,
    connections: Arc<AtomicUsize>,
    /// Most bytes [`take_output`](Self::take_output) hands out at once.
    output_limit: usize,
}

impl std::fmt::Debug for ServedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedConnection").field("machine", &self.machine).finish_non_exhaustive()
    }
}

impl ServedConnection {
    /// A new connection on `store`. `connections` is the server's count of open connections:
    /// it is incremented now, decremented on drop, and reported by `Stats` requests.
    pub fn new(store: &Store, config: ServerConfig, connections: Arc<AtomicUsize>) -> Self {
        Self::with_protocol(store, config, connections, Protocol::Multilevel)
    }

    /// A new connection on `store` speaking `protocol`; otherwise as [`new`](Self::new).
    pub fn with_protocol(
        store: &Store,
        config: ServerConfig,
        connections: Arc<AtomicUsize>,
        protocol: Protocol,
    ) -> Self {
        connections.fetch_add(1, Ordering::Relaxed);
        Self {
            output_limit: config.output_high_water.max(1),
            machine: protocol.machine(config, Instant::now()),
            store: store.connection(),
            completions: Arc::default(),
            connections,
        }
    }

    /// The state machine, for what this type does not wrap.
    pub fn machine(&self) -> &dyn ServerMachine {
        &*self.machine
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

    /// Feeds bytes read from the transport and runs what they ask of the store. An error
    /// means the connection is closing; a goodbye waits in the output.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), ServerError> {
        let result = self.machine.handle_input(bytes, Instant::now());
        self.run_events();
        result
    }

    /// Takes the write outcomes that arrived; `Pending` (with `cx`'s waker registered) when
    /// there were none.
    pub fn poll_completions(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let done: Vec<Completion> = {
            let mut guard = self.completions.queue.lock().unwrap_or_else(|e| e.into_inner());
            if guard.0.is_empty() {
                guard.1 = Some(cx.waker().clone());
                return Poll::Pending;
            }
            guard.0.drain(..).collect()
        };
        for (op, result) in done {
            let _ = self.machine.handle_outcome(op, result, Instant::now());
        }
        self.run_events();
        Poll::Ready(())
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
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
        out.len() > start
    }

    /// Runs what the machine asks of the store: reads inline, writes to the writer thread.
    ///
    /// The point reads of one call share a read transaction: every request they answer was
    /// received before the call began (the machine only decodes input already fed to it), and
    /// a read waits in the machine until the writes before it are acknowledged, so each still
    /// sees every write acknowledged before it was sent.
    fn run_events(&mut self) {
        let Self { machine, store, completions, connections, .. } = self;
        let Some(first) = machine.poll_event() else { return };
        store.read_scope(|scope| {
            let mut next = Some(first);
            while let Some(event) = next {
                match event {
                    ServerEvent::Store { op, request } => {
                        let is_stats = request == StoreRequest::Stats;
                        let completions = Arc::clone(completions);
                        let done = move |result| completions.push((op, result));
                        if let Execution::Ready(mut result) = scope.execute(request, done) {
                            if let (true, Ok(Outcome::Stats(stats))) = (is_stats, &mut result) {
                                stats.push(("connections".into(), connections.load(Ordering::Relaxed) as u64));
                            }
                            let _ = machine.handle_outcome(op, result, Instant::now());
                        }
                    }
                    ServerEvent::CloseIterator { iterator } => scope.connection().close_iterator(iterator),
                }
                next = machine.poll_event();
            }
        });
    }
}

impl Drop for ServedConnection {
    fn drop(&mut self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }
}
