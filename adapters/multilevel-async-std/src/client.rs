//! The async client: a cloneable handle; tasks pipeline requests on one connection.
//!
//! The driver (connecting, reconnecting with backoff, reading, timers, writing) is
//! multilevel-proto's [`ClientDriver`], written once for every async runtime; this module
//! gives it the `futures-io` traits and `async-io` timers ([`FuturesIo`]), and runs its task on
//! the caller's spawner.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use async_io::Timer;
use futures_io::{AsyncRead, AsyncWrite};
use multilevel_proto::{ClientDriver, ClientOptions, ConnectionState, Endpoints, Runtime};
use tracing::debug;

use crate::spawn::{Signal, Spawn};
use crate::sublevel::Sublevel;
use crate::transport::Transport;

/// The `futures-io` and `async-io` part of a client, and where the connection state goes.
pub(crate) struct FuturesIo {
    state: Mutex<ConnectionState>,
    /// Pulsed when the connection state changes.
    state_changed: Signal,
}

impl Runtime for FuturesIo {
    type Transport = Transport;
    type Reader = Box<dyn AsyncRead + Unpin + Send>;
    type Writer = Box<dyn AsyncWrite + Unpin + Send>;
    type Timer = Timer;

    fn split(transport: Transport) -> (Self::Reader, Self::Writer) {
        (transport.reader, transport.writer)
    }

    fn poll_read(reader: &mut Self::Reader, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(reader).poll_read(cx, buf)
    }

    fn poll_write(writer: &mut Self::Writer, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(writer).poll_write(cx, buf)
    }

    fn poll_flush(writer: &mut Self::Writer, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(writer).poll_flush(cx)
    }

    fn poll_close(writer: &mut Self::Writer, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(writer).poll_close(cx)
    }

    fn timer(deadline: Instant) -> Timer {
        Timer::at(deadline)
    }

    fn reset(timer: &mut Timer, deadline: Instant) {
        timer.set_at(deadline);
    }

    fn poll_timer(timer: &mut Timer, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(timer).poll(cx).map(drop)
    }

    fn yield_now(&self) -> impl Future<Output = ()> + Send {
        futures_lite::future::yield_now()
    }

    fn publish(&self, state: ConnectionState) {
        if let ConnectionState::Disconnected(err) = &state {
            debug!("connection lost: {err}");
        }
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
        self.state_changed.pulse();
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
        let runtime = FuturesIo { state: Mutex::new(ConnectionState::Connecting), state_changed: Signal::default() };
        let connector = Box::new(move || Box::pin(connector()) as Pin<Box<_>>);
        let (driver, task) = ClientDriver::start(runtime, &options, rand::random(), connector);
        spawner.spawn(task);
        Self { driver }
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

    /// Where the connection stands now.
    pub fn state(&self) -> ConnectionState {
        self.driver.runtime().state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until the connection state changes, then returns the new state.
    pub async fn state_changed(&self) -> ConnectionState {
        self.driver.runtime().state_changed.listen().await;
        self.state()
    }

    /// Waits until connected; returns false if the client was closed first.
    pub async fn connected(&self) -> bool {
        loop {
            let listener = self.driver.runtime().state_changed.listen();
            match self.state() {
                ConnectionState::Connected => return true,
                ConnectionState::Closed => return false,
                _ => listener.await,
            }
        }
    }
}

multilevel_proto::async_client!(Client, FuturesIo, Sublevel);
