//! The async client: a cloneable handle; tasks pipeline requests on one connection.
//!
//! One driver task per client (started on the caller's spawner) connects and reconnects with
//! backoff, reads answers and runs the timers; within it, a writer future sends output made
//! outside callers (credit, pongs, replays) so reading never waits on writing. Callers write
//! their own requests. Request bookkeeping is the shared [`Router`].

use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_io::Timer;
use async_lock::Mutex as AsyncMutex;
use futures_core::Stream;
use futures_io::AsyncWrite;
use futures_lite::{AsyncWriteExt, FutureExt};
use multilevel_proto::{
    BatchOp, CallError, ClientOptions, ConnectionChange, ConnectionState, Endpoints, IterHandle, IterOptions,
    Reconnect, Request, Response, Router, RouterHost, SublevelPrefix, WireEntry,
};
use tracing::debug;

use crate::spawn::{Signal, Spawn};
use crate::sublevel::Sublevel;
use crate::transport::Transport;

/// An iterator entry: key and value, each present if the iterator's options asked for it.
pub type Entry = WireEntry;

type Connector = Box<dyn FnMut() -> Pin<Box<dyn Future<Output = io::Result<Transport>> + Send>> + Send>;

struct Inner {
    router: Mutex<Router>,
    state: Mutex<ConnectionState>,
    closed: AtomicBool,
    writer: AsyncMutex<Option<Box<dyn AsyncWrite + Unpin + Send>>>,
    /// Pulsed when output waits for the writer future.
    wake_writer: Signal,
    /// Pulsed to re-arm the timer or notice a close.
    wake_driver: Signal,
    /// Pulsed when the connection state changes.
    state_changed: Signal,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Router> {
        self.router.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_state(&self, state: ConnectionState) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
        self.state_changed.pulse();
    }

    /// Wakes the callers whose answers arrived; returns whether the connection was given up.
    fn dispatch(&self, router: &mut Router) -> bool {
        let mut lost = false;
        for change in router.dispatch() {
            match change {
                ConnectionChange::Connected(_) => self.set_state(ConnectionState::Connected),
                ConnectionChange::Lost(err) => {
                    debug!("connection lost: {err}");
                    self.set_state(ConnectionState::Disconnected(err));
                    lost = true;
                }
                _ => {}
            }
        }
        if router.machine().wants_transmit() {
            self.wake_writer.pulse();
        }
        lost
    }

    /// Writes whatever the machine has to send.
    async fn flush(&self) {
        let mut writer = self.writer.lock().await;
        loop {
            let mut out = Vec::new();
            {
                let mut router = self.lock();
                while let Some(bytes) = router.machine().poll_transmit() {
                    out.extend_from_slice(&bytes);
                }
            }
            let Some(w) = writer.as_mut() else { return };
            let written = if out.is_empty() { w.flush().await } else { w.write_all(&out).await };
            if let Err(err) = written {
                debug!("write failed: {err}");
                *writer = None; // the driver sees the connection end and reconnects
                return;
            }
            if out.is_empty() {
                return;
            }
        }
    }

    /// Sends output made outside callers, until the connection ends.
    async fn write_loop(&self) {
        loop {
            let listener = self.wake_writer.listen();
            if self.lock().machine().wants_transmit() {
                self.flush().await;
                continue;
            }
            listener.await;
        }
    }

    /// Reads and runs timers until the connection is given up.
    async fn read_loop(&self, reader: &mut (dyn futures_io::AsyncRead + Unpin + Send)) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut wake = self.wake_driver.listen();
            if self.closed.load(Ordering::SeqCst) {
                return;
            }
            let mut timer = self.lock().machine().poll_timeout().map(Timer::at);
            let lost = poll_fn(|cx| {
                if let Poll::Ready(read) = Pin::new(&mut *reader).poll_read(cx, &mut buf) {
                    return Poll::Ready(match read {
                        Ok(0) | Err(_) => true,
                        Ok(n) => {
                            let mut router = self.lock();
                            let result = router.machine().handle_input(&buf[..n], Instant::now());
                            self.dispatch(&mut router) || result.is_err()
                        }
                    });
                }
                if let Some(timer) = &mut timer
                    && Pin::new(timer).poll(cx).is_ready()
                {
                    let mut router = self.lock();
                    router.machine().handle_timeout(Instant::now());
                    return Poll::Ready(self.dispatch(&mut router));
                }
                if Pin::new(&mut wake).poll(cx).is_ready() {
                    return Poll::Ready(false);
                }
                Poll::Pending
            })
            .await;
            if lost {
                return;
            }
        }
    }

    /// Runs `work` while keeping the machine's timers running, so deadlines fire whatever the
    /// connection is doing (connecting, backing off); `None` if the client closed first.
    async fn with_timers<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        let mut work = std::pin::pin!(work);
        loop {
            let mut wake = self.wake_driver.listen();
            if self.closed.load(Ordering::SeqCst) {
                return None;
            }
            let mut timer = self.lock().machine().poll_timeout().map(Timer::at);
            let done = poll_fn(|cx| {
                if let Poll::Ready(out) = work.as_mut().poll(cx) {
                    return Poll::Ready(Some(out));
                }
                if let Some(timer) = &mut timer
                    && Pin::new(timer).poll(cx).is_ready()
                {
                    let mut router = self.lock();
                    router.machine().handle_timeout(Instant::now());
                    self.dispatch(&mut router);
                    return Poll::Ready(None);
                }
                if Pin::new(&mut wake).poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                Poll::Pending
            })
            .await;
            if done.is_some() {
                return done;
            }
        }
    }

    async fn drive(self: Arc<Self>, mut connector: Connector, mut reconnect: Reconnect) {
        while !self.closed.load(Ordering::SeqCst) {
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
                    self.with_timers(Timer::after(delay)).await;
                    continue;
                }
            };
            let Transport { mut reader, writer } = transport;
            *self.writer.lock().await = Some(writer);
            {
                let mut router = self.lock();
                reconnect.connected(&mut router, Instant::now());
                self.dispatch(&mut router);
            }
            self.read_loop(&mut *reader)
                .or(async {
                    self.write_loop().await;
                })
                .await;
            // Send what is left (a goodbye on close), but never wait long for a stuck peer.
            let _ = self
                .flush()
                .or(async {
                    Timer::after(Duration::from_secs(1)).await;
                })
                .await;
            if let Some(mut w) = self.writer.lock().await.take() {
                let _ = w.close().await;
            }
            let delay = {
                let mut router = self.lock();
                let delay = reconnect.disconnected(&mut router, Instant::now(), rand::random());
                self.dispatch(&mut router);
                delay
            };
            if let Some(delay) = delay {
                self.with_timers(Timer::after(delay)).await;
            }
        }
        self.set_state(ConnectionState::Closed);
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
        self.inner.wake_writer.pulse();
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        close(&self.inner);
    }
}

fn close(inner: &Inner) {
    if inner.closed.swap(true, Ordering::SeqCst) {
        return;
    }
    let mut router = inner.lock();
    router.close(); // queues a goodbye; the driver flushes it and stops
    inner.dispatch(&mut router);
    drop(router);
    inner.wake_driver.pulse();
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
        f.debug_struct("Client").field("state", &self.state()).finish_non_exhaustive()
    }
}

impl Client {
    /// A client that connects with `connector`, called again for every reconnect; its driver
    /// task runs on `spawner`. Returns at once; requests wait for the first connection.
    pub fn new<F, Fut>(mut connector: F, options: ClientOptions, spawner: impl Spawn) -> Self
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = io::Result<Transport>> + Send + 'static,
    {
        let machine = multilevel_proto::Client::new(options.config(rand::random()), Instant::now());
        let inner = Arc::new(Inner {
            router: Mutex::new(Router::new(machine)),
            state: Mutex::new(ConnectionState::Connecting),
            closed: AtomicBool::new(false),
            writer: AsyncMutex::new(None),
            wake_writer: Signal::default(),
            wake_driver: Signal::default(),
            state_changed: Signal::default(),
        });
        let connector: Connector = Box::new(move || Box::pin(connector()));
        spawner.spawn(Box::pin(Arc::clone(&inner).drive(connector, Reconnect::new(options.backoff))));
        Self { handle: Arc::new(Handle { inner }) }
    }

    /// A client of the server at a TCP address.
    pub fn tcp(addr: std::net::SocketAddr, options: ClientOptions, spawner: impl Spawn) -> Self {
        Self::tcp_any([addr], options, spawner)
    }

    /// A client of any of several servers of one database (servers in front of one
    /// replicated backend): each connection attempt tries them in turn, starting after the one
    /// that connected last (see [`Endpoints`]), so losing a server costs one reconnect. With
    /// no address, every attempt fails with `InvalidInput`.
    pub fn tcp_any(
        addrs: impl IntoIterator<Item = std::net::SocketAddr>,
        options: ClientOptions,
        spawner: impl Spawn,
    ) -> Self {
        let endpoints = Arc::new(Mutex::new(Endpoints::new(addrs)));
        Self::new(
            move || {
                let endpoints = Arc::clone(&endpoints);
                async move {
                    let stream = Endpoints::connect_any(&endpoints, async_net::TcpStream::connect).await?;
                    Transport::tcp(stream)
                }
            },
            options,
            spawner,
        )
    }

    /// A client of the server at a Unix socket path.
    #[cfg(unix)]
    pub fn unix(path: impl Into<std::path::PathBuf>, options: ClientOptions, spawner: impl Spawn) -> Self {
        let path = path.into();
        Self::new(
            move || {
                let path = path.clone();
                async move { Ok(Transport::unix(async_net::unix::UnixStream::connect(path).await?)) }
            },
            options,
            spawner,
        )
    }

    fn inner(&self) -> &Inner {
        &self.handle.inner
    }

    /// Where the connection stands now.
    pub fn state(&self) -> ConnectionState {
        self.inner().state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until the connection state changes, then returns the new state.
    pub async fn state_changed(&self) -> ConnectionState {
        self.inner().state_changed.listen().await;
        self.state()
    }

    /// Waits until connected; returns false if the client was closed first.
    pub async fn connected(&self) -> bool {
        loop {
            let listener = self.inner().state_changed.listen();
            match self.state() {
                ConnectionState::Connected => return true,
                ConnectionState::Closed => return false,
                _ => listener.await,
            }
        }
    }

    /// Issues a request and waits for its answer, failing with
    /// [`RequestError::TimedOut`](multilevel_proto::RequestError::TimedOut) after `timeout` if
    /// one is given (else the client's default).
    pub async fn request(&self, request: Request, timeout: Option<Duration>) -> Result<Response, CallError> {
        let inner = self.inner();
        let deadline = timeout.map(|t| Instant::now() + t);
        let id = poll_fn(|cx| inner.lock().poll_issue(&request, deadline, Instant::now(), cx)).await?;
        let mut pending = Pending { inner, id, done: false };
        if deadline.is_some() {
            inner.wake_driver.pulse(); // re-arm the timer for the new deadline
        }
        if inner.lock().machine().pending() > 1 {
            // Others are pipelining: let the tasks woken with this one issue theirs first, so
            // one write carries them all instead of one syscall each.
            futures_lite::future::yield_now().await;
        }
        inner.flush().await;
        let result = poll_fn(|cx| inner.lock().poll_answer(id, cx)).await;
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
