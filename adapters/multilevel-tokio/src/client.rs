//! The async client: a cloneable handle; tasks pipeline requests on one connection.
//!
//! A driver task connects (and reconnects, with backoff) through the user's connector, reads
//! answers and runs the timers; it never writes, so it keeps reading however slow the server
//! is to read (two peers blocked writing to each other would deadlock). Callers write their
//! own requests, so issuing costs no task hop; output made elsewhere (credit, pongs, replays)
//! goes out through a writer task. The writer lock keeps frames in the order the state
//! machine made them. Request bookkeeping is the shared [`Router`].

use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;
use multilevel_proto::{
    BatchOp, CallError, ClientOptions, ConnectionChange, ConnectionState, Endpoints, IterHandle, IterOptions,
    Reconnect, Request, Response, Router, RouterHost, SublevelPrefix, WireEntry,
};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};

use tokio::sync::{Notify, watch};
use tracing::debug;

use crate::sublevel::Sublevel;
use crate::timer::Timer;
use crate::transport::Transport;

/// An iterator entry: key and value, each present if the iterator's options asked for it.
pub type Entry = WireEntry;

type Connector = Box<dyn FnMut() -> Pin<Box<dyn Future<Output = io::Result<Transport>> + Send>> + Send>;

struct Inner {
    router: Mutex<Router>,
    closed: std::sync::atomic::AtomicBool,
    /// The current connection's writer. Only its holder takes bytes from the machine.
    writer: tokio::sync::Mutex<Option<Box<dyn AsyncWrite + Unpin + Send>>>,
    /// Tells the driver to re-arm its timer, or to notice a close.
    wake_driver: Notify,
    /// Tells the writer task there is output to send.
    wake_writer: Notify,
    status: watch::Sender<ConnectionState>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Router> {
        self.router.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Wakes the callers whose answers arrived; returns whether the connection was given up.
    fn dispatch(&self, router: &mut Router) -> bool {
        let mut lost = false;
        for change in router.dispatch() {
            match change {
                ConnectionChange::Connected(_) => {
                    self.status.send_replace(ConnectionState::Connected);
                }
                ConnectionChange::Lost(err) => {
                    debug!("connection lost: {err}");
                    self.status.send_replace(ConnectionState::Disconnected(err));
                    lost = true;
                }
                _ => {}
            }
        }
        if router.machine().wants_transmit() {
            self.wake_writer.notify_one();
        }
        lost
    }

    /// Writes whatever the machine has to send.
    async fn flush(&self) {
        // Nothing to send: whoever makes output next writes it (or wakes the writer task).
        if !self.lock().machine().wants_transmit() {
            return;
        }
        let mut writer = self.writer.lock().await;
        loop {
            // The machine hands out everything it has as one chunk: write it as it is.
            let Some(out) = self.lock().machine().poll_transmit() else { return };
            let Some(w) = writer.as_mut() else { return };
            if let Err(err) = w.write_all(&out).await {
                debug!("write failed: {err}");
                *writer = None; // the driver sees the connection end and reconnects
                return;
            }
        }
    }

    /// Runs `work` while keeping the machine's timers running, so deadlines fire whatever the
    /// connection is doing (connecting, backing off); `None` if the client closed first.
    async fn with_timers<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        tokio::pin!(work);
        let mut timer = Timer::new();
        loop {
            if self.is_closed() {
                return None;
            }
            timer.arm(self.lock().machine().poll_timeout());
            tokio::select! {
                out = &mut work => return Some(out),
                () = timer.fired() => {
                    let mut router = self.lock();
                    router.machine().handle_timeout(Instant::now());
                    self.dispatch(&mut router);
                }
                _ = self.wake_driver.notified() => {}
            }
        }
    }

    async fn drive(self: Arc<Self>, mut connector: Connector, mut reconnect: Reconnect) {
        let mut buf = vec![0u8; 64 * 1024];
        while !self.is_closed() {
            let transport = match self.with_timers(connector()).await {
                None => break,
                Some(Ok(transport)) => transport,
                Some(Err(err)) => {
                    let delay = {
                        let mut router = self.lock();
                        let delay = reconnect.connect_failed(&mut router, &err, Instant::now(), rand::random());
                        self.dispatch(&mut router);
                        delay
                    };
                    debug!("connect failed ({err}); retrying in {delay:?}");
                    self.with_timers(tokio::time::sleep(delay)).await;
                    continue;
                }
            };
            let Transport { mut reader, writer } = transport;
            *self.writer.lock().await = Some(writer);
            let writer_task = tokio::spawn({
                let inner = Arc::clone(&self);
                async move {
                    loop {
                        inner.wake_writer.notified().await;
                        inner.flush().await;
                    }
                }
            });
            {
                let mut router = self.lock();
                reconnect.connected(&mut router, Instant::now());
                self.dispatch(&mut router);
            }
            let mut timer = Timer::new();
            loop {
                timer.arm(self.lock().machine().poll_timeout());
                let lost = tokio::select! {
                    read = reader.read(&mut buf) => match read {
                        Ok(0) | Err(_) => true,
                        Ok(n) => {
                            let mut router = self.lock();
                            let result = router.machine().handle_input(&buf[..n], Instant::now());
                            self.dispatch(&mut router) || result.is_err()
                        }
                    },
                    () = timer.fired() => {
                        // The machine checks the time itself: a timer that fires early does nothing.
                        let mut router = self.lock();
                        router.machine().handle_timeout(Instant::now());
                        self.dispatch(&mut router)
                    }
                    _ = self.wake_driver.notified() => false,
                };
                if lost || self.is_closed() || self.writer.lock().await.is_none() {
                    break;
                }
            }
            writer_task.abort();
            // Send what is left (a goodbye on close), but never wait long for a stuck peer.
            let _ = tokio::time::timeout(Duration::from_secs(1), self.flush()).await;
            if let Some(mut w) = self.writer.lock().await.take() {
                let _ = w.shutdown().await;
            }
            let delay = {
                let mut router = self.lock();
                let delay = reconnect.disconnected(&mut router, Instant::now(), rand::random());
                self.dispatch(&mut router);
                delay
            };
            if let Some(delay) = delay {
                self.with_timers(tokio::time::sleep(delay)).await;
            }
        }
        self.status.send_replace(ConnectionState::Closed);
    }
}

/// Closes the client when the last handle goes away.
struct Handle {
    inner: Arc<Inner>,
}

impl RouterHost for Handle {
    fn router(&self) -> MutexGuard<'_, Router> {
        self.inner.lock()
    }

    fn wake_writer(&self) {
        self.inner.wake_writer.notify_one();
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        close(&self.inner);
    }
}

fn close(inner: &Inner) {
    if inner.closed.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let mut router = inner.lock();
    router.close(); // queues a goodbye; the driver flushes it and stops
    inner.dispatch(&mut router);
    drop(router);
    inner.wake_driver.notify_one();
}

/// Forgets a request whose caller stopped waiting (e.g. a dropped future).
struct Pending<'a> {
    inner: &'a Inner,
    id: u64,
    done: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.inner.lock().cancel(self.id);
        }
    }
}

/// A client of a multilevel server: `Clone + Send + Sync`; clones share one connection.
#[derive(Clone)]
pub struct Client {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("state", &*self.inner().status.borrow()).finish_non_exhaustive()
    }
}

impl Client {
    /// A client that connects with `connector`, called again for every reconnect. Must be
    /// called inside a tokio runtime; returns at once, and requests wait for the first
    /// connection.
    pub fn new<F, Fut>(mut connector: F, options: ClientOptions) -> Self
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = io::Result<Transport>> + Send + 'static,
    {
        let machine = multilevel_proto::Client::new(options.config(rand::random()), Instant::now());
        let inner = Arc::new(Inner {
            router: Mutex::new(Router::new(machine)),
            closed: std::sync::atomic::AtomicBool::new(false),
            writer: tokio::sync::Mutex::new(None),
            wake_driver: Notify::new(),
            wake_writer: Notify::new(),
            status: watch::Sender::new(ConnectionState::Connecting),
        });
        let connector: Connector = Box::new(move || Box::pin(connector()));
        tokio::spawn(Arc::clone(&inner).drive(connector, Reconnect::new(options.backoff)));
        Self { handle: Arc::new(Handle { inner }) }
    }

    /// A client of the server at a TCP address.
    pub fn tcp<A: ToSocketAddrs + Clone + Send + Sync + 'static>(addr: A, options: ClientOptions) -> Self {
        Self::tcp_any([addr], options)
    }

    /// A client of any of several servers of one database (servers in front of one
    /// replicated backend): each connection attempt tries them in turn, starting after the one
    /// that connected last (see [`Endpoints`]), so losing a server costs one reconnect. With
    /// no address, every attempt fails with `InvalidInput`.
    pub fn tcp_any<A: ToSocketAddrs + Clone + Send + Sync + 'static>(
        addrs: impl IntoIterator<Item = A>,
        options: ClientOptions,
    ) -> Self {
        let endpoints = Arc::new(Mutex::new(Endpoints::new(addrs)));
        Self::new(
            move || {
                let endpoints = Arc::clone(&endpoints);
                async move {
                    let stream = Endpoints::connect_any(&endpoints, TcpStream::connect).await?;
                    Transport::tcp(stream)
                }
            },
            options,
        )
    }

    /// A client of the server at a TCP address over TLS, verifying it as `server_name`.
    pub fn tls<A: ToSocketAddrs + Clone + Send + Sync + 'static>(
        addr: A,
        server_name: impl Into<String>,
        config: Arc<rustls::ClientConfig>,
        options: ClientOptions,
    ) -> Self {
        let server_name = server_name.into();
        Self::new(
            move || {
                let (addr, name, config) = (addr.clone(), server_name.clone(), Arc::clone(&config));
                async move { Transport::tls(TcpStream::connect(addr).await?, config, &name).await }
            },
            options,
        )
    }

    /// A client of the server at a Unix socket path.
    #[cfg(unix)]
    pub fn unix(path: impl Into<std::path::PathBuf>, options: ClientOptions) -> Self {
        let path = path.into();
        Self::new(
            move || {
                let path = path.clone();
                async move { Ok(Transport::unix(tokio::net::UnixStream::connect(path).await?)) }
            },
            options,
        )
    }

    fn inner(&self) -> &Inner {
        &self.handle.inner
    }

    /// Where the connection stands; after a failure, with its reason (e.g.
    /// [`ConnectionError::Connect`](multilevel_proto::ConnectionError::Connect) while the server
    /// cannot be reached).
    pub fn state(&self) -> ConnectionState {
        self.inner().status.borrow().clone()
    }

    /// Watches the connection state, e.g. to show it or to wait for [`ConnectionState::Connected`].
    pub fn watch_state(&self) -> watch::Receiver<ConnectionState> {
        self.inner().status.subscribe()
    }

    /// Waits until connected; returns false if the client was closed first.
    pub async fn connected(&self) -> bool {
        let mut rx = self.watch_state();
        let state = rx.wait_for(|s| matches!(s, ConnectionState::Connected | ConnectionState::Closed)).await;
        matches!(state.as_deref(), Ok(ConnectionState::Connected))
    }

    /// Issues a request and waits for its answer, failing with
    /// [`RequestError::TimedOut`](multilevel_proto::RequestError::TimedOut) after `timeout` if
    /// one is given (else the client's default).
    pub async fn request(&self, request: Request, timeout: Option<Duration>) -> Result<Response, CallError> {
        let inner = self.inner();
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut request = Some(request);
        let (id, others) = std::future::poll_fn(|cx| {
            let mut router = inner.lock();
            let issued = router.poll_issue_owned(&mut request, deadline, Instant::now(), cx);
            issued.map(|issued| issued.map(|id| (id, router.machine().pending() > 1)))
        })
        .await?;
        let mut pending = Pending { inner, id, done: false };
        if deadline.is_some() {
            inner.wake_driver.notify_one(); // re-arm the timer for the new deadline
        }
        if others {
            // Others are pipelining: let the tasks woken with this one issue theirs first, so
            // one write carries them all instead of one syscall each.
            tokio::task::yield_now().await;
        }
        inner.flush().await;
        let result = std::future::poll_fn(|cx| inner.lock().poll_answer(id, cx)).await;
        pending.done = true;
        Ok(result?)
    }

    async fn call(&self, request: Request) -> Result<Response, CallError> {
        self.request(request, None).await
    }

    multilevel_proto::client_api!(async.await);

    /// Applies puts and deletes atomically, in order.
    pub async fn batch(&self, ops: Vec<BatchOp>) -> Result<(), CallError> {
        self.call(Request::Batch { ops }).await?.into_done()
    }

    /// Iterates over a range as a [`Stream`] of entries. It reads one snapshot while the
    /// connection lives; with retry on, it resumes after a reconnect exactly where it stopped.
    pub fn iter(&self, options: IterOptions) -> Result<Iter, CallError> {
        self.iter_in(&SublevelPrefix::root(), options)
    }

    pub(crate) fn iter_in(&self, sublevel: &SublevelPrefix, options: IterOptions) -> Result<Iter, CallError> {
        IterHandle::open_in(Arc::clone(&self.handle), sublevel, options).map(Iter)
    }

    /// A view of the keys under `name`, with this client's whole API; see [`Sublevel`].
    pub fn sublevel(&self, name: impl AsRef<[u8]>) -> Sublevel {
        Sublevel::new(self.clone(), SublevelPrefix::root().sublevel(name))
    }

    /// Closes the client: pending requests fail with
    /// [`RequestError::Closed`](multilevel_proto::RequestError::Closed).
    pub fn close(&self) {
        close(self.inner());
    }
}

/// An open iterator, a [`Stream`] of entries; closed (and its server snapshot released) when
/// dropped.
#[derive(Debug)]
pub struct Iter(IterHandle<Arc<Handle>>);

impl Iter {
    /// Moves to the first key at or after `target` (at or before, for a reverse iterator),
    /// within the iterator's range. The limit keeps counting.
    pub fn seek(&mut self, target: impl AsRef<[u8]>) {
        self.0.seek(target);
    }

    /// Up to `max` entries: waits until at least one is there or the iterator ends; an empty
    /// batch means the end.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<Entry>, CallError> {
        let mut out = Vec::new();
        poll_fn(|cx| self.0.poll_batch(cx, max, &mut out)).await?;
        Ok(out)
    }
}

impl Stream for Iter {
    type Item = Result<Entry, CallError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().0.poll_next(cx)
    }
}
