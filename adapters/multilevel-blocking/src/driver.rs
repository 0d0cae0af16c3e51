//! The blocking client's two threads. A connection thread connects (and reconnects, with
//! backoff) through the user's connector and reads answers; it never writes, so it keeps
//! reading however slow the server is. A timer thread runs keepalive and deadlines and writes
//! output the connection thread made. Callers write their own requests, so issuing costs no
//! thread hop, and wait by parking until the shared [`Router`] wakes them.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use multilevel_proto::{ClientOptions, ConnectionChange, Reconnect, Router};
use tracing::debug;

use crate::transport::{Closer, Transport};

/// What a client calls for each connection attempt.
pub(crate) type Connector = Box<dyn FnMut() -> io::Result<Transport> + Send>;

/// Wakes a parked thread.
pub(crate) struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

pub(crate) struct Shared {
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
    pub(crate) fn lock(&self) -> MutexGuard<'_, Router> {
        self.router.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn wake_timer(&self) {
        if let Some(timer) = self.timer.get() {
            timer.unpark();
        }
    }

    pub(crate) fn close_transport(&self) {
        if let Some(closer) = &*self.closer.lock().unwrap_or_else(|e| e.into_inner()) {
            closer();
        }
    }

    /// Wakes the callers whose answers arrived; closes the transport if the machine gave it up.
    pub(crate) fn dispatch(&self, router: &mut Router) -> bool {
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
    pub(crate) fn block_on<T>(&self, mut f: impl FnMut(&mut Router, &mut Context<'_>) -> Poll<T>) -> T {
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
    pub(crate) fn flush(&self) {
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

    pub(crate) fn connection_loop(self: Arc<Self>, mut connector: Connector, mut reconnect: Reconnect) {
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
    pub(crate) fn timer_loop(self: Arc<Self>) {
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
pub(crate) struct Handle {
    pub(crate) shared: Arc<Shared>,
    pub(crate) connection_thread: Thread,
}

impl Handle {
    /// Starts the connection and timer threads of a new client.
    pub(crate) fn start(connector: Connector, options: ClientOptions) -> Self {
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
            .spawn(move || conn.connection_loop(connector, Reconnect::new(backoff)))
            .expect("spawning the client connection thread");
        let connection_thread = connection.thread().clone();
        Handle { shared, connection_thread }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        close(&self.shared);
        self.connection_thread.unpark();
    }
}

pub(crate) fn close(shared: &Shared) {
    if shared.closed.swap(true, Ordering::SeqCst) {
        return;
    }
    shared.lock().close(); // fails what is pending and queues a goodbye
    shared.flush();
    shared.close_transport();
    shared.wake_timer();
}
