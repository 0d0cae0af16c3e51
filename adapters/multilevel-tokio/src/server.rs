//! The server: one task per connection, reads run on that task, writes go to the store's
//! writer thread and come back through a channel.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::timer::Timer;
use multilevel_proto::GoodbyeReason;
use multilevel_serve::{Backend, BackendConnection, ConnectionPermit, Refusal, ServedConnection, Serving};
use multilevel_store::Store;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
#[cfg(unix)]
use tokio::net::UnixListener;
use tokio::sync::watch;
use tracing::{Instrument, debug, info, warn};

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
#[derive(Clone, Debug)]
pub struct Server<B: Backend = Store> {
    serving: Serving<B>,
    shutdown: watch::Sender<bool>,
}

impl<B: Backend> Server<B> {
    /// A server of what `serving` says (backend, settings, protocol, connection cap).
    pub fn from_serving(serving: Serving<B>) -> Self {
        Self { serving, shutdown: watch::Sender::new(false) }
    }

    multilevel_serve::serving_methods!(constructors);

    /// Starts a graceful shutdown: listeners stop accepting, each connection stops reading,
    /// lets its in-flight requests finish, says goodbye and closes its iterators.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Waits until every connection has closed (after [`shutdown`](Self::shutdown), or when
    /// the clients leave).
    pub async fn closed(&self) {
        let mut rx = self.shutdown.subscribe();
        while self.connections() > 0 {
            // Woken on every connection close.
            let _ = tokio::time::timeout(Duration::from_millis(20), rx.changed()).await;
        }
    }

    /// Accepts TCP connections until [`shutdown`](Self::shutdown); each runs on its own task
    /// with `TCP_NODELAY` on.
    pub async fn serve_tcp(&self, listener: TcpListener) -> io::Result<()> {
        self.accept_until_shutdown(
            || listener.accept(),
            |(stream, peer)| {
                if let Err(err) = stream.set_nodelay(true) {
                    debug!("TCP_NODELAY on {peer}: {err}");
                }
                let (reader, writer) = stream.into_split();
                self.spawn_connection(reader, writer, multilevel_serve::connection_span(&peer));
            },
        )
        .await
    }

    /// Accepts TCP connections over TLS until [`shutdown`](Self::shutdown); see
    /// [`crate::tls::server_config`]. A handshake that fails or takes over 10 s closes that
    /// connection only. A connection past the cap is counted before its handshake and gets
    /// its goodbye over TLS.
    pub async fn serve_tls(&self, listener: TcpListener, tls: Arc<rustls::ServerConfig>) -> io::Result<()> {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        self.accept_until_shutdown(
            || listener.accept(),
            |(stream, peer)| {
                let _ = stream.set_nodelay(true);
                let admission = self.serving.admit();
                let (server, acceptor) = (self.clone(), acceptor.clone());
                tokio::spawn(
                    async move {
                        let handshake = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
                        match handshake.await {
                            Ok(Ok(tls)) => {
                                let (reader, writer) = tokio::io::split(tls);
                                server.serve_admitted(admission, reader, writer).await;
                            }
                            Ok(Err(err)) => info!("TLS handshake with {peer} failed: {err}"),
                            Err(_) => info!("TLS handshake with {peer} timed out"),
                        }
                    }
                    .instrument(multilevel_serve::connection_span(&peer)),
                );
            },
        )
        .await
    }

    /// Accepts Unix socket connections until [`shutdown`](Self::shutdown).
    #[cfg(unix)]
    pub async fn serve_unix(&self, listener: UnixListener) -> io::Result<()> {
        self.accept_until_shutdown(
            || listener.accept(),
            |(stream, _)| {
                let (reader, writer) = stream.into_split();
                self.spawn_connection(reader, writer, multilevel_serve::connection_span(&"unix"));
            },
        )
        .await
    }

    /// Hands each connection `accept` yields to `serve` until [`shutdown`](Self::shutdown).
    async fn accept_until_shutdown<S, A: Future<Output = io::Result<S>>>(
        &self,
        mut accept: impl FnMut() -> A,
        mut serve: impl FnMut(S),
    ) -> io::Result<()> {
        let mut shutdown = self.shutdown.subscribe();
        loop {
            tokio::select! {
                accepted = accept() => match accepted {
                    Ok(stream) => serve(stream),
                    Err(err) => {
                        warn!("accept failed: {err}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                _ = wait_true(&mut shutdown) => return Ok(()),
            }
        }
    }

    /// Serves one connection over any stream until it ends (or refuses it, past the cap).
    pub async fn serve_stream<S>(&self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (reader, writer) = tokio::io::split(stream);
        self.serve_halves(reader, writer).await;
    }

    /// Serves one connection given as its two halves until it ends (or refuses it, past the
    /// cap).
    pub async fn serve_halves<R, W>(&self, reader: R, writer: W)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        self.serve_admitted(self.serving.admit(), reader, writer).await;
    }

    /// Serves a connection with its permit, or says its refusal and closes it.
    async fn serve_admitted<R, W>(&self, admission: Result<ConnectionPermit, Refusal>, reader: R, mut writer: W)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let permit = match admission {
            Ok(permit) => permit,
            Err(refusal) => {
                warn!("{refusal}");
                // Briefly: a peer that does not read must not hold this task.
                let goodbye = async {
                    writer.write_all(refusal.goodbye()).await?;
                    writer.shutdown().await
                };
                let _ = tokio::time::timeout(Duration::from_secs(1), goodbye).await;
                return;
            }
        };
        if let Err(err) = run(self.serving.connection(permit), reader, writer, self.shutdown.subscribe()).await {
            debug!("connection ended: {err}");
        }
        self.shutdown.send_modify(|_| {}); // wakes `closed()`
    }

    /// Serves a connection on a task of its own, its logs in `span`.
    fn spawn_connection<R, W>(&self, reader: R, writer: W, span: tracing::Span)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let server = self.clone();
        tokio::spawn(async move { server.serve_halves(reader, writer).await }.instrument(span));
    }
}

async fn wait_true(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
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
            return Ok(());
        }
        writer.write_all(out).await?;
    }
}

/// Runs one connection: reads on this task, write outcomes through the completion queue.
async fn run<C: BackendConnection, R, W>(
    mut conn: ServedConnection<C>,
    mut reader: R,
    mut writer: W,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; READ_CHUNK];
    let mut out = Vec::new();
    let mut peer_gone = false;
    let mut timer = Timer::new();
    loop {
        flush(&mut conn, &mut writer, &mut out).await?;
        let stopping = *shutdown.borrow();
        if stopping && conn.in_flight() == 0 && !conn.is_closed() {
            conn.close(GoodbyeReason::Shutdown, "the server is shutting down");
            continue;
        }
        if conn.is_closed() {
            break;
        }
        timer.arm(conn.poll_timeout());
        let reading = conn.wants_input() && !stopping && !peer_gone;
        tokio::select! {
            () = std::future::poll_fn(|cx| conn.poll_completions(cx)) => {}
            read = reader.read(&mut buf), if reading => match read {
                Ok(0) | Err(_) => {
                    // The client left: nobody reads answers any more.
                    peer_gone = true;
                    conn.close(GoodbyeReason::Normal, "connection ended");
                }
                Ok(n) => {
                    if let Err(err) = conn.handle_input(&buf[..n]) {
                        info!("closing a connection: {err}");
                    }
                }
            },
            // The machine checks the time itself: a timer that fires early does nothing.
            () = timer.fired() => conn.handle_timeout(),
            _ = shutdown.changed(), if !stopping => {}
        }
    }
    if !peer_gone {
        let _ = writer.shutdown().await;
    }
    Ok(())
}
