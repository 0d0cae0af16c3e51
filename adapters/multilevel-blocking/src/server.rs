//! The server: one reader thread and one completion thread per connection.
//!
//! The reader thread reads requests, runs reads inline against the store (no thread hop) and
//! writes the answers itself. Writes go to the store's writer thread; their outcomes come back
//! to the connection's completion thread, which also runs the connection's timers. Whichever
//! thread produced output writes it, in one `write` per batch of frames, holding the writer
//! lock while it takes the bytes from the state machine so frames never interleave.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
#[cfg(unix)]
use std::os::unix::net::{UnixListener, UnixStream};
#[cfg(unix)]
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::task::{Context, Wake, Waker};
use std::thread;
use std::time::Instant;

use multilevel_proto::GoodbyeReason;
use multilevel_serve::{Backend, BackendConnection, Refusal, ServedConnection, Serving};
use multilevel_store::Store;
use tracing::{debug, info, warn};

use crate::transport::Transport;

const READ_CHUNK: usize = 64 * 1024;

/// Serves one backend (by default the LMDB [`Store`]) to many connections. Cheap to clone;
/// clones share the shutdown and the connection count.
///
/// What each adapter's server offers (all wrap the same [`Serving`]):
///
/// | server offers | `multilevel-tokio` | `multilevel-async-std` | `multilevel-blocking` |
/// |---|---|---|---|
/// | TCP, any stream | yes | yes | yes (any `Read`/`Write` pair) |
/// | Unix sockets | yes | yes | yes |
/// | TLS | yes (`serve_tls`) | bring your own stream | bring your own `Transport` |
/// | many-level guests (`with_protocol`) | yes | yes | yes |
/// | connection cap (`with_max_connections`, `TooManyConnections` goodbye) | yes, TLS included | yes | yes |
/// | graceful shutdown (in-flight requests finish, then goodbye) | yes | yes | no: accepting stops, connections carry on |
#[derive(Clone, Debug)]
pub struct Server<B: Backend = Store> {
    serving: Serving<B>,
    shutdown: Arc<AtomicBool>,
    /// How to wake each accept loop blocked in `accept`.
    wakes: Arc<Mutex<Vec<AcceptWake>>>,
}

impl<B: Backend> Server<B> {
    /// A server of what `serving` says (backend, settings, protocol, connection cap).
    pub fn from_serving(serving: Serving<B>) -> Self {
        Self { serving, shutdown: Arc::new(AtomicBool::new(false)), wakes: Arc::default() }
    }

    multilevel_serve::serving_methods!(constructors);

    /// Serves connections from a TCP listener until [`ShutdownHandle::shutdown`] is called.
    pub fn serve_tcp(&self, listener: TcpListener) -> io::Result<()> {
        self.register_wake(AcceptWake::Tcp(listener.local_addr()?));
        self.accept_until_shutdown(listener.incoming(), Transport::tcp);
        Ok(())
    }

    /// Serves connections from a Unix socket listener until [`ShutdownHandle::shutdown`].
    #[cfg(unix)]
    pub fn serve_unix(&self, listener: UnixListener) -> io::Result<()> {
        if let Some(path) = listener.local_addr()?.as_pathname() {
            self.register_wake(AcceptWake::Unix(path.to_owned()));
        }
        self.accept_until_shutdown(listener.incoming(), Transport::unix);
        Ok(())
    }

    /// Serves each accepted stream as a transport until the shutdown.
    fn accept_until_shutdown<S>(
        &self,
        incoming: impl Iterator<Item = io::Result<S>>,
        transport: impl Fn(S) -> io::Result<Transport>,
    ) {
        for stream in incoming {
            if self.shutdown.load(Ordering::SeqCst) {
                break;
            }
            match stream.and_then(&transport) {
                Ok(transport) => self.spawn_connection(transport),
                Err(err) => warn!("accept failed: {err}"),
            }
        }
    }

    /// Lets a shutdown wake this accept loop. If the shutdown already happened, wakes it
    /// at once so the loop ends on its first accept.
    fn register_wake(&self, wake: AcceptWake) {
        self.wakes.lock().unwrap_or_else(|e| e.into_inner()).push(wake);
        if self.shutdown.load(Ordering::SeqCst) {
            self.shutdown_handle().shutdown();
        }
    }

    /// A handle that stops the accept loops of this server from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle { shutdown: Arc::clone(&self.shutdown), wakes: Arc::clone(&self.wakes) }
    }

    /// Serves one connection over any transport, on two new threads; returns at once. Past
    /// the connection cap, writes the refusal's goodbye on this thread (a few dozen bytes, which
    /// a fresh socket takes at once) and closes the transport instead.
    pub fn spawn_connection(&self, transport: Transport) {
        let permit = match self.serving.admit() {
            Ok(permit) => permit,
            Err(refusal) => return refuse(transport, &refusal),
        };
        let Transport { reader, writer, closer } = transport;
        let shared = Arc::new(Shared {
            state: Mutex::new(State { conn: self.serving.connection(permit), reader_done: false }),
            changed: Condvar::new(),
            completed: Signal::default(),
            writer: Mutex::new(writer),
            closer,
        });
        let reader_shared = Arc::clone(&shared);
        let spawned = thread::Builder::new().name("multilevel-conn-read".into()).spawn(move || {
            reader_shared.read_loop(reader);
        });
        if let Err(err) = spawned {
            warn!("cannot start a connection thread: {err}");
            shared.close_transport();
            return;
        }
        let spawned = thread::Builder::new().name("multilevel-conn-complete".into()).spawn(move || {
            shared.completion_loop();
        });
        if let Err(err) = spawned {
            warn!("cannot start a connection thread: {err}");
        }
    }
}

/// Says a refusal to a connection past the cap and closes it.
fn refuse(mut transport: Transport, refusal: &Refusal) {
    warn!("{refusal}");
    let _ = transport.writer.write_all(refusal.goodbye()).and_then(|()| transport.writer.flush());
    transport.close();
}

/// How to wake an accept loop blocked in `accept`: connect to it.
#[derive(Debug)]
enum AcceptWake {
    Tcp(SocketAddr),
    #[cfg(unix)]
    Unix(PathBuf),
}

/// Stops a server's accept loops.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    shutdown: Arc<AtomicBool>,
    wakes: Arc<Mutex<Vec<AcceptWake>>>,
}

impl ShutdownHandle {
    /// Stops accepting connections: the `serve_*` calls return. Open connections carry on
    /// until their clients leave.
    pub fn shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        for wake in self.wakes.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            match wake {
                AcceptWake::Tcp(addr) => drop(TcpStream::connect(addr)),
                #[cfg(unix)]
                AcceptWake::Unix(path) => drop(UnixStream::connect(path)),
            }
        }
    }
}

struct State<C: BackendConnection> {
    conn: ServedConnection<C>,
    reader_done: bool,
}

/// Wakes the completion thread: a generation counter it waits to see move. Separate from the
/// state's lock, so that a backend may complete a request on a thread that holds that lock (a
/// watch read answered inside `close_watch`, or by a write run inline) without a deadlock.
#[derive(Default)]
struct Signal {
    generation: Mutex<u64>,
    moved: Condvar,
}

impl Signal {
    fn generation(&self) -> u64 {
        *self.generation.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notify(&self) {
        *self.generation.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.moved.notify_all();
    }

    /// Waits until the generation moves past `seen`, or `deadline` passes.
    fn wait_past(&self, seen: u64, deadline: Option<Instant>) {
        let mut generation = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        while *generation == seen {
            generation = match deadline {
                Some(deadline) => {
                    let wait = deadline.saturating_duration_since(Instant::now());
                    if wait.is_zero() {
                        return;
                    }
                    self.moved.wait_timeout(generation, wait).unwrap_or_else(|e| e.into_inner()).0
                }
                None => self.moved.wait(generation).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }
}

struct Shared<C: BackendConnection> {
    state: Mutex<State<C>>,
    /// Signalled when input is wanted again or the connection ends (the reader waits on it).
    changed: Condvar,
    /// Signalled when outcomes arrive or the reader ends (the completion thread waits on it).
    completed: Signal,
    writer: Mutex<Box<dyn Write + Send>>,
    closer: Option<crate::transport::Closer>,
}

/// Wakes the completion thread when a write outcome arrives. Weak: the waker stays registered
/// in the connection's completion queue, which the connection owns, so a strong reference
/// would keep the connection (and its place under the cap) alive after it ended.
struct CompletionWaker<C: BackendConnection>(Weak<Shared<C>>);

impl<C: BackendConnection> Wake for CompletionWaker<C> {
    fn wake(self: Arc<Self>) {
        if let Some(shared) = self.0.upgrade() {
            shared.completed.notify();
        }
    }
}

impl<C: BackendConnection> Shared<C> {
    fn lock(&self) -> MutexGuard<'_, State<C>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn close_transport(&self) {
        if let Some(closer) = &self.closer {
            closer();
        }
    }

    /// Writes everything the connection has to send, one write per batch of frames.
    fn flush(&self) -> io::Result<()> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        loop {
            out.clear();
            if !self.lock().conn.take_output(&mut out) {
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
                while !state.conn.wants_input() && !state.conn.is_closed() {
                    state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                if state.conn.is_closed() {
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
            if let Err(err) = self.lock().conn.handle_input(&buf[..n]) {
                info!("closing a connection: {err}");
            }
            if self.flush().is_err() {
                break;
            }
        }
        self.lock().reader_done = true;
        self.changed.notify_all();
        self.completed.notify();
    }

    fn completion_loop(self: Arc<Self>) {
        let waker = Waker::from(Arc::new(CompletionWaker(Arc::downgrade(&self))));
        let mut cx = Context::from_waker(&waker);
        // Read before each check, so an outcome that arrives after the check moves it and the
        // wait below returns at once.
        let mut seen = self.completed.generation();
        let mut state = self.lock();
        loop {
            let _ = state.conn.poll_completions(&mut cx);
            if state.conn.poll_timeout().is_some_and(|deadline| Instant::now() >= deadline) {
                state.conn.handle_timeout();
            }
            if state.reader_done && !state.conn.is_closed() {
                // The client went away: release snapshots; outcomes still pending are dropped.
                state.conn.close(GoodbyeReason::Normal, "connection ended");
            }
            drop(state);
            let flushed = self.flush();
            state = self.lock();
            if flushed.is_err() || state.conn.is_closed() {
                break;
            }
            if state.conn.poll_completions(&mut cx).is_ready() {
                continue;
            }
            let deadline = state.conn.poll_timeout();
            drop(state);
            self.completed.wait_past(seen, deadline);
            seen = self.completed.generation();
            state = self.lock();
        }
        drop(state);
        // The reader may have closed the connection (a protocol violation) and queued its
        // goodbye after this thread's last flush: send it before closing the transport.
        let _ = self.flush();
        self.close_transport();
        self.changed.notify_all();
    }
}
