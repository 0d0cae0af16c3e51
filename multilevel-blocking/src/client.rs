//! The blocking client: callers on any thread, their requests pipelined on one connection.
//!
//! A connection thread connects (and reconnects, with backoff) through the user's connector
//! and reads answers; it never writes, so it keeps reading however slow the server is. A timer
//! thread runs keepalive and deadlines and writes output the connection thread made. Callers
//! write their own requests, so issuing costs no thread hop.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
#[cfg(unix)]
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use multilevel_proto::{
    Backoff, BatchOp, ClientEvent, ClientOptions, IssueError, IterOptions, IterPoll, KeyRange, Request, RequestError,
    Response, WireEntry,
};
use tracing::debug;

use crate::transport::{Closer, Transport};

/// An iterator entry: key and value, each present if the iterator's options asked for it.
pub type Entry = WireEntry;

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

struct State {
    machine: multilevel_proto::Client,
    answers: HashMap<u64, Result<Response, RequestError>>,
    closer: Option<Closer>,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    /// The current connection's writer; only the holder of this lock takes bytes from the
    /// machine, so frames go out in the order they were made.
    writer: Mutex<Option<Box<dyn Write + Send>>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed.wait(guard).unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the machine's events into the answer table and wakes waiters.
    fn take_events(&self, state: &mut State) {
        while let Some(event) = state.machine.poll_event() {
            match event {
                ClientEvent::Response { id, result } => {
                    state.answers.insert(id, result);
                }
                ClientEvent::Disconnected(err) => {
                    debug!("connection lost: {err}");
                    if let Some(closer) = &state.closer {
                        closer();
                    }
                }
                _ => {}
            }
        }
        self.changed.notify_all();
    }

    /// Writes whatever the machine has to send.
    fn flush(&self) {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
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
        if let Err(err) = w.write_all(&out).and_then(|()| w.flush()) {
            debug!("write failed: {err}");
            *writer = None;
            if let Some(closer) = &self.lock().closer {
                closer(); // the connection thread sees the end and reconnects
            }
        }
    }

    fn connection_loop(
        self: Arc<Self>,
        mut connector: Box<dyn FnMut() -> io::Result<Transport> + Send>,
        mut backoff: Backoff,
    ) {
        let mut buf = vec![0u8; 64 * 1024];
        while !self.lock().closed {
            let transport = match connector() {
                Ok(transport) => transport,
                Err(err) => {
                    let delay = backoff.next_delay(rand::random());
                    debug!("connect failed ({err}); retrying in {delay:?}");
                    let state = self.lock();
                    let _ = self.changed.wait_timeout(state, delay);
                    continue;
                }
            };
            backoff.reset();
            let Transport { mut reader, writer, closer } = transport;
            *self.writer.lock().unwrap_or_else(|e| e.into_inner()) = Some(writer);
            {
                let mut state = self.lock();
                if state.closed {
                    break;
                }
                state.closer = closer;
                state.machine.handle_connected(Instant::now());
                self.take_events(&mut state);
            }
            self.flush();
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                let mut state = self.lock();
                let result = state.machine.handle_input(&buf[..n], Instant::now());
                // take_events wakes the timer thread, which writes any output (replays,
                // credit, pongs): this thread must keep reading even while the server is slow
                // to read, or both sides could block writing to each other.
                self.take_events(&mut state);
                drop(state);
                if result.is_err() {
                    break;
                }
            }
            *self.writer.lock().unwrap_or_else(|e| e.into_inner()) = None;
            let mut state = self.lock();
            if let Some(closer) = state.closer.take() {
                closer();
            }
            state.machine.handle_disconnected(Instant::now());
            self.take_events(&mut state);
            if state.machine.server().is_none() && !state.closed {
                // Never completed a handshake: do not hammer the server.
                drop(state);
                thread::sleep(backoff.next_delay(rand::random()));
            }
        }
    }

    /// Runs timers, and writes output made by the connection thread.
    fn timer_loop(self: Arc<Self>) {
        let mut state = self.lock();
        while !state.closed {
            if state.machine.wants_transmit() {
                drop(state);
                self.flush();
                state = self.lock();
                continue;
            }
            let now = Instant::now();
            if state.machine.poll_timeout().is_some_and(|t| t <= now) {
                state.machine.handle_timeout(now);
                self.take_events(&mut state);
                drop(state);
                self.flush();
                state = self.lock();
                continue;
            }
            state = match state.machine.poll_timeout() {
                Some(deadline) => {
                    let wait = deadline.saturating_duration_since(now);
                    self.changed.wait_timeout(state, wait).unwrap_or_else(|e| e.into_inner()).0
                }
                None => self.wait(state),
            };
        }
    }
}

/// Closes the client when the last handle goes away.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        close(&self.shared);
    }
}

fn close(shared: &Shared) {
    {
        let mut state = shared.lock();
        if state.closed {
            return;
        }
        state.closed = true;
        state.machine.close();
        shared.take_events(&mut state);
    }
    shared.flush();
    if let Some(closer) = shared.lock().closer.take() {
        closer();
    }
    shared.changed.notify_all();
}

/// A client of a multilevel server. Cheap to clone; every clone shares one connection, and
/// requests from many threads are pipelined on it.
#[derive(Clone)]
pub struct Client {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("connected", &self.is_connected()).finish_non_exhaustive()
    }
}

impl Client {
    /// A client that connects with `connector`, which is called again for every reconnect.
    /// Returns at once; requests wait for the first connection.
    pub fn new(connector: impl FnMut() -> io::Result<Transport> + Send + 'static, options: ClientOptions) -> Self {
        let config = options.config(rand::random());
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                machine: multilevel_proto::Client::new(config, Instant::now()),
                answers: HashMap::new(),
                closer: None,
                closed: false,
            }),
            changed: Condvar::new(),
            writer: Mutex::new(None),
        });
        let conn = Arc::clone(&shared);
        let backoff = options.backoff;
        thread::Builder::new()
            .name("multilevel-client".into())
            .spawn(move || conn.connection_loop(Box::new(connector), backoff))
            .expect("spawning the client connection thread");
        let timer = Arc::clone(&shared);
        thread::Builder::new()
            .name("multilevel-client-timer".into())
            .spawn(move || timer.timer_loop())
            .expect("spawning the client timer thread");
        Self { handle: Arc::new(Handle { shared }) }
    }

    /// A client of the server at a TCP address.
    pub fn tcp(addr: impl ToSocketAddrs + Send + 'static, options: ClientOptions) -> Self {
        Self::new(move || TcpStream::connect(&addr).and_then(Transport::tcp), options)
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

    /// Whether a connection is up and its handshake done.
    pub fn is_connected(&self) -> bool {
        self.shared().lock().machine.is_connected()
    }

    /// Waits until connected, up to `timeout`; returns whether it is.
    pub fn wait_connected(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared().lock();
        while !state.machine.is_connected() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self.shared().changed.wait_timeout(state, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
        true
    }

    /// Issues a request and waits for its answer.
    pub fn request(&self, request: Request) -> Result<Response, Error> {
        let shared = self.shared();
        let id = {
            let mut state = shared.lock();
            loop {
                match state.machine.issue(request.clone(), Instant::now()) {
                    Ok(id) => break id,
                    Err(IssueError::QueueFull) => state = shared.wait(state),
                    Err(err) => return Err(err.into()),
                }
            }
        };
        shared.changed.notify_all(); // the timer may have a new deadline
        shared.flush();
        let mut state = shared.lock();
        loop {
            if let Some(result) = state.answers.remove(&id) {
                return result.map_err(Error::from);
            }
            state = shared.wait(state);
        }
    }

    /// The value of `key`, or `None` if it is absent.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, Error> {
        match self.request(Request::Get { key: Bytes::copy_from_slice(key.as_ref()) })? {
            Response::Value(value) => Ok(value),
            other => Err(Error::UnexpectedResponse(other)),
        }
    }

    /// The values of several keys, in the order asked; `None` where a key is absent.
    pub fn get_many<K: AsRef<[u8]>>(&self, keys: impl IntoIterator<Item = K>) -> Result<Vec<Option<Bytes>>, Error> {
        let keys = keys.into_iter().map(|k| Bytes::copy_from_slice(k.as_ref())).collect();
        match self.request(Request::GetMany { keys })? {
            Response::Values(values) => Ok(values),
            other => Err(Error::UnexpectedResponse(other)),
        }
    }

    fn write(&self, request: Request) -> Result<(), Error> {
        match self.request(request)? {
            Response::Done => Ok(()),
            other => Err(Error::UnexpectedResponse(other)),
        }
    }

    /// Sets `key` to `value`.
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), Error> {
        self.write(Request::Put {
            key: Bytes::copy_from_slice(key.as_ref()),
            value: Bytes::copy_from_slice(value.as_ref()),
        })
    }

    /// Removes `key`; removing an absent key is not an error.
    pub fn del(&self, key: impl AsRef<[u8]>) -> Result<(), Error> {
        self.write(Request::Del { key: Bytes::copy_from_slice(key.as_ref()) })
    }

    /// Starts an atomic batch; add operations and [`write`](Batch::write) it.
    pub fn batch(&self) -> Batch<'_> {
        Batch { client: self, ops: Vec::new() }
    }

    /// The server's counters (entries, map size, open connections...), as `(name, value)`.
    pub fn stats(&self) -> Result<Vec<(String, u64)>, Error> {
        match self.request(Request::Stats)? {
            Response::Stats(stats) => Ok(stats),
            other => Err(Error::UnexpectedResponse(other)),
        }
    }

    /// Removes every key in `range`.
    pub fn clear(&self, range: KeyRange) -> Result<(), Error> {
        self.clear_with(range, false, None)
    }

    /// Removes at most `limit` keys of `range`, counting from the highest if `reverse`.
    pub fn clear_with(&self, range: KeyRange, reverse: bool, limit: Option<u64>) -> Result<(), Error> {
        self.write(Request::Clear { range, reverse, limit })
    }

    /// Iterates over a range, reading one snapshot while the connection lives; with retry on,
    /// it resumes after a reconnect exactly where it stopped.
    pub fn iter(&self, options: IterOptions) -> Result<Iter, Error> {
        let id = self.shared().lock().machine.open_iterator(options)?;
        self.shared().flush();
        Ok(Iter { client: self.clone(), id })
    }

    /// Closes the client: pending requests fail with [`RequestError::Closed`].
    pub fn close(&self) {
        close(self.shared());
    }
}

/// An atomic batch of puts and deletes, built by [`Client::batch`].
#[derive(Debug)]
pub struct Batch<'a> {
    client: &'a Client,
    ops: Vec<BatchOp>,
}

impl Batch<'_> {
    /// Adds a put.
    pub fn put(mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        self.ops.push(BatchOp::Put {
            key: Bytes::copy_from_slice(key.as_ref()),
            value: Bytes::copy_from_slice(value.as_ref()),
        });
        self
    }

    /// Adds a delete.
    pub fn del(mut self, key: impl AsRef<[u8]>) -> Self {
        self.ops.push(BatchOp::Del { key: Bytes::copy_from_slice(key.as_ref()) });
        self
    }

    /// Applies every operation atomically.
    pub fn write(self) -> Result<(), Error> {
        self.client.write(Request::Batch { ops: self.ops })
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
        self.client.shared().lock().machine.seek(self.id, Bytes::copy_from_slice(target.as_ref()));
        self.client.shared().flush();
    }

    /// Up to `max` entries: blocks until at least one is there or the iterator ends; an empty
    /// batch means the end.
    pub fn next_batch(&mut self, max: usize) -> Result<Vec<Entry>, Error> {
        let mut out = Vec::new();
        let shared = self.client.shared();
        let mut state = shared.lock();
        let result = loop {
            if out.len() >= max {
                break Ok(());
            }
            match state.machine.iterator_next(self.id) {
                IterPoll::Entry(entry) => out.push(entry),
                // Nothing was consumed in this call, so there is no credit to send first.
                IterPoll::Pending if out.is_empty() => state = shared.wait(state),
                IterPoll::Pending | IterPoll::End => break Ok(()),
                IterPoll::Error(err) if out.is_empty() => break Err(Error::from(err)),
                IterPoll::Error(_) => break Ok(()), // reported on the next call
            }
        };
        drop(state);
        shared.flush();
        result.map(|()| out)
    }
}

impl Iterator for Iter {
    type Item = Result<Entry, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let shared = self.client.shared();
        let mut state = shared.lock();
        loop {
            match state.machine.iterator_next(self.id) {
                IterPoll::Entry(entry) => {
                    drop(state);
                    shared.flush(); // credit, when due
                    return Some(Ok(entry));
                }
                // Entries arrive under this lock, so no wake-up is missed.
                IterPoll::Pending => state = shared.wait(state),
                IterPoll::End => return None,
                IterPoll::Error(err) => return Some(Err(err.into())),
            }
        }
    }
}

impl Drop for Iter {
    fn drop(&mut self) {
        self.client.shared().lock().machine.close_iterator(self.id);
        self.client.shared().flush();
    }
}
