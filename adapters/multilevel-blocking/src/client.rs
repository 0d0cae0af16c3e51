//! The blocking client: callers on any thread, their requests pipelined on one connection
//! (its threads are in `driver`).

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
#[cfg(unix)]
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use multilevel_proto::{
    CallError, ClientOptions, ConnectionState, Endpoints, IterOptions, Request, Response, SublevelPrefix, WatchOptions,
};

use crate::driver::{Handle, Shared, close};
use crate::transport::Transport;
use crate::views::{Batch, Iter, Sublevel};
use crate::watch::Watch;

/// An iterator entry: a key and its value (see [`multilevel_proto::Entry`]).
pub type Entry = multilevel_proto::Entry;

/// Why an operation failed.
pub type Error = CallError;

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
        Self { handle: Arc::new(Handle::start(Box::new(connector), options)) }
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

    pub(crate) fn shared(&self) -> &Shared {
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

    pub(crate) fn iter_in(&self, sublevel: &SublevelPrefix, options: IterOptions) -> Result<Iter, Error> {
        let id = self.shared().lock().open_iterator_in(sublevel, options)?;
        self.shared().flush();
        Ok(Iter { client: self.clone(), id })
    }

    /// Watches the changes to a range, in commit order, as an [`Iterator`] of
    /// [`ChangeEvent`](multilevel_proto::ChangeEvent)s (see [`multilevel_proto::change`]): from
    /// now on, or replaying the history the server keeps from a position. With retry on, it
    /// resumes after a reconnect or a server restart exactly after the last event received.
    pub fn watch(&self, options: WatchOptions) -> Result<Watch, Error> {
        self.watch_in(&SublevelPrefix::root(), options)
    }

    pub(crate) fn watch_in(&self, sublevel: &SublevelPrefix, options: WatchOptions) -> Result<Watch, Error> {
        let id = self.shared().lock().machine().open_watch_in(sublevel, options)?;
        self.shared().flush();
        Ok(Watch { client: self.clone(), id, failed: false })
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
