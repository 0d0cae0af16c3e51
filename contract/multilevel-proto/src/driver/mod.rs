//! The async clients' driver, written once: the adapters supply only I/O, timers and a way to
//! yield (a [`Runtime`]), as quinn's runtime traits do for quinn.
//!
//! A client is a [`ClientDriver`] (cloned behind an `Arc` by the adapter's `Client`) and one
//! driver task, which connects and reconnects through the user's connector with the
//! [`Reconnect`] policy, reads answers and runs the machine's timers, so request deadlines fire
//! whatever the connection is doing (connecting, backing off). The driver never waits on a
//! write, so it keeps reading however slow the server is to read (two peers blocked writing to
//! each other would deadlock). Callers write their own requests, so issuing costs no task hop;
//! output made elsewhere (credit, pongs, replays) goes out through a writer loop in the driver
//! task. Request bookkeeping is the shared [`Router`].

mod connection;
mod signal;
mod writer;

use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::change::WatchOptions;
use crate::client::{CallError, Client, ClientOptions, ConnectionState, Request, Response};
use crate::message::IterOptions;
use crate::reconnect::Reconnect;
use crate::router::{ConnectionChange, IterHandle, Router, RouterHost};
use crate::sublevel::SublevelPrefix;
use crate::watch_handle::WatchHandle;

use signal::Signal;
use writer::Writer;

/// What an async runtime gives a [`ClientDriver`]: reading, writing, timers, yielding, and
/// somewhere to report the connection state. Everything else is written once, here.
pub trait Runtime: Send + Sync + Sized + 'static {
    /// What the user's connector returns.
    type Transport: Send + 'static;
    /// A transport's reading half.
    type Reader: Send + Unpin + 'static;
    /// A transport's writing half.
    type Writer: Send + Unpin + 'static;
    /// A timer that can be moved.
    type Timer: Send + Unpin + 'static;

    /// Splits a transport into its halves.
    fn split(transport: Self::Transport) -> (Self::Reader, Self::Writer);
    /// Reads into `buf`; `Ok(0)` at the end of the stream.
    fn poll_read(reader: &mut Self::Reader, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;
    /// Writes some of `buf`.
    fn poll_write(writer: &mut Self::Writer, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;
    /// Flushes what the writer buffers.
    fn poll_flush(writer: &mut Self::Writer, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Shuts the writing half down.
    fn poll_close(writer: &mut Self::Writer, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// A timer firing at `deadline`.
    fn timer(deadline: Instant) -> Self::Timer;
    /// Moves `timer` to fire at `deadline`.
    fn reset(timer: &mut Self::Timer, deadline: Instant);
    /// `Ready` once `timer`'s deadline passed.
    fn poll_timer(timer: &mut Self::Timer, cx: &mut Context<'_>) -> Poll<()>;
    /// Lets the other tasks woken with this one run first.
    fn yield_now(&self) -> impl Future<Output = ()> + Send;
    /// Reports a new connection state (e.g. to the adapter's watchers).
    fn publish(&self, state: ConnectionState);
}

/// The user's connector, called for every connection attempt.
pub type Connector<R> =
    Box<dyn FnMut() -> Pin<Box<dyn Future<Output = io::Result<<R as Runtime>::Transport>> + Send>> + Send>;

/// The driver task of a client, for the adapter to spawn.
pub type DriverTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// What the callers and the driver task share.
struct Shared<R: Runtime> {
    router: Mutex<Router>,
    closed: AtomicBool,
    writer: Writer<R::Writer>,
    /// Tells the driver to re-arm its timer, or to notice a close.
    wake_driver: Signal,
    runtime: R,
}

impl<R: Runtime> Shared<R> {
    fn lock(&self) -> MutexGuard<'_, Router> {
        self.router.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Wakes the callers whose answers arrived; returns whether the connection was given up.
    fn dispatch(&self, router: &mut Router) -> bool {
        let mut lost = false;
        for change in router.dispatch() {
            match change {
                ConnectionChange::Connected(_) => self.runtime.publish(ConnectionState::Connected),
                ConnectionChange::Lost(err) => {
                    self.runtime.publish(ConnectionState::Disconnected(err));
                    lost = true;
                }
            }
        }
        if router.machine().wants_transmit() {
            self.writer.wake.notify();
        }
        lost
    }

    /// Writes whatever the machine has to send (or leaves it to whoever is writing).
    async fn flush(&self) {
        if !self.writer.flush::<R>(&self.router).await {
            self.wake_driver.notify(); // the driver sees the broken writer and reconnects
        }
    }

    fn close(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let mut router = self.lock();
        router.close(); // queues a goodbye; the driver flushes it and stops
        self.dispatch(&mut router);
        drop(router);
        self.wake_driver.notify();
    }
}

/// An async client's shared half: the adapter's `Client` holds it in an `Arc`, and the client
/// closes when the last one goes away.
pub struct ClientDriver<R: Runtime> {
    shared: Arc<Shared<R>>,
}

impl<R: Runtime> std::fmt::Debug for ClientDriver<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientDriver").finish_non_exhaustive()
    }
}

impl<R: Runtime> ClientDriver<R> {
    /// A client connecting with `connector`, and its driver task for the adapter to spawn.
    /// `random_session` is a random number for the session id (see [`ClientOptions::config`]).
    pub fn start(
        runtime: R,
        options: &ClientOptions,
        random_session: u64,
        connector: Connector<R>,
    ) -> (Arc<Self>, DriverTask) {
        let machine = Client::new(options.config(random_session), Instant::now());
        let shared = Arc::new(Shared {
            router: Mutex::new(Router::new(machine)),
            closed: AtomicBool::new(false),
            writer: Writer::new(),
            wake_driver: Signal::default(),
            runtime,
        });
        let task = Box::pin(Arc::clone(&shared).drive(connector, Reconnect::new(options.backoff.clone())));
        (Arc::new(Self { shared }), task)
    }

    /// The adapter's runtime, e.g. to read the connection state it keeps.
    pub fn runtime(&self) -> &R {
        &self.shared.runtime
    }

    /// Issues a request and waits for its answer, failing with
    /// [`RequestError::TimedOut`](crate::RequestError::TimedOut) after `timeout` if one is
    /// given (else the client's default).
    pub async fn request(&self, request: Request, timeout: Option<Duration>) -> Result<Response, CallError> {
        let shared = &*self.shared;
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut request = Some(request);
        let (id, others) = poll_fn(|cx| {
            let mut router = shared.lock();
            let issued = router.poll_issue_owned(&mut request, deadline, Instant::now(), cx);
            issued.map(|issued| issued.map(|id| (id, router.machine().pending() > 1)))
        })
        .await?;
        let mut pending = Pending { shared, id, done: false };
        if deadline.is_some() {
            shared.wake_driver.notify(); // re-arm the timer for the new deadline
        }
        if others {
            // Others are pipelining: let the tasks woken with this one issue theirs first, so
            // one write carries them all instead of one syscall each.
            shared.runtime.yield_now().await;
        }
        shared.flush().await;
        let result = poll_fn(|cx| shared.lock().poll_answer(id, cx)).await;
        pending.done = true;
        Ok(result?)
    }

    /// Opens an iterator in a sublevel.
    pub fn iter_in(
        self: &Arc<Self>,
        sublevel: &SublevelPrefix,
        options: IterOptions,
    ) -> Result<IterHandle<Arc<Self>>, CallError> {
        IterHandle::open_in(Arc::clone(self), sublevel, options)
    }

    /// Starts a watch in a sublevel (the root for the whole database).
    pub fn watch_in(
        self: &Arc<Self>,
        sublevel: &SublevelPrefix,
        options: WatchOptions,
    ) -> Result<WatchHandle<Arc<Self>>, CallError> {
        WatchHandle::open_in(Arc::clone(self), sublevel, options)
    }

    /// Closes the client: pending requests fail with
    /// [`RequestError::Closed`](crate::RequestError::Closed).
    pub fn close(&self) {
        self.shared.close();
    }
}

impl<R: Runtime> RouterHost for ClientDriver<R> {
    fn router(&self) -> MutexGuard<'_, Router> {
        self.shared.lock()
    }

    fn wake_writer(&self) {
        self.shared.writer.wake.notify();
    }
}

impl<R: Runtime> Drop for ClientDriver<R> {
    fn drop(&mut self) {
        self.shared.close();
    }
}

/// Forgets a request whose caller stopped waiting (e.g. a dropped future).
struct Pending<'a, R: Runtime> {
    shared: &'a Shared<R>,
    id: u64,
    done: bool,
}

impl<R: Runtime> Drop for Pending<'_, R> {
    fn drop(&mut self) {
        if !self.done {
            self.shared.lock().cancel(self.id);
        }
    }
}
