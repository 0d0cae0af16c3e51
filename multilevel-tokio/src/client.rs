//! The async client: a cloneable handle; tasks pipeline requests on one connection.
//!
//! A driver task connects (and reconnects, with backoff) through the user's connector, reads
//! answers and runs the timers; it never writes, so it keeps reading however slow the server
//! is to read (two peers blocked writing to each other would deadlock). Callers write their
//! own requests, so issuing costs no task hop; output made elsewhere (credit, pongs, replays)
//! goes out through a writer task. The writer lock keeps frames in the order the state
//! machine made them.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_core::Stream;
use multilevel_proto::{
    BatchOp, ClientEvent, ClientOptions, ConnectionError, IssueError, IterOptions, IterPoll, KeyRange, Request,
    RequestError, Response, WireEntry,
};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::{Notify, oneshot, watch};
use tracing::debug;

use crate::transport::Transport;

/// An iterator entry: key and value, each present if the iterator's options asked for it.
pub type Entry = WireEntry;

type Connector = Box<dyn FnMut() -> Pin<Box<dyn Future<Output = io::Result<Transport>> + Send>> + Send>;

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request could not be issued (e.g. a key over the server's limit).
    #[error(transparent)]
    Issue(#[from] IssueError),
    /// The request failed (a server error, a lost connection without retry, a timeout).
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The server answered with something that does not fit the request.
    #[error("unexpected answer from the server: {0:?}")]
    UnexpectedResponse(Response),
}

/// Where the client's connection stands, as [`Client::watch_state`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Connecting, or waiting to connect again.
    Connecting,
    /// Connected, handshake done.
    Connected,
    /// The last connection ended with this error; a new one is being made.
    Disconnected(ConnectionError),
    /// [`Client::close`] was called.
    Closed,
}

struct State {
    machine: multilevel_proto::Client,
    waiting: HashMap<u64, oneshot::Sender<Result<Response, RequestError>>>,
    iterator_wakers: HashMap<u64, Waker>,
    closed: bool,
}

struct Inner {
    state: Mutex<State>,
    /// The current connection's writer. Only its holder takes bytes from the machine.
    writer: tokio::sync::Mutex<Option<Box<dyn AsyncWrite + Unpin + Send>>>,
    /// Tells the driver to re-arm its timer, or to notice a close.
    wake_driver: Notify,
    /// Tells the writer task there is output to send.
    wake_writer: Notify,
    queue_space: Notify,
    status: watch::Sender<ConnectionState>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands the machine's events to the tasks waiting for them; returns whether the
    /// connection was given up.
    fn dispatch(&self, state: &mut State) -> bool {
        let mut lost = false;
        while let Some(event) = state.machine.poll_event() {
            match event {
                ClientEvent::Response { id, result } => {
                    if let Some(tx) = state.waiting.remove(&id) {
                        let _ = tx.send(result);
                    }
                }
                ClientEvent::IteratorReadable { id } => {
                    if let Some(waker) = state.iterator_wakers.remove(&id) {
                        waker.wake();
                    }
                }
                ClientEvent::QueueAvailable => self.queue_space.notify_waiters(),
                ClientEvent::Connected(_) => {
                    self.status.send_replace(ConnectionState::Connected);
                }
                ClientEvent::Disconnected(err) => {
                    debug!("connection lost: {err}");
                    self.status.send_replace(ConnectionState::Disconnected(err));
                    lost = true;
                }
                _ => {}
            }
        }
        lost
    }

    /// Writes whatever the machine has to send.
    async fn flush(&self) {
        let mut writer = self.writer.lock().await;
        loop {
            let mut out = Vec::new();
            {
                let mut state = self.lock();
                while let Some(bytes) = state.machine.poll_transmit() {
                    out.extend_from_slice(&bytes);
                }
            }
            if out.is_empty() {
                return;
            }
            let Some(w) = writer.as_mut() else { return };
            if let Err(err) = w.write_all(&out).await {
                debug!("write failed: {err}");
                *writer = None; // the driver sees the connection end and reconnects
                return;
            }
        }
    }

    async fn drive(self: Arc<Self>, mut connector: Connector, mut backoff: multilevel_proto::Backoff) {
        let mut buf = vec![0u8; 64 * 1024];
        while !self.lock().closed {
            let transport = match connector().await {
                Ok(transport) => transport,
                Err(err) => {
                    let delay = backoff.next_delay(rand::random());
                    debug!("connect failed ({err}); retrying in {delay:?}");
                    self.status.send_replace(ConnectionState::Connecting);
                    tokio::time::sleep(delay).await;
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
                let mut state = self.lock();
                state.machine.handle_connected(Instant::now());
                self.dispatch(&mut state);
            }
            self.wake_writer.notify_one();
            loop {
                let deadline = self.lock().machine.poll_timeout().map(tokio::time::Instant::from_std);
                let lost = tokio::select! {
                    read = reader.read(&mut buf) => match read {
                        Ok(0) | Err(_) => true,
                        Ok(n) => {
                            let mut state = self.lock();
                            let result = state.machine.handle_input(&buf[..n], Instant::now());
                            self.dispatch(&mut state) || result.is_err()
                        }
                    },
                    _ = sleep_until(deadline) => {
                        let mut state = self.lock();
                        state.machine.handle_timeout(Instant::now());
                        self.dispatch(&mut state)
                    }
                    _ = self.wake_driver.notified() => false,
                };
                if self.lock().machine.wants_transmit() {
                    self.wake_writer.notify_one();
                }
                if lost || self.lock().closed || self.writer.lock().await.is_none() {
                    break;
                }
            }
            writer_task.abort();
            // Send what is left (a goodbye on close), but never wait long for a stuck peer.
            let _ = tokio::time::timeout(Duration::from_secs(1), self.flush()).await;
            let mut writer = self.writer.lock().await;
            if let Some(mut w) = writer.take() {
                let _ = w.shutdown().await;
            }
            drop(writer);
            let handshaken = {
                let mut state = self.lock();
                state.machine.handle_disconnected(Instant::now());
                self.dispatch(&mut state);
                state.machine.server().is_some()
            };
            if handshaken {
                backoff.reset();
            } else if !self.lock().closed {
                tokio::time::sleep(backoff.next_delay(rand::random())).await;
            }
        }
        self.status.send_replace(ConnectionState::Closed);
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Closes the client when the last handle goes away.
struct Handle {
    inner: Arc<Inner>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        close(&self.inner);
    }
}

fn close(inner: &Inner) {
    let mut state = inner.lock();
    if state.closed {
        return;
    }
    state.closed = true;
    state.machine.close(); // queues a goodbye; the driver flushes it and stops
    inner.dispatch(&mut state);
    drop(state);
    inner.wake_driver.notify_one();
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
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                machine: multilevel_proto::Client::new(options.config(rand::random()), Instant::now()),
                waiting: HashMap::new(),
                iterator_wakers: HashMap::new(),
                closed: false,
            }),
            writer: tokio::sync::Mutex::new(None),
            wake_driver: Notify::new(),
            wake_writer: Notify::new(),
            queue_space: Notify::new(),
            status: watch::Sender::new(ConnectionState::Connecting),
        });
        let connector: Connector = Box::new(move || Box::pin(connector()));
        tokio::spawn(Arc::clone(&inner).drive(connector, options.backoff));
        Self { handle: Arc::new(Handle { inner }) }
    }

    /// A client of the server at a TCP address.
    pub fn tcp<A: ToSocketAddrs + Clone + Send + Sync + 'static>(addr: A, options: ClientOptions) -> Self {
        Self::new(
            move || {
                let addr = addr.clone();
                async move { Transport::tcp(TcpStream::connect(addr).await?) }
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
    /// [`RequestError::TimedOut`] after `timeout` if one is given (else the client's default).
    pub async fn request(&self, request: Request, timeout: Option<Duration>) -> Result<Response, Error> {
        let inner = self.inner();
        let answer = loop {
            let space = inner.queue_space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            {
                let mut state = inner.lock();
                let now = Instant::now();
                let issued = match timeout {
                    Some(timeout) => state.machine.issue_with_deadline(request.clone(), Some(now + timeout)),
                    None => state.machine.issue(request.clone(), now),
                };
                match issued {
                    Ok(id) => {
                        let (tx, rx) = oneshot::channel();
                        state.waiting.insert(id, tx);
                        break rx;
                    }
                    Err(IssueError::QueueFull) => {}
                    Err(err) => return Err(err.into()),
                }
            }
            space.await;
        };
        if timeout.is_some() {
            inner.wake_driver.notify_one(); // re-arm the timer for the new deadline
        }
        inner.flush().await;
        answer.await.unwrap_or(Err(RequestError::Closed)).map_err(Error::from)
    }

    /// The value of `key`, or `None` if it is absent.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, Error> {
        match self.request(Request::Get { key: Bytes::copy_from_slice(key.as_ref()) }, None).await? {
            Response::Value(value) => Ok(value),
            other => Err(Error::UnexpectedResponse(other)),
        }
    }

    /// The values of several keys, in the order asked; `None` where a key is absent.
    pub async fn get_many<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<Bytes>>, Error> {
        let keys = keys.into_iter().map(|k| Bytes::copy_from_slice(k.as_ref())).collect();
        match self.request(Request::GetMany { keys }, None).await? {
            Response::Values(values) => Ok(values),
            other => Err(Error::UnexpectedResponse(other)),
        }
    }

    async fn write(&self, request: Request) -> Result<(), Error> {
        match self.request(request, None).await? {
            Response::Done => Ok(()),
            other => Err(Error::UnexpectedResponse(other)),
        }
    }

    /// Sets `key` to `value`.
    pub async fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), Error> {
        let key = Bytes::copy_from_slice(key.as_ref());
        self.write(Request::Put { key, value: Bytes::copy_from_slice(value.as_ref()) }).await
    }

    /// Removes `key`; removing an absent key is not an error.
    pub async fn del(&self, key: impl AsRef<[u8]>) -> Result<(), Error> {
        self.write(Request::Del { key: Bytes::copy_from_slice(key.as_ref()) }).await
    }

    /// Applies puts and deletes atomically, in order.
    pub async fn batch(&self, ops: Vec<BatchOp>) -> Result<(), Error> {
        self.write(Request::Batch { ops }).await
    }

    /// The server's counters (entries, map size, open connections...), as `(name, value)`.
    pub async fn stats(&self) -> Result<Vec<(String, u64)>, Error> {
        match self.request(Request::Stats, None).await? {
            Response::Stats(stats) => Ok(stats),
            other => Err(Error::UnexpectedResponse(other)),
        }
    }

    /// Removes every key in `range`.
    pub async fn clear(&self, range: KeyRange) -> Result<(), Error> {
        self.clear_with(range, false, None).await
    }

    /// Removes at most `limit` keys of `range`, counting from the highest if `reverse`.
    pub async fn clear_with(&self, range: KeyRange, reverse: bool, limit: Option<u64>) -> Result<(), Error> {
        self.write(Request::Clear { range, reverse, limit }).await
    }

    /// Iterates over a range as a [`Stream`] of entries. It reads one snapshot while the
    /// connection lives; with retry on, it resumes after a reconnect exactly where it stopped.
    pub fn iter(&self, options: IterOptions) -> Result<Iter, Error> {
        let id = self.inner().lock().machine.open_iterator(options)?;
        self.inner().wake_writer.notify_one();
        Ok(Iter { client: self.clone(), id })
    }

    /// Closes the client: pending requests fail with [`RequestError::Closed`].
    pub fn close(&self) {
        close(self.inner());
    }
}

/// An open iterator, a [`Stream`] of entries; closed (and its server snapshot released) when
/// dropped.
#[derive(Debug)]
pub struct Iter {
    client: Client,
    id: u64,
}

impl Iter {
    /// Moves to the first key at or after `target` (at or before, for a reverse iterator),
    /// within the iterator's range. The limit keeps counting.
    pub fn seek(&mut self, target: impl AsRef<[u8]>) {
        self.client.inner().lock().machine.seek(self.id, Bytes::copy_from_slice(target.as_ref()));
        self.client.inner().wake_writer.notify_one();
    }

    /// Up to `max` entries: waits until at least one is there or the iterator ends; an empty
    /// batch means the end.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<Entry>, Error> {
        let mut out = Vec::new();
        std::future::poll_fn(|cx| self.poll_batch(cx, max, &mut out)).await?;
        Ok(out)
    }

    fn poll_batch(&mut self, cx: &mut Context<'_>, max: usize, out: &mut Vec<Entry>) -> Poll<Result<(), Error>> {
        let inner = self.client.inner();
        let mut state = inner.lock();
        let result = loop {
            if out.len() >= max {
                break Poll::Ready(Ok(()));
            }
            match state.machine.iterator_next(self.id) {
                IterPoll::Entry(entry) => out.push(entry),
                IterPoll::Pending if out.is_empty() => {
                    state.iterator_wakers.insert(self.id, cx.waker().clone());
                    break Poll::Pending;
                }
                IterPoll::Pending | IterPoll::End => break Poll::Ready(Ok(())),
                IterPoll::Error(err) if out.is_empty() => break Poll::Ready(Err(err.into())),
                IterPoll::Error(_) => break Poll::Ready(Ok(())), // reported on the next call
            }
        };
        if state.machine.wants_transmit() {
            inner.wake_writer.notify_one(); // credit for what was read
        }
        result
    }
}

impl Stream for Iter {
    type Item = Result<Entry, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let inner = self.client.inner();
        let mut state = inner.lock();
        let poll = match state.machine.iterator_next(self.id) {
            IterPoll::Entry(entry) => Poll::Ready(Some(Ok(entry))),
            IterPoll::Pending => {
                state.iterator_wakers.insert(self.id, cx.waker().clone());
                Poll::Pending
            }
            IterPoll::End => Poll::Ready(None),
            IterPoll::Error(err) => Poll::Ready(Some(Err(err.into()))),
        };
        if state.machine.wants_transmit() {
            inner.wake_writer.notify_one(); // credit for what was read
        }
        poll
    }
}

impl Drop for Iter {
    fn drop(&mut self) {
        let inner = self.client.inner();
        let mut state = inner.lock();
        state.machine.close_iterator(self.id);
        state.iterator_wakers.remove(&self.id);
        drop(state);
        inner.wake_writer.notify_one();
    }
}
