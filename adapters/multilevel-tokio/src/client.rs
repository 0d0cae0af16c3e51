//! The async client: a cloneable handle; tasks pipeline requests on one connection.
//!
//! The driver (connecting, reconnecting with backoff, reading, timers, writing) is
//! multilevel-proto's [`ClientDriver`], written once for every async runtime; this module
//! gives it tokio's I/O and timers ([`Tokio`]) and spawns its task.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use multilevel_proto::{ClientDriver, ClientOptions, ConnectionState, Endpoints, Runtime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::watch;
use tracing::debug;

use crate::sublevel::Sublevel;
use crate::transport::Transport;

/// tokio's part of a client: its I/O traits and timers, and where the connection state goes.
pub(crate) struct Tokio {
    status: watch::Sender<ConnectionState>,
}

impl Runtime for Tokio {
    type Transport = Transport;
    type Reader = Box<dyn AsyncRead + Unpin + Send>;
    type Writer = Box<dyn AsyncWrite + Unpin + Send>;
    type Timer = Pin<Box<tokio::time::Sleep>>;

    fn split(transport: Transport) -> (Self::Reader, Self::Writer) {
        (transport.reader, transport.writer)
    }

    fn poll_read(reader: &mut Self::Reader, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut buf = ReadBuf::new(buf);
        ready!(Pin::new(reader).poll_read(cx, &mut buf))?;
        Poll::Ready(Ok(buf.filled().len()))
    }

    fn poll_write(writer: &mut Self::Writer, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(writer).poll_write(cx, buf)
    }

    fn poll_flush(writer: &mut Self::Writer, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(writer).poll_flush(cx)
    }

    fn poll_close(writer: &mut Self::Writer, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(writer).poll_shutdown(cx)
    }

    fn timer(deadline: Instant) -> Self::Timer {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }

    fn reset(timer: &mut Self::Timer, deadline: Instant) {
        timer.as_mut().reset(deadline.into());
    }

    fn poll_timer(timer: &mut Self::Timer, cx: &mut Context<'_>) -> Poll<()> {
        timer.as_mut().poll(cx)
    }

    fn yield_now(&self) -> impl Future<Output = ()> + Send {
        tokio::task::yield_now()
    }

    fn publish(&self, state: ConnectionState) {
        if let ConnectionState::Disconnected(err) = &state {
            debug!("connection lost: {err}");
        }
        self.status.send_replace(state);
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
        let runtime = Tokio { status: watch::Sender::new(ConnectionState::Connecting) };
        let connector = Box::new(move || Box::pin(connector()) as Pin<Box<_>>);
        let (driver, task) = ClientDriver::start(runtime, &options, rand::random(), connector);
        tokio::spawn(task);
        Self { driver }
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

    /// Where the connection stands; after a failure, with its reason (e.g.
    /// [`ConnectionError::Connect`](multilevel_proto::ConnectionError::Connect) while the server
    /// cannot be reached).
    pub fn state(&self) -> ConnectionState {
        self.driver.runtime().status.borrow().clone()
    }

    /// Watches the connection state, e.g. to show it or to wait for [`ConnectionState::Connected`].
    pub fn watch_state(&self) -> watch::Receiver<ConnectionState> {
        self.driver.runtime().status.subscribe()
    }

    /// Waits until connected; returns false if the client was closed first.
    pub async fn connected(&self) -> bool {
        let mut rx = self.watch_state();
        let state = rx.wait_for(|s| matches!(s, ConnectionState::Connected | ConnectionState::Closed)).await;
        matches!(state.as_deref(), Ok(ConnectionState::Connected))
    }
}

multilevel_proto::async_client!(Client, Tokio, Sublevel);
