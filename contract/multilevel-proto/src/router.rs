//! Routes a [`Client`]'s events to the callers waiting for them, with [`Waker`]s: the request
//! bookkeeping every adapter shares, whatever its runtime.
//!
//! An adapter keeps a `Router` behind a mutex. Callers poll it for their answer or their next
//! iterator entry; the task or thread that reads the transport feeds the machine and calls
//! [`dispatch`](Router::dispatch), which wakes exactly the callers whose answer arrived. A
//! blocking adapter uses wakers that unpark threads; an async one, its tasks' wakers.

use std::collections::VecDeque;
use std::sync::{Arc, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::change::ChangeEvent;
use crate::client::{
    CallError, Client, ClientEvent, ConnectionError, ConnectionState, IssueError, IterPoll, Request, RequestError,
    Response, WatchPoll,
};
use crate::message::{IdMap, IterOptions, ServerHello, WireEntry};
use crate::sublevel::SublevelPrefix;

/// What a caller's request slot holds.
#[derive(Debug)]
enum Slot {
    Waiting(Option<Waker>),
    Done(Result<Response, RequestError>),
}

/// A change of the connection that [`Router::dispatch`] reports to the adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionChange {
    /// A handshake completed.
    Connected(ServerHello),
    /// The connection was given up; the adapter must close the transport.
    Lost(ConnectionError),
}

/// A client state machine plus the callers waiting on it.
#[derive(Debug)]
pub struct Router {
    machine: Client,
    answers: IdMap<u64, Slot>,
    iterator_wakers: IdMap<u64, Waker>,
    queue_wakers: Vec<Waker>,
    state: ConnectionState,
}

impl Router {
    /// Routes the events of `machine`.
    pub fn new(machine: Client) -> Self {
        Self {
            machine,
            answers: IdMap::default(),
            iterator_wakers: IdMap::default(),
            queue_wakers: Vec::new(),
            state: ConnectionState::Connecting,
        }
    }

    /// Where the connection stands, as of the last [`dispatch`](Self::dispatch): with the
    /// reason the last connection, or the last attempt to make one, failed.
    pub fn state(&self) -> &ConnectionState {
        &self.state
    }

    /// The state machine, to feed it transport events and take its output. Call
    /// [`dispatch`](Self::dispatch) after feeding it.
    pub fn machine(&mut self) -> &mut Client {
        &mut self.machine
    }

    /// Issues a request, or registers `cx` to be woken when the queue has room. Copies the
    /// request; [`poll_issue_owned`](Self::poll_issue_owned) does not.
    pub fn poll_issue(
        &mut self,
        request: &Request,
        deadline: Option<Instant>,
        now: Instant,
        cx: &mut Context<'_>,
    ) -> Poll<Result<u64, IssueError>> {
        self.poll_issue_owned(&mut Some(request.clone()), deadline, now, cx)
    }

    /// Issues a request as [`poll_issue`](Self::poll_issue) does, without copying it: it is
    /// taken from `request` once issued (or refused), and left there while `Pending`.
    pub fn poll_issue_owned(
        &mut self,
        request: &mut Option<Request>,
        deadline: Option<Instant>,
        now: Instant,
        cx: &mut Context<'_>,
    ) -> Poll<Result<u64, IssueError>> {
        if self.machine.is_closed() {
            return Poll::Ready(Err(IssueError::Closed));
        }
        if self.machine.is_queue_full() {
            self.machine.note_queue_full();
            self.queue_wakers.push(cx.waker().clone());
            return Poll::Pending;
        }
        let Some(taken) = request.take() else { return Poll::Ready(Err(IssueError::Closed)) };
        let deadline = deadline.or_else(|| self.machine.config().request_timeout.map(|t| now + t));
        match self.machine.issue_with_deadline(taken, deadline) {
            Ok(id) => {
                self.answers.insert(id, Slot::Waiting(None));
                Poll::Ready(Ok(id))
            }
            Err(err) => Poll::Ready(Err(err)),
        }
    }

    /// The answer to request `id`, or `Pending` with `cx` registered.
    pub fn poll_answer(&mut self, id: u64, cx: &mut Context<'_>) -> Poll<Result<Response, RequestError>> {
        match self.answers.get_mut(&id) {
            Some(Slot::Waiting(waker)) => {
                match waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Some(Slot::Done(_)) => match self.answers.remove(&id) {
                Some(Slot::Done(result)) => Poll::Ready(result),
                _ => Poll::Ready(Err(RequestError::Closed)),
            },
            None => Poll::Ready(Err(RequestError::Closed)),
        }
    }

    /// Forgets request `id` because its caller stopped waiting; its answer is dropped.
    pub fn cancel(&mut self, id: u64) {
        self.answers.remove(&id);
    }

    /// Opens an iterator.
    pub fn open_iterator(&mut self, options: IterOptions) -> Result<u64, IssueError> {
        self.machine.open_iterator(options)
    }

    /// Opens an iterator in a sublevel (see [`Client::open_iterator_in`]).
    pub fn open_iterator_in(&mut self, sublevel: &SublevelPrefix, options: IterOptions) -> Result<u64, IssueError> {
        self.machine.open_iterator_in(sublevel, options)
    }

    /// The next entry of iterator `id`: `Ready(None)` at its end, `Pending` with `cx`
    /// registered while none has arrived.
    pub fn poll_iterator(&mut self, id: u64, cx: &mut Context<'_>) -> Poll<Option<Result<WireEntry, RequestError>>> {
        match self.machine.iterator_next(id) {
            IterPoll::Entry(entry) => Poll::Ready(Some(Ok(entry))),
            IterPoll::Pending => {
                self.iterator_wakers.insert(id, cx.waker().clone());
                Poll::Pending
            }
            IterPoll::End => Poll::Ready(None),
            IterPoll::Error(err) => Poll::Ready(Some(Err(err))),
        }
    }

    /// Up to `max` entries of iterator `id` into `out`: `Ready` once it holds at least one, or
    /// at the end (nothing added), or with the error if it failed before any entry.
    pub fn poll_iterator_batch(
        &mut self,
        id: u64,
        max: usize,
        out: &mut Vec<WireEntry>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), RequestError>> {
        let start = out.len();
        while out.len() - start < max {
            match self.poll_iterator(id, cx) {
                Poll::Ready(Some(Ok(entry))) => out.push(entry),
                Poll::Pending if out.len() == start => return Poll::Pending,
                Poll::Ready(Some(Err(err))) if out.len() == start => return Poll::Ready(Err(err)),
                // An error after some entries is reported on the next call.
                Poll::Pending | Poll::Ready(None) | Poll::Ready(Some(Err(_))) => break,
            }
        }
        self.iterator_wakers.remove(&id);
        Poll::Ready(Ok(()))
    }

    /// Closes iterator `id` and forgets its waker.
    pub fn close_iterator(&mut self, id: u64) {
        self.machine.close_iterator(id);
        self.iterator_wakers.remove(&id);
    }

    /// The next event of watch `id`: `Pending` with `cx` registered while none has arrived.
    pub fn poll_watch(&mut self, id: u64, cx: &mut Context<'_>) -> Poll<Result<ChangeEvent, RequestError>> {
        match self.machine.watch_next(id) {
            WatchPoll::Event(event) => Poll::Ready(Ok(event)),
            WatchPoll::Pending => {
                self.iterator_wakers.insert(id, cx.waker().clone());
                Poll::Pending
            }
            WatchPoll::Error(err) => Poll::Ready(Err(err)),
        }
    }

    /// Ends watch `id` and forgets its waker.
    pub fn close_watch(&mut self, id: u64) {
        self.machine.close_watch(id);
        self.iterator_wakers.remove(&id);
    }

    /// Hands the machine's events to their callers and wakes them; returns the connection
    /// changes for the adapter. Call it after every call that feeds the machine.
    pub fn dispatch(&mut self) -> Vec<ConnectionChange> {
        let mut changes = Vec::new();
        while let Some(event) = self.machine.poll_event() {
            match event {
                ClientEvent::Response { id, result } => {
                    if let Some(Slot::Waiting(waker)) = self.answers.insert(id, Slot::Done(result)) {
                        if let Some(waker) = waker {
                            waker.wake();
                        }
                    } else {
                        self.answers.remove(&id); // cancelled: nobody waits
                    }
                }
                ClientEvent::IteratorReadable { id } => {
                    if let Some(waker) = self.iterator_wakers.remove(&id) {
                        waker.wake();
                    }
                }
                ClientEvent::QueueAvailable => self.queue_wakers.drain(..).for_each(Waker::wake),
                ClientEvent::Connected(hello) => {
                    self.state = ConnectionState::Connected;
                    changes.push(ConnectionChange::Connected(hello));
                }
                ClientEvent::Disconnected(err) => {
                    self.state = ConnectionState::Disconnected(err.clone());
                    changes.push(ConnectionChange::Lost(err));
                }
            }
        }
        changes
    }

    /// Closes the client (see [`Client::close`]) and wakes every caller with its outcome.
    pub fn close(&mut self) {
        self.machine.close();
        self.state = ConnectionState::Closed;
        self.dispatch();
        self.queue_wakers.drain(..).for_each(Waker::wake);
    }
}

/// What an adapter's client shares with its iterators: the router, and a way to get output
/// written soon (iterator credit, seeks, closes are made outside any caller's write).
pub trait RouterHost {
    /// Locks the router.
    fn router(&self) -> MutexGuard<'_, Router>;
    /// Asks the adapter to write what the machine has to send.
    fn wake_writer(&self);
}

impl<T: RouterHost> RouterHost for Arc<T> {
    fn router(&self) -> MutexGuard<'_, Router> {
        (**self).router()
    }

    fn wake_writer(&self) {
        (**self).wake_writer();
    }
}

/// Most entries an [`IterHandle`] takes from the router under one lock.
const READY_MAX_ENTRIES: usize = 256;
/// Most bytes (by [`entry_cost`](crate::message::entry_cost)) an [`IterHandle`] takes from the router under one lock. They
/// count as read, so the server may send this much beyond the client's window.
const READY_MAX_BYTES: u64 = 64 << 10;

/// An open iterator of an async client, shared by the adapters' `Iter` types: reading,
/// seeking, and closing (with its snapshot released) on drop.
///
/// It takes the entries that have arrived from the router a batch at a time (at most
/// 256 entries and about 64 KiB) and hands them out one by one without
/// the router's lock.
pub struct IterHandle<H: RouterHost> {
    host: H,
    id: u64,
    /// Entries taken from the router, in order, not yet handed out.
    ready: VecDeque<WireEntry>,
}

impl<H: RouterHost> std::fmt::Debug for IterHandle<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IterHandle").field("id", &self.id).field("ready", &self.ready.len()).finish_non_exhaustive()
    }
}

impl<H: RouterHost> IterHandle<H> {
    /// Opens an iterator on `host`'s client.
    pub fn open(host: H, options: IterOptions) -> Result<Self, CallError> {
        Self::open_in(host, &SublevelPrefix::root(), options)
    }

    /// Opens an iterator in a sublevel on `host`'s client.
    pub fn open_in(host: H, sublevel: &SublevelPrefix, options: IterOptions) -> Result<Self, CallError> {
        let id = host.router().open_iterator_in(sublevel, options)?;
        host.wake_writer();
        Ok(Self { host, id, ready: VecDeque::new() })
    }

    /// Moves to the first key at or after `target` (at or before, in reverse), within the
    /// iterator's range. The limit keeps counting.
    pub fn seek(&mut self, target: impl AsRef<[u8]>) {
        self.ready.clear();
        self.host.router().machine().seek(self.id, bytes::Bytes::copy_from_slice(target.as_ref()));
        self.host.wake_writer();
    }

    /// The next entry, `Ready(None)` at the end.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<WireEntry, CallError>>> {
        if let Some(entry) = self.ready.pop_front() {
            return Poll::Ready(Some(Ok(entry)));
        }
        let mut router = self.host.router();
        router.machine.iterator_take(self.id, READY_MAX_ENTRIES, READY_MAX_BYTES, &mut self.ready);
        let poll = match self.ready.pop_front() {
            Some(entry) => Poll::Ready(Some(Ok(entry))),
            None => router.poll_iterator(self.id, cx),
        };
        self.credit(&mut router);
        poll.map(|item| item.map(|r| r.map_err(CallError::from)))
    }

    /// Up to `max` entries into `out`; see [`Router::poll_iterator_batch`].
    pub fn poll_batch(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
        out: &mut Vec<WireEntry>,
    ) -> Poll<Result<(), CallError>> {
        if !self.ready.is_empty() {
            let n = max.min(self.ready.len());
            out.extend(self.ready.drain(..n));
            return Poll::Ready(Ok(()));
        }
        let mut router = self.host.router();
        let poll = router.poll_iterator_batch(self.id, max, out, cx);
        self.credit(&mut router);
        poll.map_err(CallError::from)
    }

    /// Gets credit for what was read on its way.
    fn credit(&self, router: &mut Router) {
        if router.machine().wants_transmit() {
            self.host.wake_writer();
        }
    }
}

impl<H: RouterHost> Drop for IterHandle<H> {
    fn drop(&mut self) {
        self.host.router().close_iterator(self.id);
        self.host.wake_writer();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;
    use crate::client::ClientConfig;

    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn answers_wake_their_caller_and_cancelled_ones_are_dropped() {
        let now = Instant::now();
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&counter));
        let mut cx = Context::from_waker(&waker);
        let mut router = Router::new(Client::new(ClientConfig::new(1), now));
        let get = Request::Get { key: "k".into() };
        let Poll::Ready(Ok(kept)) = router.poll_issue(&get, None, now, &mut cx) else { panic!() };
        let Poll::Ready(Ok(dropped)) = router.poll_issue(&get, None, now, &mut cx) else { panic!() };
        assert!(router.poll_answer(kept, &mut cx).is_pending());
        router.cancel(dropped);
        router.close();
        assert_eq!(counter.0.load(Ordering::Relaxed), 1, "only the waiting caller is woken");
        assert_eq!(router.poll_answer(kept, &mut cx), Poll::Ready(Err(RequestError::Closed)));
        assert!(router.answers.is_empty(), "nothing is kept for the cancelled request");
    }
}
