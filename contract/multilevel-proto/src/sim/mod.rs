//! A deterministic simulation for tests and fuzzing: one client, one server connection at a
//! time, and an in-memory store, joined by byte pipes that a test can cut at any byte, in
//! simulated time. The model test, the scenario tests and the fuzz targets run on it; code
//! built on this crate can use it the same way.

pub mod reference;
pub mod samples;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::{
    Client, ClientConfig, ClientEvent, Cursor, IterPoll, MemorySnapshots, MemoryStore, OpId, Outcome, Request,
    RequestError, Response, ServerConfig, ServerConnection, ServerEvent, StoreRequest,
};

/// A finished request: its result and how many writes the store had applied when it came back.
#[derive(Debug, Clone)]
pub struct Answer {
    /// What the client got.
    pub result: Result<Response, RequestError>,
    /// Writes the store had applied when the answer arrived.
    pub applied_at_answer: usize,
}

/// The simulated system. See the [module docs](self).
#[derive(Debug)]
pub struct Sim {
    /// The simulated time.
    pub now: Instant,
    /// The client under test.
    pub client: Client,
    /// The current server connection, if a transport is up.
    pub server: Option<ServerConnection>,
    /// Settings for each new server connection.
    pub server_config: ServerConfig,
    /// The store, which outlives connections.
    pub store: MemoryStore,
    snapshots: MemorySnapshots,
    /// Bytes sent by the client, not yet read by the server.
    c2s: VecDeque<u8>,
    /// Bytes sent by the server, not yet read by the client.
    s2c: VecDeque<u8>,
    /// How many bytes the server→client pipe holds before the server must wait.
    pub pipe_capacity: usize,
    /// Every finished request, by id.
    pub answers: BTreeMap<u64, Answer>,
    /// Transports brought up so far.
    pub connects: usize,
    /// `Disconnected` events the client raised.
    pub disconnect_events: usize,
    /// `QueueAvailable` events the client raised.
    pub queue_available_events: usize,
    /// Writes handed to the store but not yet applied, like a writer thread's queue:
    /// `(connection number, op, request)`. They apply in order, even after their connection
    /// was cut (their outcome then goes nowhere).
    writes: VecDeque<(usize, OpId, StoreRequest)>,
    /// Watch reads of the current connection waiting for a commit: `(watch, op, from)`.
    waiting_reads: Vec<(u64, OpId, Cursor)>,
}

impl Sim {
    /// A system with no transport up yet, starting at `now`.
    pub fn new(client_config: ClientConfig, server_config: ServerConfig, now: Instant) -> Self {
        Self {
            now,
            client: Client::new(client_config, now),
            server: None,
            server_config,
            store: MemoryStore::new(),
            snapshots: MemorySnapshots::default(),
            c2s: VecDeque::new(),
            s2c: VecDeque::new(),
            pipe_capacity: 4096,
            answers: BTreeMap::new(),
            connects: 0,
            disconnect_events: 0,
            queue_available_events: 0,
            writes: VecDeque::new(),
            waiting_reads: Vec::new(),
        }
    }

    /// Iterator snapshots the current connection holds in the store.
    pub fn snapshots(&self) -> usize {
        self.snapshots.len()
    }

    /// Whether a transport is up.
    pub fn is_up(&self) -> bool {
        self.server.is_some()
    }

    /// Brings up a new transport with a fresh server connection on the same store.
    pub fn connect(&mut self) {
        if self.server.is_some() {
            return;
        }
        self.server = Some(ServerConnection::new(self.server_config.clone(), self.now));
        self.snapshots = MemorySnapshots::default();
        self.waiting_reads.clear();
        self.c2s.clear();
        self.s2c.clear();
        self.connects += 1;
        self.client.handle_connected(self.now);
        self.collect();
    }

    /// Cuts the transport: bytes in flight are lost and the server connection is dropped.
    pub fn cut(&mut self) {
        if self.server.take().is_none() {
            return;
        }
        self.snapshots = MemorySnapshots::default();
        self.waiting_reads.clear();
        self.c2s.clear();
        self.s2c.clear();
        self.client.handle_disconnected(self.now);
        self.collect();
    }

    /// Moves simulated time on by `by` and runs both sides' timers.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.client.handle_timeout(self.now);
        if let Some(server) = &mut self.server {
            server.handle_timeout(self.now);
        }
        self.collect();
    }

    /// Moves everything each side wants to send into the pipes, runs store requests, and
    /// records client events. Closes the transport when either side gives it up.
    pub fn collect(&mut self) {
        loop {
            let mut progress = false;
            while let Some(bytes) = self.client.poll_transmit() {
                if self.server.is_some() {
                    self.c2s.extend(bytes.iter());
                }
                progress = true;
            }
            while let Some(event) = self.client.poll_event() {
                progress = true;
                match event {
                    ClientEvent::Response { id, result } => {
                        let previous =
                            self.answers.insert(id, Answer { result, applied_at_answer: self.store.applied().len() });
                        assert!(previous.is_none(), "request {id} answered twice");
                    }
                    ClientEvent::Disconnected(_) => {
                        self.disconnect_events += 1;
                        if self.server.take().is_some() {
                            self.c2s.clear();
                            self.s2c.clear();
                        }
                    }
                    ClientEvent::QueueAvailable => self.queue_available_events += 1,
                    _ => {}
                }
            }
            if let Some(server) = &mut self.server {
                while let Some(event) = server.poll_event() {
                    progress = true;
                    match event {
                        ServerEvent::Store { op, request } if request.is_write() => {
                            self.writes.push_back((self.connects, op, request));
                        }
                        ServerEvent::Store { op, request: StoreRequest::ReadChanges(read) } => {
                            // A watch read waits for a commit, as a real backend's does.
                            match self.store.read_changes(&read) {
                                Ok(None) => self.waiting_reads.push((read.watch, op, read.from)),
                                Ok(Some(outcome)) => drop(server.handle_outcome(op, Ok(outcome), self.now)),
                                Err(err) => drop(server.handle_outcome(op, Err(err), self.now)),
                            }
                        }
                        ServerEvent::Store { op, request } => {
                            // Reads run inline, as the real adapters run them.
                            let result = self.store.execute(&mut self.snapshots, request);
                            // Protocol errors show up through is_closed below.
                            let _ = server.handle_outcome(op, result, self.now);
                        }
                        ServerEvent::CloseIterator { iterator } => self.snapshots.close(iterator),
                        ServerEvent::CloseWatch { watch } => {
                            let (woken, kept) =
                                std::mem::take(&mut self.waiting_reads).into_iter().partition(|(id, ..)| *id == watch);
                            self.waiting_reads = kept;
                            wake_reads(server, woken, self.now);
                        }
                    }
                }
                while self.s2c.len() < self.pipe_capacity {
                    let Some(bytes) = server.poll_transmit() else { break };
                    self.s2c.extend(bytes.iter());
                    progress = true;
                }
                if server.is_closed() && self.s2c.is_empty() {
                    // The server hung up after its goodbye was read.
                    self.server = None;
                    self.c2s.clear();
                    self.client.handle_disconnected(self.now);
                    progress = true;
                }
            }
            if !progress {
                return;
            }
        }
    }

    /// Delivers up to `max` bytes client→server (as far as the server reads).
    pub fn deliver_c2s(&mut self, max: usize) -> usize {
        let Some(server) = &mut self.server else { return 0 };
        if !server.wants_input() {
            return 0;
        }
        let n = max.min(self.c2s.len());
        if n == 0 {
            return 0;
        }
        let chunk: Vec<u8> = self.c2s.drain(..n).collect();
        let _ = server.handle_input(&chunk, self.now);
        self.collect();
        n
    }

    /// Delivers up to `max` bytes server→client.
    pub fn deliver_s2c(&mut self, max: usize) -> usize {
        if self.server.is_none() {
            return 0;
        }
        let n = max.min(self.s2c.len());
        if n == 0 {
            return 0;
        }
        let chunk: Vec<u8> = self.s2c.drain(..n).collect();
        let _ = self.client.handle_input(&chunk, self.now);
        self.collect();
        n
    }

    /// Applies up to `max` queued writes, in order, and passes their outcomes back.
    pub fn run_writes(&mut self, max: usize) -> usize {
        let mut ran = 0;
        while ran < max {
            let Some((connection, op, request)) = self.writes.pop_front() else { break };
            let head = self.store.change_log().head();
            let result = self.store.execute(&mut MemorySnapshots::default(), request);
            let committed = self.store.change_log().head() != head;
            if let Some(server) = &mut self.server {
                if committed {
                    wake_reads(server, std::mem::take(&mut self.waiting_reads), self.now);
                }
                if connection == self.connects {
                    let _ = server.handle_outcome(op, result, self.now);
                }
            }
            ran += 1;
            self.collect();
        }
        ran
    }

    /// Moves bytes both ways and applies writes until nothing moves.
    pub fn pump(&mut self) {
        self.collect();
        loop {
            let moved = self.deliver_c2s(usize::MAX) + self.deliver_s2c(usize::MAX) + self.run_writes(usize::MAX);
            if moved == 0 {
                return;
            }
        }
    }

    /// Connects if needed and pumps until quiet.
    pub fn settle(&mut self) {
        if !self.is_up() {
            self.connect();
        }
        self.pump();
        if !self.is_up() {
            // The server may have closed; one more chance.
            self.connect();
            self.pump();
        }
    }

    /// Reads the next entry of an iterator, pumping (and reconnecting if retry is on) until
    /// it has one, its end or its error.
    pub fn iterator_next(&mut self, id: u64) -> IterPoll {
        for _ in 0..1000 {
            let poll = self.client.iterator_next(id);
            self.collect();
            if poll != IterPoll::Pending {
                return poll;
            }
            if !self.is_up() {
                self.connect();
            }
            self.pump();
        }
        panic!("iterator {id} made no progress");
    }
}

impl Sim {
    /// Reads up to `max` events of a watch, pumping (and reconnecting if retry is on) while
    /// none is buffered; stops early when nothing more arrives or the watch fails.
    pub fn watch_events(&mut self, id: u64, max: usize) -> Result<Vec<crate::ChangeEvent>, RequestError> {
        let mut events = Vec::new();
        let mut idle = 0;
        while events.len() < max && idle < 3 {
            match self.client.watch_next(id) {
                crate::WatchPoll::Event(event) => {
                    events.push(event);
                    idle = 0;
                }
                crate::WatchPoll::Error(err) => return if events.is_empty() { Err(err) } else { Ok(events) },
                crate::WatchPoll::Pending => {
                    idle += 1;
                    self.collect();
                    if !self.is_up() {
                        self.connect();
                    }
                    self.pump();
                }
            }
        }
        self.collect();
        Ok(events)
    }
}

/// Answers waiting watch reads with no events, so the server reads again.
fn wake_reads(server: &mut ServerConnection, reads: Vec<(u64, OpId, Cursor)>, now: Instant) {
    for (_, op, from) in reads {
        let _ = server.handle_outcome(op, Ok(Outcome::Changes { events: Vec::new(), next: from }), now);
    }
}

/// Issues a request and records nothing; the answer lands in `sim.answers`.
pub fn issue(sim: &mut Sim, request: Request) -> u64 {
    let id = sim.client.issue(request, sim.now).expect("queue has room in tests");
    sim.collect();
    id
}

/// Issues a request; `None` if the client refused it (queue full, too large, closed).
pub fn try_issue(sim: &mut Sim, request: Request) -> Option<u64> {
    let id = sim.client.issue(request, sim.now).ok()?;
    sim.collect();
    Some(id)
}
