//! The server: one task per connection, reads run on that task, writes go to the store's
//! writer thread and come back through a channel.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use multilevel_proto::{
    GoodbyeReason, OpId, Outcome, ServerConfig, ServerConnection, ServerEvent, StoreError, StoreRequest,
};
use multilevel_store::{ConnectionStore, Execution, Store};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
#[cfg(unix)]
use tokio::net::UnixListener;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

const READ_CHUNK: usize = 64 * 1024;

type Completion = (OpId, Result<Outcome, StoreError>);

/// Serves one store to many connections. Cheap to clone; clones share the shutdown signal.
#[derive(Clone)]
pub struct Server {
    store: Store,
    config: ServerConfig,
    shutdown: watch::Sender<bool>,
    connections: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("config", &self.config).field("connections", &self.connections()).finish()
    }
}

impl Server {
    /// A server for `store`, with the protocol settings the store calls for.
    pub fn new(store: Store) -> Self {
        let config = store.server_config();
        Self::with_config(store, config)
    }

    /// A server with explicit protocol settings; keep `max_key_size` at or below what the
    /// store accepts.
    pub fn with_config(store: Store, config: ServerConfig) -> Self {
        Self { store, config, shutdown: watch::Sender::new(false), connections: Arc::new(AtomicUsize::new(0)) }
    }

    /// The store served.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Open connections right now.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

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
            let _ = tokio::time::timeout(std::time::Duration::from_millis(20), rx.changed()).await;
        }
    }

    /// Accepts TCP connections until [`shutdown`](Self::shutdown); each runs on its own task
    /// with `TCP_NODELAY` on.
    pub async fn serve_tcp(&self, listener: TcpListener) -> io::Result<()> {
        let mut shutdown = self.shutdown.subscribe();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        if let Err(err) = stream.set_nodelay(true) {
                            debug!("TCP_NODELAY on {peer}: {err}");
                        }
                        let (reader, writer) = stream.into_split();
                        self.spawn_connection(reader, writer);
                    }
                    Err(err) => {
                        warn!("accept failed: {err}");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                },
                _ = wait_true(&mut shutdown) => return Ok(()),
            }
        }
    }

    /// Accepts Unix socket connections until [`shutdown`](Self::shutdown).
    #[cfg(unix)]
    pub async fn serve_unix(&self, listener: UnixListener) -> io::Result<()> {
        let mut shutdown = self.shutdown.subscribe();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let (reader, writer) = stream.into_split();
                        self.spawn_connection(reader, writer);
                    }
                    Err(err) => {
                        warn!("accept failed: {err}");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                },
                _ = wait_true(&mut shutdown) => return Ok(()),
            }
        }
    }

    /// Serves one connection over any stream until it ends.
    pub async fn serve_stream<S>(&self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (reader, writer) = tokio::io::split(stream);
        self.serve_halves(reader, writer).await;
    }

    /// Serves one connection given as its two halves until it ends.
    pub async fn serve_halves<R, W>(&self, reader: R, writer: W)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        self.connections.fetch_add(1, Ordering::Relaxed);
        let connection = Connection {
            connections: Arc::clone(&self.connections),
            machine: ServerConnection::new(self.config.clone(), Instant::now()),
            store: self.store.connection(),
            completions: mpsc::unbounded_channel(),
        };
        if let Err(err) = connection.run(reader, writer, self.shutdown.subscribe()).await {
            debug!("connection ended: {err}");
        }
        self.connections.fetch_sub(1, Ordering::Relaxed);
        self.shutdown.send_modify(|_| {}); // wakes `closed()`
    }

    fn spawn_connection<R, W>(&self, reader: R, writer: W)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let server = self.clone();
        tokio::spawn(async move { server.serve_halves(reader, writer).await });
    }
}

async fn wait_true(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

struct Connection {
    /// The server's count of open connections, reported by `Stats`.
    connections: Arc<AtomicUsize>,
    machine: ServerConnection,
    store: ConnectionStore,
    completions: (mpsc::UnboundedSender<Completion>, mpsc::UnboundedReceiver<Completion>),
}

impl Connection {
    /// Runs what the machine asks of the store: reads inline, writes to the writer thread.
    fn run_events(&mut self) {
        while let Some(event) = self.machine.poll_event() {
            match event {
                ServerEvent::Store { op, request } => {
                    let is_stats = request == StoreRequest::Stats;
                    let tx = self.completions.0.clone();
                    let done = move |result| {
                        let _ = tx.send((op, result));
                    };
                    if let Execution::Ready(mut result) = self.store.execute(request, done) {
                        if let (true, Ok(Outcome::Stats(stats))) = (is_stats, &mut result) {
                            stats.push(("connections".into(), self.connections.load(Ordering::Relaxed) as u64));
                        }
                        let _ = self.machine.handle_outcome(op, result, Instant::now());
                    }
                }
                ServerEvent::CloseIterator { iterator } => self.store.close_iterator(iterator),
            }
        }
    }

    /// Writes all pending output, in one write per batch of frames.
    async fn flush<W: AsyncWrite + Unpin>(&mut self, writer: &mut W, out: &mut Vec<u8>) -> io::Result<()> {
        loop {
            self.run_events();
            out.clear();
            while let Some(bytes) = self.machine.poll_transmit() {
                out.extend_from_slice(&bytes);
                self.run_events();
            }
            if out.is_empty() {
                return Ok(());
            }
            writer.write_all(out).await?;
        }
    }

    async fn run<R, W>(mut self, mut reader: R, mut writer: W, mut shutdown: watch::Receiver<bool>) -> io::Result<()>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut buf = vec![0u8; READ_CHUNK];
        let mut out = Vec::new();
        let mut peer_gone = false;
        loop {
            self.flush(&mut writer, &mut out).await?;
            let stopping = *shutdown.borrow();
            if stopping && self.machine.in_flight() == 0 {
                self.machine.close(GoodbyeReason::Shutdown, "the server is shutting down");
            }
            if self.machine.is_closed() {
                self.flush(&mut writer, &mut out).await?;
                break;
            }
            let deadline = self.machine.poll_timeout().map(tokio::time::Instant::from_std);
            let reading = self.machine.wants_input() && !stopping && !peer_gone;
            tokio::select! {
                Some((op, result)) = self.completions.1.recv() => {
                    let _ = self.machine.handle_outcome(op, result, Instant::now());
                }
                read = reader.read(&mut buf), if reading => match read {
                    Ok(0) | Err(_) => {
                        // The client left: nobody reads answers any more.
                        peer_gone = true;
                        self.machine.close(GoodbyeReason::Normal, "connection ended");
                    }
                    Ok(n) => {
                        if let Err(err) = self.machine.handle_input(&buf[..n], Instant::now()) {
                            info!("closing a connection: {err}");
                        }
                    }
                },
                _ = sleep_until(deadline) => self.machine.handle_timeout(Instant::now()),
                _ = shutdown.changed(), if !stopping => {}
            }
        }
        self.run_events(); // releases snapshots
        if !peer_gone {
            let _ = writer.shutdown().await;
        }
        Ok(())
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
