//! The connection's writer, shared by everyone with output: callers write their own requests
//! (no task hop), the driver's writer loop writes output made elsewhere (credit, pongs,
//! replays, a goodbye).
//!
//! One flusher writes at a time, and frames go out in the order the machine made them. A
//! flusher that finds the writer busy leaves at once: the holder takes the machine's output
//! until there is none, and gives the writer up under the router's lock in the same step that
//! found none, so output made before that step is its to write, and output made after it
//! finds the writer free. A flusher dropped halfway through a chunk (a cancelled caller)
//! leaves the rest for the next one, so the stream never loses half a frame.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use super::Runtime;
use super::signal::Signal;
use crate::router::Router;

/// The current transport's writing half, and who may use it.
pub(super) struct Writer<W> {
    /// Held by the flusher writing now.
    busy: AtomicBool,
    /// The last write failed; the driver gives the connection up.
    broken: AtomicBool,
    /// A cancelled flusher left part of a chunk unsent.
    has_unsent: AtomicBool,
    slot: Mutex<Slot<W>>,
    /// Tells the writer loop there is output nobody else will write.
    pub(super) wake: Signal,
}

struct Slot<W> {
    io: Option<W>,
    /// Counts transports, so a flusher notices that its chunk belonged to an older one.
    generation: u64,
    unsent: Bytes,
    /// The holder waiting on the transport, woken when the transport is replaced.
    waiting: Option<Waker>,
}

impl<W> Writer<W> {
    pub(super) fn new() -> Self {
        Self {
            busy: AtomicBool::new(false),
            broken: AtomicBool::new(false),
            has_unsent: AtomicBool::new(false),
            slot: Mutex::new(Slot { io: None, generation: 0, unsent: Bytes::new(), waiting: None }),
            wake: Signal::default(),
        }
    }

    fn slot(&self) -> MutexGuard<'_, Slot<W>> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the last write failed.
    pub(super) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::SeqCst)
    }

    /// Makes `io` (a new connection's) the writer, or (`None`) takes the current one away;
    /// returns the one it replaces.
    pub(super) fn replace(&self, io: Option<W>) -> Option<W> {
        let mut slot = self.slot();
        slot.generation += 1;
        slot.unsent = Bytes::new();
        self.has_unsent.store(false, Ordering::SeqCst);
        self.broken.store(false, Ordering::SeqCst);
        if let Some(waker) = slot.waiting.take() {
            waker.wake();
        }
        std::mem::replace(&mut slot.io, io)
    }

    /// Writes what the machine has to send, unless another flusher is at it; returns false if
    /// a write failed (the connection is then broken).
    pub(super) async fn flush<R: Runtime<Writer = W>>(&self, router: &Mutex<Router>) -> bool {
        let wants = lock(router).machine().wants_transmit() || self.has_unsent.load(Ordering::SeqCst);
        if !wants || self.busy.swap(true, Ordering::SeqCst) {
            return true;
        }
        let mut hold = Hold { writer: self, out: Bytes::new(), generation: None, dirty: false, released: false };
        std::future::poll_fn(|cx| hold.poll::<R>(router, cx)).await
    }
}

fn lock(router: &Mutex<Router>) -> MutexGuard<'_, Router> {
    router.lock().unwrap_or_else(|e| e.into_inner())
}

/// A flusher holding the writer.
struct Hold<'a, W> {
    writer: &'a Writer<W>,
    /// The chunk being written.
    out: Bytes,
    generation: Option<u64>,
    /// Written since the last flush.
    dirty: bool,
    released: bool,
}

impl<W> Hold<'_, W> {
    fn poll<R: Runtime<Writer = W>>(&mut self, router: &Mutex<Router>, cx: &mut Context<'_>) -> Poll<bool> {
        let mut slot = self.writer.slot();
        if self.generation != Some(slot.generation) {
            // First poll: finish what a cancelled flusher left. A new transport: what was
            // left for the old one is dropped (the machine replays what it must).
            self.out = if self.generation.is_none() { std::mem::take(&mut slot.unsent) } else { Bytes::new() };
            self.writer.has_unsent.store(false, Ordering::SeqCst);
            self.generation = Some(slot.generation);
            self.dirty = false;
        }
        let slot = &mut *slot;
        loop {
            let Some(io) = slot.io.as_mut() else {
                // No transport: the next one starts with a fresh handshake.
                self.release();
                return Poll::Ready(true);
            };
            if self.out.is_empty() {
                if self.dirty {
                    match R::poll_flush(io, cx) {
                        Poll::Pending => return self.wait(&mut slot.waiting, cx),
                        Poll::Ready(Err(_)) => return Poll::Ready(self.fail(slot)),
                        Poll::Ready(Ok(())) => self.dirty = false,
                    }
                }
                let mut router = lock(router);
                match router.machine().poll_transmit() {
                    Some(out) => self.out = out,
                    None => {
                        // Given up in the step that found nothing more to send.
                        self.release();
                        return Poll::Ready(true);
                    }
                }
            }
            match R::poll_write(io, cx, &self.out) {
                Poll::Pending => return self.wait(&mut slot.waiting, cx),
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(self.fail(slot)),
                Poll::Ready(Ok(n)) => {
                    let _ = self.out.split_to(n);
                    self.dirty = true;
                }
            }
        }
    }

    fn wait(&self, waiting: &mut Option<Waker>, cx: &mut Context<'_>) -> Poll<bool> {
        match waiting {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => *waiting = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// A write failed: drops the transport's writer, so the driver gives the connection up.
    fn fail(&mut self, slot: &mut Slot<W>) -> bool {
        slot.io = None;
        self.writer.broken.store(true, Ordering::SeqCst);
        self.release();
        false
    }

    fn release(&mut self) {
        self.released = true;
        self.writer.busy.store(false, Ordering::SeqCst);
    }
}

impl<W> Drop for Hold<'_, W> {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        // Cancelled while writing: leave the rest of the chunk to the writer loop.
        let mut slot = self.writer.slot();
        if Some(slot.generation) == self.generation && !self.out.is_empty() {
            slot.unsent = std::mem::take(&mut self.out);
            self.writer.has_unsent.store(true, Ordering::SeqCst);
        }
        slot.waiting = None;
        drop(slot);
        self.release();
        self.writer.wake.notify();
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::io;
    use std::pin::pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll, Waker};
    use std::time::Instant;

    use super::Writer;
    use crate::client::{Client, ClientConfig, ConnectionState};
    use crate::driver::Runtime;
    use crate::router::Router;

    /// A transport that takes `room` more bytes, then blocks.
    #[derive(Clone, Default)]
    struct Pipe {
        sent: Arc<Mutex<Vec<u8>>>,
        room: Arc<AtomicUsize>,
    }

    struct Fake;

    impl Runtime for Fake {
        type Transport = Pipe;
        type Reader = ();
        type Writer = Pipe;
        type Timer = ();

        fn split(pipe: Pipe) -> ((), Pipe) {
            ((), pipe)
        }
        fn poll_read(_: &mut (), _: &mut Context<'_>, _: &mut [u8]) -> Poll<io::Result<usize>> {
            Poll::Pending
        }
        fn poll_write(pipe: &mut Pipe, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            let n = pipe.room.load(Ordering::SeqCst).min(buf.len());
            if n == 0 {
                return Poll::Pending;
            }
            pipe.room.fetch_sub(n, Ordering::SeqCst);
            pipe.sent.lock().unwrap().extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_flush(_: &mut Pipe, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(_: &mut Pipe, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn timer(_: Instant) {}
        fn reset(_: &mut (), _: Instant) {}
        fn poll_timer(_: &mut (), _: &mut Context<'_>) -> Poll<()> {
            Poll::Pending
        }
        fn yield_now(&self) -> impl Future<Output = ()> + Send {
            std::future::ready(())
        }
        fn publish(&self, _: ConnectionState) {}
    }

    /// The client's hello, as a machine with the same config sends it.
    fn hello(now: Instant) -> Vec<u8> {
        let mut machine = Client::new(ClientConfig::new(9), now);
        machine.handle_connected(now);
        let mut out = Vec::new();
        while let Some(bytes) = machine.poll_transmit() {
            out.extend_from_slice(&bytes);
        }
        out
    }

    #[test]
    fn a_busy_writer_is_left_alone_and_a_cancelled_one_leaves_no_half_frame() {
        let now = Instant::now();
        let router = Mutex::new(Router::new(Client::new(ClientConfig::new(9), now)));
        router.lock().unwrap().machine().handle_connected(now);
        let pipe = Pipe::default();
        pipe.room.store(3, Ordering::SeqCst);
        let writer = Writer::new();
        writer.replace(Some(pipe.clone()));
        let mut cx = Context::from_waker(Waker::noop());

        let mut first = Box::pin(writer.flush::<Fake>(&router));
        assert!(first.as_mut().poll(&mut cx).is_pending(), "blocked after 3 bytes");
        let second = pin!(writer.flush::<Fake>(&router));
        assert_eq!(second.poll(&mut cx), Poll::Ready(true), "leaves the writing to the holder");
        drop(first); // cancelled halfway through the hello

        pipe.room.store(usize::MAX, Ordering::SeqCst);
        let third = pin!(writer.flush::<Fake>(&router));
        assert_eq!(third.poll(&mut cx), Poll::Ready(true));
        assert_eq!(*pipe.sent.lock().unwrap(), hello(now), "the rest of the hello went out, once");
        assert!(writer.wake.poll(&mut cx).is_ready(), "the writer loop was told to finish it");
    }
}
