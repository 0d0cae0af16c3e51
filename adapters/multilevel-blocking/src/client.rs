//! The blocking client: callers on any thread, their requests pipelined on one connection.
//!
//! A connection thread connects (and reconnects, with backoff) through the user's connector
//! and reads answers; it never writes, so it keeps reading however slow the server is. A timer
//! thread runs keepalive and deadlines and writes output the connection thread made. Callers
//! write their own requests, so issuing costs no thread hop, and wait by parking until the
//! shared [`Router`] wakes them.

use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
#[cfg(unix)]
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use bytes::Bytes;
use multilevel_proto::{
    BatchOp, CallError, ClientOptions, ConnectionChange, ConnectionState, Endpoints, IterOptions, Reconnect, Request,
    Response, Router, SublevelPrefix, WireEntry,
};
use tracing::debug;

use crate::transport::{Closer, Transport};

/// An iterator entry: key and value, each present if the iterator's options asked for it.
pub type Entry = WireEntry;

/// Why an operation failed.
pub type Error = CallError;

/// Wakes a parked thread.
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

struct Shared {
    router: Mutex<Router>,
    closed: AtomicBool,
    /// Shuts the current connection down, so the connection thread's read returns.
    closer: Mutex<Option<Closer>>,
    /// The current connection's writer; only the holder of this lock takes bytes from the
    /// machine, so frames go out in the order they were made.
    writer: Mutex<Option<Box<dyn Write + Send>>>,
    /// The timer thread, unparked when there is output for it or a new deadline.
    timer: OnceLock<Thread>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Router> {
        self.router.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake_timer(&self) {
        if let Some(timer) = self.timer.get() {
            timer.unpark();
        }
    }

    fn close_transport(&self) {
        if let Some(closer) = &*self.closer.lock().unwrap_or_else(|e| e.into_inner()) {
            closer();
        }
    }

    /// Wakes the callers whose answers arrived; closes the transport if the machine gave it up.
    fn dispatch(&self, router: &mut Router) -> bool {
        let mut lost = false;
        for change in router.dispatch() {
            if let ConnectionChange::Lost(err) = change {
                debug!("connection lost: {err}");
                lost = true;
            }
        }
        if lost {
            self.close_transport();
        }
        if router.machine().wants_transmit() {
            self.wake_timer();
        }
        lost
    }

    /// Polls `f` until it is ready, parking this thread in between.
    fn block_on<T>(&self, mut f: impl FnMut(&mut Router, &mut Context<'_>) -> Poll<T>) -> T {
        let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(value) = f(&mut self.lock(), &mut cx) {
                return value;
            }
            thread::park();
        }
    }

    /// Writes whatever the machine has to send.
    fn flush(&self) {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        {
            let mut router = self.lock();
            while let Some(bytes) = router.machine().poll_transmit() {
                out.extend_from_slice(&bytes);
            }
        }
        if out.is_empty() {
            return;
        }
        let Some(w) = writer.as_mut() else { return };
        if let Err(err) = w.write_all(&out).and_then(|()| w.flush()) {
            debug!("write failed: {err}");
            *writer = None;
            self.close_transport(); // the connection thread sees the end and reconnects
        }
    }

    fn connection_loop(
        self: Arc<Self>,
        mut connector: Box<dyn FnMut() -> io::Result<Transport> + Send>,
        mut reconnect: Reconnect,
    ) {
        let mut buf = vec![0u8; 64 * 1024];
        while !self.closed.load(Ordering::SeqCst) {
            let transport = match connector() {
                Ok(transport) => transport,
                Err(err) => {
                    let delay = {
                        let mut router = self.lock();
                        let delay = reconnect.connect_failed(&mut router, &err, Instant::now(), rand::random());
                        self.dispatch(&mut router);
                        delay
                    };
                    debug!("connect failed ({err}); retrying in {delay:?}");
                    thread::park_timeout(delay); // a close unparks this thread
                    continue;
                }
            };
            let Transport { mut reader, writer, closer } = transport;
            *self.writer.lock().unwrap_or_else(|e| e.into_inner()) = Some(writer);
            *self.closer.lock().unwrap_or_else(|e| e.into_inner()) = closer;
            if self.closed.load(Ordering::SeqCst) {
                break;
            }
            {
                let mut router = self.lock();
                reconnect.connected(&mut router, Instant::now());
                self.dispatch(&mut router);
            }
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                let mut router = self.lock();
                let result = router.machine().handle_input(&buf[..n], Instant::now());
                // Output (replays, credit, pongs) goes out through the timer thread: this
                // thread must keep reading even while the server is slow to read, or both
                // sides could block writing to each other.
                if self.dispatch(&mut router) || result.is_err() {
                    break;
                }
            }
            *self.writer.lock().unwrap_or_else(|e| e.into_inner()) = None;
            self.close_transport();
            let delay = {
                let mut router = self.lock();
                let delay = reconnect.disconnected(&mut router, Instant::now(), rand::random());
                self.dispatch(&mut router);
                delay
            };
            if let Some(delay) = delay.filter(|_| !self.closed.load(Ordering::SeqCst)) {
                thread::park_timeout(delay); // a close unparks this thread
            }
        }
    }

    /// Runs timers, and writes output made by the connection thread.
    fn timer_loop(self: Arc<Self>) {
        while !self.closed.load(Ordering::SeqCst) {
            let wait = {
                let mut router = self.lock();
                let now = Instant::now();
                if router.machine().poll_timeout().is_some_and(|t| t <= now) {
                    router.machine().handle_timeout(now);
                    self.dispatch(&mut router);
                }
                if router.machine().wants_transmit() {
                    Some(Duration::ZERO)
                } else {
                    router.machine().poll_timeout().map(|t| t.saturating_duration_since(now))
                }
            };
            match wait {
                Some(Duration::ZERO) => self.flush(),
                Some(wait) => thread::park_timeout(wait),
                None => thread::park(),
            }
        }
        self.flush(); // the goodbye
    }
}

/// Closes the client when the last handle goes away.
struct Handle {
    shared: Arc<Shared>,
    connection_thread: Thread,
}

impl Drop for Handle {
    fn drop(&mut self) {
        close(&self.shared);
        self.connection_thread.unpark();
    }
}

fn close(shared: &Shared) {
    if shared.closed.swap(true, Ordering::SeqCst) {
        return;
    }
    shared.lock().close(); // fails what is pending and queues a goodbye
    shared.flush();
    shared.close_transport();
    shared.wake_timer();
}

/// A client of a multilevel server. Cheap to clone; every clone shares one connection, and
/// requests from many threads are pipelined on it.
#[derive(Clone)]
pub struct Client {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("state", &self.state()).finish_non_exhaustive()
    }
}

impl Client {
    /// A client that connects with `connector`, which is called again for every reconnect.
    /// Returns at once; requests wait for the first connection.
    pub fn new(connector: impl FnMut() -> io::Result<Transport> + Send + 'static, options: ClientOptions) -> Self {
        let machine = multilevel_proto::Client::new(options.config(rand::random()), Instant::now());
        let shared = Arc::new(Shared {
            router: Mutex::new(Router::new(machine)),
            closed: AtomicBool::new(false),
            closer: Mutex::new(None),
            writer: Mutex::new(None),
            timer: OnceLock::new(),
        });
        let timer = Arc::clone(&shared);
        let timer = thread::Builder::new()
            .name("multilevel-client-timer".into())
            .spawn(move || timer.timer_loop())
            .expect("spawning the client timer thread");
        let _ = shared.timer.set(timer.thread().clone());
        let conn = Arc::clone(&shared);
        let backoff = options.backoff;
        let connection = thread::Builder::new()
            .name("multilevel-client".into())
            .spawn(move || conn.connection_loop(Box::new(connector), Reconnect::new(backoff)))
            .expect("spawning the client connection thread");
        let connection_thread = connection.thread().clone();
        Self { handle: Arc::new(Handle { shared, connection_thread }) }
    }

    /// A client of the server at a TCP address.
    pub fn tcp(addr: impl ToSocketAddrs + Send + 'static, options: ClientOptions) -> Self {
        Self::tcp_any([addr], options)
    }

    /// A client of any of several servers of one database (servers in front of one
    /// replicated backend): each connection attempt tries them in turn, starting after the one
    /// that connected last (see [`Endpoints`]), so losing a server costs one reconnect. With
    /// no address, every attempt fails with `InvalidInput`.
    pub fn tcp_any<A: ToSocketAddrs + Send + 'static>(
        addrs: impl IntoIterator<Item = A>,
        options: ClientOptions,
    ) -> Self {
        let mut endpoints = Endpoints::new(addrs);
        Self::new(
            move || {
                Endpoints::connect_any_blocking(&mut endpoints, |addr| TcpStream::connect(addr))
                    .and_then(Transport::tcp)
            },
            options,
        )
    }

    /// A client of the server at a Unix socket path.
    #[cfg(unix)]
    pub fn unix(path: impl Into<PathBuf>, options: ClientOptions) -> Self {
        let path = path.into();
        Self::new(move || UnixStream::connect(&path).and_then(Transport::unix), options)
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    /// Where the connection stands; after a failure, with its reason (e.g.
    /// [`ConnectionError::Connect`](multilevel_proto::ConnectionError::Connect) while the server
    /// cannot be reached).
    pub fn state(&self) -> ConnectionState {
        self.shared().lock().state().clone()
    }

    /// Whether a connection is up and its handshake done.
    pub fn is_connected(&self) -> bool {
        self.shared().lock().machine().is_connected()
    }

    /// Waits until connected, up to `timeout`; returns whether it is.
    pub fn wait_connected(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.is_connected() {
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(2));
        }
        true
    }

    /// Issues a request and waits for its answer.
    pub fn request(&self, request: Request) -> Result<Response, Error> {
        let shared = self.shared();
        let id = shared.block_on(|router, cx| router.poll_issue(&request, None, Instant::now(), cx))?;
        shared.wake_timer(); // a deadline may need arming
        shared.flush();
        Ok(shared.block_on(|router, cx| router.poll_answer(id, cx))?)
    }

    fn call(&self, request: Request) -> Result<Response, Error> {
        self.request(request)
    }

    multilevel_proto::client_api!();

    /// Starts an atomic batch; add operations and [`write`](Batch::write) it.
    pub fn batch(&self) -> Batch<'_> {
        Batch { client: self, prefix: SublevelPrefix::root(), ops: Vec::new() }
    }

    /// Iterates over a range, reading one snapshot while the connection lives; with retry on,
    /// it resumes after a reconnect exactly where it stopped.
    pub fn iter(&self, options: IterOptions) -> Result<Iter, Error> {
        self.iter_in(&SublevelPrefix::root(), options)
    }

    fn iter_in(&self, sublevel: &SublevelPrefix, options: IterOptions) -> Result<Iter, Error> {
        let id = self.shared().lock().open_iterator_in(sublevel, options)?;
        self.shared().flush();
        Ok(Iter { client: self.clone(), id })
    }

    /// A view of the keys under `name`, with this client's whole API; see [`Sublevel`].
    pub fn sublevel(&self, name: impl AsRef<[u8]>) -> Sublevel {
        Sublevel { client: self.clone(), prefix: SublevelPrefix::root().sublevel(name) }
    }

    /// Closes the client: pending requests fail with
    /// [`RequestError::Closed`](multilevel_proto::RequestError::Closed).
    pub fn close(&self) {
        close(self.shared());
        self.handle.connection_thread.unpark();
    }
}

/// A view of the database holding the keys under a name, made by [`Client::sublevel`]: every
/// read, write, clear and iterator stays inside it, and its keys never collide with a
/// sibling's, whatever their bytes. Nestable ([`sublevel`](Self::sublevel)). Keys are stored
/// as abstract-level stores a sublevel's (`!name!key`), so a Node program's
/// `db.sublevel('name')` over many-level sees the same entries; see
/// [`multilevel_proto::sublevel`] for the encoding. `stats` is the server's, not the
/// sublevel's. Cheap to clone: clones share the client's connection.
#[derive(Debug, Clone)]
pub struct Sublevel {
    client: Client,
    prefix: SublevelPrefix,
}

impl Sublevel {
    fn call(&self, request: Request) -> Result<Response, Error> {
        self.client.request(self.prefix.request(request))
    }

    multilevel_proto::client_api!();

    /// Starts an atomic batch of this sublevel's keys. For a batch that spans sublevels,
    /// build it on the parent with [`Batch::put_in`] and [`Batch::del_in`].
    pub fn batch(&self) -> Batch<'_> {
        Batch { client: &self.client, prefix: self.prefix.clone(), ops: Vec::new() }
    }

    /// Iterates over a range of this sublevel; keys come without the sublevel's prefix, and
    /// seeks stay inside it. As [`Client::iter`] otherwise.
    pub fn iter(&self, options: IterOptions) -> Result<Iter, Error> {
        self.client.iter_in(&self.prefix, options)
    }

    /// The sublevel `name` inside this one.
    pub fn sublevel(&self, name: impl AsRef<[u8]>) -> Sublevel {
        Sublevel { client: self.client.clone(), prefix: self.prefix.sublevel(name) }
    }

    /// The key the database stores for this sublevel's `key`.
    pub fn key(&self, key: impl AsRef<[u8]>) -> Bytes {
        self.prefix.key(key)
    }
}

/// An atomic batch of puts and deletes, built by [`Client::batch`] or [`Sublevel::batch`].
#[derive(Debug)]
pub struct Batch<'a> {
    client: &'a Client,
    /// Where the batch's own keys live.
    prefix: SublevelPrefix,
    ops: Vec<BatchOp>,
}

impl Batch<'_> {
    /// Adds a put.
    pub fn put(mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        self.ops.push(BatchOp::Put { key: self.prefix.key(key), value: Bytes::copy_from_slice(value.as_ref()) });
        self
    }

    /// Adds a delete.
    pub fn del(mut self, key: impl AsRef<[u8]>) -> Self {
        self.ops.push(BatchOp::Del { key: self.prefix.key(key) });
        self
    }

    /// Adds a put of `sublevel`'s `key`: one batch may span sublevels and stays atomic.
    pub fn put_in(mut self, sublevel: &Sublevel, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        self.ops.push(BatchOp::Put { key: sublevel.key(key), value: Bytes::copy_from_slice(value.as_ref()) });
        self
    }

    /// Adds a delete of `sublevel`'s `key`.
    pub fn del_in(mut self, sublevel: &Sublevel, key: impl AsRef<[u8]>) -> Self {
        self.ops.push(BatchOp::Del { key: sublevel.key(key) });
        self
    }

    /// Applies every operation atomically.
    pub fn write(self) -> Result<(), Error> {
        self.client.request(Request::Batch { ops: self.ops })?.into_done()
    }
}

/// An open iterator; closed (and its server snapshot released) when dropped.
#[derive(Debug)]
pub struct Iter {
    client: Client,
    id: u64,
}

impl Iter {
    /// Moves to the first key at or after `target` (at or before, for a reverse iterator),
    /// within the iterator's range. The limit keeps counting.
    pub fn seek(&mut self, target: impl AsRef<[u8]>) {
        self.client.shared().lock().machine().seek(self.id, Bytes::copy_from_slice(target.as_ref()));
        self.client.shared().flush();
    }

    /// Up to `max` entries: blocks until at least one is there or the iterator ends; an empty
    /// batch means the end.
    pub fn next_batch(&mut self, max: usize) -> Result<Vec<Entry>, Error> {
        let mut out = Vec::new();
        let shared = self.client.shared();
        shared.block_on(|router, cx| router.poll_iterator_batch(self.id, max, &mut out, cx))?;
        shared.flush(); // credit for what was read
        Ok(out)
    }
}

impl Iterator for Iter {
    type Item = Result<Entry, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let shared = self.client.shared();
        let item = shared.block_on(|router, cx| router.poll_iterator(self.id, cx));
        if shared.lock().machine().wants_transmit() {
            shared.flush(); // credit, when due
        }
        item.map(|r| r.map_err(Error::from))
    }
}

impl Drop for Iter {
    fn drop(&mut self) {
        self.client.shared().lock().close_iterator(self.id);
        self.client.shared().flush();
    }
}
