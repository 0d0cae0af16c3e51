//! The driver task: connect, read and run timers until the connection ends, wait as the
//! [`Reconnect`] policy says, and again, until the client closes.

use std::future::{Future, poll_fn};
use std::hash::{BuildHasher, RandomState};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::{Connector, Runtime, Shared};
use crate::reconnect::Reconnect;
use crate::router::Router;

/// A loop's timer, armed lazily: a deadline that moves later (the idle timeout after each
/// input, a keepalive) leaves it as it is, to fire early and be re-armed then, so a busy
/// connection does not register a new timer with the runtime for every read.
struct Timer<R: Runtime> {
    timer: Option<R::Timer>,
    armed: Option<Instant>,
}

impl<R: Runtime> Timer<R> {
    fn new() -> Self {
        Self { timer: None, armed: None }
    }

    /// `Ready` once `deadline` (or an earlier one it was armed for) passed; `None` disarms it.
    fn poll(&mut self, deadline: Option<Instant>, cx: &mut Context<'_>) -> Poll<()> {
        match (deadline, self.armed) {
            (None, _) => self.armed = None,
            (Some(deadline), Some(armed)) if armed <= deadline => {}
            (Some(deadline), _) => {
                match &mut self.timer {
                    Some(timer) => R::reset(timer, deadline),
                    None => self.timer = Some(R::timer(deadline)),
                }
                self.armed = Some(deadline);
            }
        }
        let Some(timer) = self.timer.as_mut().filter(|_| self.armed.is_some()) else { return Poll::Pending };
        if R::poll_timer(timer, cx).is_pending() {
            return Poll::Pending;
        }
        self.armed = None;
        Poll::Ready(())
    }
}

/// A random number, for the backoff's jitter.
fn random() -> u64 {
    RandomState::new().hash_one(Instant::now())
}

impl<R: Runtime> Shared<R> {
    /// Runs a step of the reconnect policy, and dispatches what it made.
    fn step<T>(&self, step: impl FnOnce(&mut Router) -> T) -> T {
        let mut router = self.lock();
        let out = step(&mut router);
        self.dispatch(&mut router);
        out
    }

    /// Runs the machine's timers if due; `Ready(lost)` when one fired.
    fn poll_timers(&self, timer: &mut Timer<R>, cx: &mut Context<'_>) -> Poll<bool> {
        let deadline = self.lock().machine().poll_timeout();
        if timer.poll(deadline, cx).is_pending() {
            return Poll::Pending;
        }
        // The machine checks the time itself: a timer that fires early does nothing.
        let mut router = self.lock();
        router.machine().handle_timeout(Instant::now());
        Poll::Ready(self.dispatch(&mut router))
    }

    /// Runs `work` while keeping the machine's timers running, so deadlines fire whatever the
    /// connection is doing (connecting, backing off); `None` if the client closed first.
    async fn with_timers<T>(&self, timer: &mut Timer<R>, work: impl Future<Output = T>) -> Option<T> {
        let mut work = pin!(work);
        poll_fn(|cx| {
            loop {
                if self.is_closed() {
                    return Poll::Ready(None);
                }
                if let Poll::Ready(out) = work.as_mut().poll(cx) {
                    return Poll::Ready(Some(out));
                }
                if self.poll_timers(timer, cx).is_pending() && self.wake_driver.poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
        })
        .await
    }

    /// Waits `delay`, running the timers meanwhile.
    async fn sleep(&self, timer: &mut Timer<R>, delay: Duration) {
        let mut sleep = R::timer(Instant::now() + delay);
        self.with_timers(timer, poll_fn(|cx| R::poll_timer(&mut sleep, cx))).await;
    }

    /// Reads and runs timers until the connection is given up or the client closes.
    fn poll_read(
        &self,
        reader: &mut R::Reader,
        buf: &mut [u8],
        timer: &mut Timer<R>,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        loop {
            if self.is_closed() || self.writer.is_broken() {
                return Poll::Ready(());
            }
            if let Poll::Ready(read) = R::poll_read(reader, cx, buf) {
                match read {
                    Ok(0) | Err(_) => return Poll::Ready(()),
                    Ok(n) => {
                        let mut router = self.lock();
                        let result = router.machine().handle_input(&buf[..n], Instant::now());
                        if self.dispatch(&mut router) || result.is_err() {
                            return Poll::Ready(());
                        }
                    }
                }
                continue;
            }
            match self.poll_timers(timer, cx) {
                Poll::Ready(true) => return Poll::Ready(()),
                Poll::Ready(false) => continue,
                Poll::Pending => {}
            }
            if self.wake_driver.poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }

    /// Writes output made outside callers, whenever told to; never ends.
    async fn write_loop(&self) {
        loop {
            poll_fn(|cx| self.writer.wake.poll(cx)).await;
            self.flush().await;
        }
    }

    /// The driver task.
    pub(super) async fn drive(self: Arc<Self>, mut connector: Connector<R>, mut reconnect: Reconnect) {
        let mut buf = vec![0u8; 64 * 1024];
        let mut timer = Timer::new();
        while !self.is_closed() {
            let transport = match self.with_timers(&mut timer, connector()).await {
                None => break,
                Some(Ok(transport)) => transport,
                Some(Err(err)) => {
                    let delay = self.step(|router| reconnect.connect_failed(router, &err, Instant::now(), random()));
                    self.sleep(&mut timer, delay).await;
                    continue;
                }
            };
            let (mut reader, writer) = R::split(transport);
            self.writer.replace(Some(writer));
            self.step(|router| reconnect.connected(router, Instant::now()));
            {
                let mut writing = pin!(self.write_loop());
                poll_fn(|cx| {
                    let _ = writing.as_mut().poll(cx);
                    self.poll_read(&mut reader, &mut buf, &mut timer, cx)
                })
                .await;
            }
            // Send what is left (a goodbye on close), but never wait long for a stuck peer.
            let mut flush = pin!(self.flush());
            let mut cap = R::timer(Instant::now() + Duration::from_secs(1));
            poll_fn(|cx| match flush.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(()),
                Poll::Pending => R::poll_timer(&mut cap, cx),
            })
            .await;
            if let Some(mut writer) = self.writer.replace(None) {
                let _ = poll_fn(|cx| R::poll_close(&mut writer, cx)).await;
            }
            drop(reader);
            let delay = self.step(|router| reconnect.disconnected(router, Instant::now(), random()));
            if let Some(delay) = delay {
                self.sleep(&mut timer, delay).await;
            }
        }
        self.runtime.publish(crate::client::ConnectionState::Closed);
    }
}
