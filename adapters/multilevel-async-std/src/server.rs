//! The server: one task per connection, reads run on that task, writes go to the store's
//! writer thread and come back through the connection's completion queue.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use async_io::Timer;
use async_net::TcpListener;
#[cfg(unix)]
use async_net::unix::UnixListener;
use futures_io::{AsyncRead, AsyncWrite};
use futures_lite::{AsyncWriteExt, FutureExt};
use multilevel_proto::{GoodbyeReason, ServerConfig};
use multilevel_serve::{Backend, BackendConnection, ServedConnection, Serving};
use multilevel_store::Store;
use tracing::{Instrument, debug, info, warn};

use crate::spawn::{Signal, Spawn};

const READ_CHUNK: usize = 64 * 1024;

/// Serves one backend (by default the LMDB [`Store`]) to many connections. Cheap to clone;
/// clones share the shutdown signal and the connection count.
///
/// What each adapter's server offers (all wrap the same [`Serving`]):
///
/// | server offers | `multilevel-tokio` | `multilevel-async-std` | `multilevel-blocking` |
/// |---|---|---|---|
/// | TCP, any stream | yes | yes | yes (any `Read`/`Write` pair) |
/// | Unix sockets | yes | yes | yes |
/// | TLS | yes (`serve_tls`) | bring your own stream | bring your own `Transport` |
/// | many-level guests (`with_protocol`) | yes | yes | yes |
/// | connection cap (`with_max_connections`, `TooManyConnections` goodbye) | yes, TLS included | yes | yes |
/// | graceful shutdown (in-flight requests finish, then goodbye) | yes | yes | no: accepting stops, connections carry on |
#[derive(Clone)]
pub struct Server<B: Backend = Store> {
    serving: Serving<B>,
    spawner: Arc<dyn Spawn>,
    shutdown: Arc<Signal>,
    /// Pulsed when a connection closes, for [`closed`](Self::closed).
    closes: Arc<Signal>,
}

impl<B: Backend> std::fmt::Debug for Server<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("serving", &self.serving).finish_non_exhaustive()
    }
}

impl<B: Backend> Server<B> {
    /// A server for `store` whose connection tasks run on `spawner`, with the protocol settings
    /// the store calls for.
    pub fn new(store: B, spawner: impl Spawn) -> Self {
        Self::from_serving(Serving::new(store), spawner)
    }

    /// A server with explicit protocol settings.
    pub fn with_config(store: B, config: ServerConfig, spawner: impl Spawn) -> Self {
        Self::from_serving(Serving::with_config(store, config), spawner)
    }

    /// A server of what `serving` says (backend, settings, protocol, connection cap) whose
    /// connection tasks run on `spawner`.
    pub fn from_serving(serving: Serving<B>, spawner: impl Spawn) -> Self {
        Self { serving, spawner: Arc::new(spawner), shutdown: Arc::default(), closes: Arc::default() }
    }

    multilevel_serve::serving_methods!();

    /// Starts a graceful shutdown: listeners stop accepting, each connection stops reading,
    /// lets its in-flight requests finish, says goodbye and closes its iterators.
    pub fn shutdown(&self) {
        self.shutdown.set();
    }

    /// Waits until every connection has closed.
    pub async fn closed(&self) {
        loop {
            let listener = self.closes.listen();
            if self.connections() == 0 {
                return;
            }
            listener.await;
        }
    }

    /// Accepts TCP connections until [`shutdown`](Self::shutdown), each on its own task with
    /// `TCP_NODELAY` on.
    pub async fn serve_tcp(&self, listener: TcpListener) -> io::Result<()> {
        self.accept_until_shutdown(
            || listener.accept(),
            |(stream, peer)| {
                if let Err(err) = stream.set_nodelay(true) {
                    debug!("TCP_NODELAY on {peer}: {err}");
                }
                self.spawn_connection(stream.clone(), stream, multilevel_serve::connection_span(&peer));
            },
        )
        .await
    }

    /// Accepts Unix socket connections until [`shutdown`](Self::shutdown).
    #[cfg(unix)]
    pub async fn serve_unix(&self, listener: UnixListener) -> io::Result<()> {
        self.accept_until_shutdown(
            || listener.accept(),
            |(stream, _)| self.spawn_connection(stream.clone(), stream, multilevel_serve::connection_span(&"unix")),
        )
        .await
    }

    /// Hands each connection `accept` yields to `serve` until [`shutdown`](Self::shutdown).
    async fn accept_until_shutdown<S, A: Future<Output = io::Result<S>>>(
        &self,
        mut accept: impl FnMut() -> A,
        mut serve: impl FnMut(S),
    ) -> io::Result<()> {
        loop {
            let accepted = async { Some(accept().await) }.or(async {
                self.shutdown.wait().await;
                None
            });
            match accepted.await {
                None => return Ok(()),
                Some(Ok(stream)) => serve(stream),
                Some(Err(err)) => {
                    warn!("accept failed: {err}");
                    Timer::after(Duration::from_millis(10)).await;
                }
            }
        }
    }

    /// Serves one connection over any stream until it ends (or refuses it, past the cap), on
    /// the calling task.
    pub async fn serve_stream<S: AsyncRead + AsyncWrite + Send + Unpin + 'static>(&self, stream: S) {
        let (reader, writer) = futures_lite::io::split(stream);
        self.serve_halves(reader, writer).await;
    }

    /// Serves one connection given as its two halves until it ends (or refuses it, past the
    /// cap), on the calling task.
    pub async fn serve_halves<R, W>(&self, reader: R, mut writer: W)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let permit = match self.serving.admit() {
            Ok(permit) => permit,
            Err(refusal) => {
                warn!("{refusal}");
                // Briefly: a peer that does not read must not hold this task.
                let goodbye = async {
                    writer.write_all(refusal.goodbye()).await?;
                    writer.close().await
                };
                let timeout = async {
                    Timer::after(Duration::from_secs(1)).await;
                    Ok(())
                };
                let _ = goodbye.or(timeout).await;
                return;
            }
        };
        if let Err(err) = run(self.serving.connection(permit), reader, writer, &self.shutdown).await {
            debug!("connection ended: {err}");
        }
        self.closes.pulse();
    }

    /// Serves a connection on a task of its own, its logs in `span`.
    fn spawn_connection<R, W>(&self, reader: R, writer: W, span: tracing::Span)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let server = self.clone();
        self.spawner.spawn(Box::pin(async move { server.serve_halves(reader, writer).await }.instrument(span)));
    }
}

/// What woke a connection's task.
enum Woken {
    Completions,
    Read(io::Result<usize>),
    Timer,
    Shutdown,
}

/// Writes all pending output, one write per batch of frames.
async fn flush<C: BackendConnection, W: AsyncWrite + Unpin>(
    conn: &mut ServedConnection<C>,
    writer: &mut W,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    loop {
        out.clear();
        if !conn.take_output(out) {
            return writer.flush().await;
        }
        writer.write_all(out).await?;
    }
}

async fn run<C: BackendConnection, R, W>(
    mut conn: ServedConnection<C>,
    mut reader: R,
    mut writer: W,
    shutdown: &Signal,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; READ_CHUNK];
    let mut out = Vec::new();
    let mut peer_gone = false;
    loop {
        flush(&mut conn, &mut writer, &mut out).await?;
        // Listen before looking, so a shutdown in between is not missed.
        let mut stop = shutdown.listen();
        let stopping = shutdown.is_set();
        if stopping && conn.in_flight() == 0 && !conn.is_closed() {
            conn.close(GoodbyeReason::Shutdown, "the server is shutting down");
            continue;
        }
        if conn.is_closed() {
            break;
        }
        let reading = conn.wants_input() && !stopping && !peer_gone;
        let mut timer = conn.poll_timeout().map(Timer::at);
        let woken = poll_fn(|cx| {
            if conn.poll_completions(cx).is_ready() {
                return Poll::Ready(Woken::Completions);
            }
            if reading && let Poll::Ready(read) = Pin::new(&mut reader).poll_read(cx, &mut buf) {
                return Poll::Ready(Woken::Read(read));
            }
            if let Some(timer) = &mut timer
                && Pin::new(timer).poll(cx).is_ready()
            {
                return Poll::Ready(Woken::Timer);
            }
            if !stopping && Pin::new(&mut stop).poll(cx).is_ready() {
                return Poll::Ready(Woken::Shutdown);
            }
            Poll::Pending
        })
        .await;
        match woken {
            Woken::Completions | Woken::Shutdown => {}
            Woken::Read(Ok(0) | Err(_)) => {
                // The client left: nobody reads answers any more.
                peer_gone = true;
                conn.close(GoodbyeReason::Normal, "connection ended");
            }
            Woken::Read(Ok(n)) => {
                if let Err(err) = conn.handle_input(&buf[..n]) {
                    info!("closing a connection: {err}");
                }
            }
            Woken::Timer => conn.handle_timeout(),
        }
    }
    if !peer_gone {
        let _ = writer.close().await;
    }
    Ok(())
}
