//! The server: one reader thread and one completion thread per connection.
//!
//! The reader thread reads requests, runs reads inline against the store (no thread hop) and
//! writes the answers itself. Writes go to the store's writer thread; their outcomes come back
//! to the connection's completion thread, which also runs the connection's timers. Whichever
//! thread produced output writes it, in one `write` per batch of frames, holding the writer
//! lock while it takes the bytes from the state machine so frames never interleave.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
#[cfg(unix)]
use std::os::unix::net::{UnixListener, UnixStream};
#[cfg(unix)]
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Instant;

use multilevel_proto::{
    GoodbyeReason, OpId, Outcome, ServerConfig, ServerConnection, ServerEvent, StoreError, StoreRequest,
};
use multilevel_store::{ConnectionStore, Execution, Store};
use tracing::{debug, info, warn};

use crate::transport::Transport;

const READ_CHUNK: usize = 64 * 1024;

/// Serves one store to many connections.
#[derive(Clone)]
pub struct Server {
    store: Store,
    config: ServerConfig,
    shutdown: Arc<AtomicBool>,
    /// How to wake each accept loop blocked in `accept`.
    wakes: Arc<Mutex<Vec<Wake>>>,
    connections: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Server {
    /// A server for `store`, with the protocol settings the store calls for.
    pub fn new(store: Store) -> Self {
        let config = store.server_config();
        Self::with_config(store, config)
    }

    /// A server with explicit protocol settings. Keep `max_key_size` at or below what the
    /// store accepts.
    pub fn with_config(store: Store, config: ServerConfig) -> Self {
        Self {
            store,
            config,
            shutdown: Arc::new(AtomicBool::new(false)),
            wakes: Arc::default(),
            connections: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Open connections right now.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Serves connections from a TCP listener until [`ShutdownHandle::shutdown`] is called.
    pub fn serve_tcp(&self, listener: TcpListener) -> io::Result<()> {
        self.register_wake(Wake::Tcp(listener.local_addr()?));
        for stream in listener.incoming() {
            if self.shutdown.load(Ordering::SeqCst) {
                break;
            }
            match stream.and_then(Transport::tcp) {
                Ok(transport) => self.spawn_connection(transport),
                Err(err) => warn!("accept failed: {err}"),
            }
        }
        Ok(())
    }

    /// Serves connections from a Unix socket listener until [`ShutdownHandle::shutdown`].
    #[cfg(unix)]
    pub fn serve_unix(&self, listener: UnixListener) -> io::Result<()> {
        if let Some(path) = listener.local_addr()?.as_pathname() {
            self.register_wake(Wake::Unix(path.to_owned()));
        }
        for stream in listener.incoming() {
            if self.shutdown.load(Ordering::SeqCst) {
                break;
            }
            match stream.and_then(Transport::unix) {
                Ok(transport) => self.spawn_connection(transport),
                Err(err) => warn!("accept failed: {err}"),
            }
        }
        Ok(())
    }

    /// Lets a shutdown wake this accept loop. If the shutdown already happened, wakes it
    /// at once so the loop ends on its first accept.
    fn register_wake(&self, wake: Wake) {
        self.wakes.lock().unwrap_or_else(|e| e.into_inner()).push(wake);
        if self.shutdown.load(Ordering::SeqCst) {
            self.shutdown_handle().shutdown();
        }
    }

    /// A handle that stops the accept loops of this server from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle { shutdown: Arc::clone(&self.shutdown), wakes: Arc::clone(&self.wakes) }
    }

    /// Serves one connection over any transport, on two new threads; returns at once.
    pub fn spawn_connection(&self, transport: Transport) {
        let Transport { reader, writer, closer } = transport;
        let shared = Arc::new(Shared {
            connections: Arc::clone(&self.connections),
            state: Mutex::new(State {
                machine: ServerConnection::new(self.config.clone(), Instant::now()),
                store: self.store.connection(),
                completions: VecDeque::new(),
                reader_done: false,
            }),
            changed: Condvar::new(),
            writer: Mutex::new(writer),
            closer,
        });
        self.connections.fetch_add(1, Ordering::Relaxed);
        let count = Arc::clone(&self.connections);
        let reader_shared = Arc::clone(&shared);
        let spawned = thread::Builder::new().name("multilevel-conn-read".into()).spawn(move || {
            reader_shared.read_loop(reader);
        });
        if let Err(err) = spawned {
            warn!("cannot start a connection thread: {err}");
            count.fetch_sub(1, Ordering::Relaxed);
            shared.close_transport();
            return;
        }
        let spawned = thread::Builder::new().name("multilevel-conn-complete".into()).spawn(move || {
            shared.completion_loop();
            count.fetch_sub(1, Ordering::Relaxed);
        });
        if let Err(err) = spawned {
            warn!("cannot start a connection thread: {err}");
        }
    }
}

/// How to wake an accept loop blocked in `accept`: connect to it.
#[derive(Debug)]
enum Wake {
    Tcp(SocketAddr),
    #[cfg(unix)]
    Unix(PathBuf),
}

/// Stops a server's accept loops.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    shutdown: Arc<AtomicBool>,
    wakes: Arc<Mutex<Vec<Wake>>>,
}

impl ShutdownHandle {
    /// Stops accepting connections: the `serve_*` calls return. Open connections carry on
    /// until their clients leave.
    pub fn shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        for wake in self.wakes.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            match wake {
                Wake::Tcp(addr) => drop(TcpStream::connect(addr)),
                #[cfg(unix)]
                Wake::Unix(path) => drop(UnixStream::connect(path)),
            }
        }
    }
}

struct State {
    machine: ServerConnection,
    store: ConnectionStore,
    completions: VecDeque<(OpId, Result<Outcome, StoreError>)>,
    reader_done: bool,
}

struct Shared {
    /// The server's count of open connections, reported by `Stats`.
    connections: Arc<AtomicUsize>,
    state: Mutex<State>,
    /// Signalled when completions arrive, input is wanted again, or the connection ends.
    changed: Condvar,
    writer: Mutex<Box<dyn Write + Send>>,
    closer: Option<crate::transport::Closer>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn close_transport(&self) {
        if let Some(closer) = &self.closer {
            closer();
        }
    }

    /// Runs what the machine asks of the store: reads inline, writes to the writer thread.
    fn run_events(self: &Arc<Self>, state: &mut State) {
        while let Some(event) = state.machine.poll_event() {
            match event {
                ServerEvent::Store { op, request } => {
                    let is_stats = request == StoreRequest::Stats;
                    let shared = Arc::clone(self);
                    let done = move |result| {
                        shared.lock().completions.push_back((op, result));
                        shared.changed.notify_all();
                    };
                    if let Execution::Ready(mut result) = state.store.execute(request, done) {
                        if let (true, Ok(Outcome::Stats(stats))) = (is_stats, &mut result) {
                            stats.push(("connections".into(), self.connections.load(Ordering::Relaxed) as u64));
                        }
                        let _ = state.machine.handle_outcome(op, result, Instant::now());
                    }
                }
                ServerEvent::CloseIterator { iterator } => state.store.close_iterator(iterator),
            }
        }
    }

    /// Writes everything the machine has to send, one write per batch of frames.
    fn flush(self: &Arc<Self>) -> io::Result<()> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let mut out = Vec::new();
            {
                let mut state = self.lock();
                self.run_events(&mut state);
                while let Some(bytes) = state.machine.poll_transmit() {
                    out.extend_from_slice(&bytes);
                    self.run_events(&mut state);
                }
            }
            if out.is_empty() {
                writer.flush()?;
                self.changed.notify_all(); // output drained: the reader may want input again
                return Ok(());
            }
            writer.write_all(&out)?;
        }
    }

    fn read_loop(self: Arc<Self>, mut reader: Box<dyn Read + Send>) {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            {
                let mut state = self.lock();
                while !state.machine.wants_input() && !state.machine.is_closed() {
                    state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                if state.machine.is_closed() {
                    break;
                }
            }
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    debug!("connection read failed: {err}");
                    break;
                }
            };
            {
                let mut state = self.lock();
                if let Err(err) = state.machine.handle_input(&buf[..n], Instant::now()) {
                    info!("closing a connection: {err}");
                }
                self.run_events(&mut state);
            }
            if self.flush().is_err() {
                break;
            }
        }
        self.lock().reader_done = true;
        self.changed.notify_all();
    }

    fn completion_loop(self: Arc<Self>) {
        let mut state = self.lock();
        loop {
            while let Some((op, result)) = state.completions.pop_front() {
                let _ = state.machine.handle_outcome(op, result, Instant::now());
            }
            if let Some(deadline) = state.machine.poll_timeout()
                && Instant::now() >= deadline
            {
                state.machine.handle_timeout(Instant::now());
            }
            if state.reader_done && !state.machine.is_closed() {
                // The client went away: release snapshots; outcomes still pending are dropped.
                state.machine.close(GoodbyeReason::Normal, "connection ended");
            }
            drop(state);
            let flushed = self.flush();
            state = self.lock();
            if flushed.is_err() || state.machine.is_closed() {
                self.run_events(&mut state);
                break;
            }
            if !state.completions.is_empty() {
                continue;
            }
            state = match state.machine.poll_timeout() {
                Some(deadline) => {
                    let wait = deadline.saturating_duration_since(Instant::now());
                    self.changed.wait_timeout(state, wait).unwrap_or_else(|e| e.into_inner()).0
                }
                None => self.changed.wait(state).unwrap_or_else(|e| e.into_inner()),
            };
        }
        let reader_done = state.reader_done;
        drop(state);
        self.close_transport();
        if !reader_done {
            self.changed.notify_all();
        }
    }
}
