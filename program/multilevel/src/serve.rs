//! `multilevel serve`: open the store (LMDB, or an etcd cluster with the `etcd` feature), listen, print where, serve until a signal, then shut
//! down gracefully.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use multilevel_proto::backend::Backend;
use multilevel_store::{ChangeRetention, Store, StoreOptions};
use multilevel_tokio::Server;
use tracing::{info, warn};

use crate::Failure;
use crate::args::{Place, ServeArgs, ServeOptions};

/// How long connections get to finish their work after a shutdown signal.
const GRACE: Duration = Duration::from_secs(10);

/// A bound listener.
enum Listener {
    Tcp(tokio::net::TcpListener),
    #[cfg(unix)]
    Unix(tokio::net::UnixListener),
}

/// Serves `args.path` (or, with `--etcd`, an etcd cluster) where `args.options` say until
/// SIGINT or SIGTERM.
pub(crate) async fn serve(args: ServeArgs) -> Result<(), Failure> {
    let ServeArgs { path, options: args } = args;
    // Before the store opens: its writer registers its metrics when it starts.
    if let Some(addr) = &args.metrics {
        crate::metrics::install(addr)?;
    }
    if !args.etcd.is_empty() {
        return serve_etcd(args).await;
    }
    let mut options = StoreOptions::default().readonly(args.readonly).no_sync(args.no_sync);
    if let Some(size) = args.map_size {
        options = options.map_size(size);
    }
    let mut retention = ChangeRetention::default().max_age(args.history_age);
    if let Some(commits) = args.history_commits {
        retention = retention.max_commits(commits);
    }
    if let Some(size) = args.history_size {
        retention = retention.max_bytes(size as u64);
    }
    options = options.change_retention(retention);
    let store = Store::open(&path, options).map_err(|err| Failure::new(format!("cannot open the database: {err}")))?;
    serve_backend(store, &path.display().to_string(), args).await
}

/// `serve --etcd ENDPOINTS [--namespace NAME]`: serves the etcd cluster at ENDPOINTS.
#[cfg(feature = "etcd")]
async fn serve_etcd(args: ServeOptions) -> Result<(), Failure> {
    use multilevel_etcd::{EtcdBackend, EtcdOptions};
    let namespace = args.namespace.clone().unwrap_or_default();
    let options =
        EtcdOptions { namespace: namespace.clone().into_bytes(), readonly: args.readonly, ..EtcdOptions::default() };
    let endpoints = args.etcd.clone();
    let joined = endpoints.join(",");
    // Connecting blocks until a member answers (or the retry time is up).
    let backend = tokio::task::spawn_blocking(move || EtcdBackend::connect(&endpoints, options))
        .await
        .map_err(|err| Failure::new(format!("cannot connect to etcd at {joined}: {err}")))?
        .map_err(|err| Failure::new(format!("cannot connect to etcd at {joined}: {err}")))?;
    let label = match args.namespace.as_deref() {
        Some(namespace) => format!("etcd {joined} (namespace {namespace})"),
        None => format!("etcd {joined}"),
    };
    serve_backend(backend, &label, args).await
}

/// `serve --etcd` in a program built without the `etcd` feature.
#[cfg(not(feature = "etcd"))]
async fn serve_etcd(_args: ServeOptions) -> Result<(), Failure> {
    Err(Failure::usage(
        "this multilevel was built without etcd support: build it with `cargo build --release -p multilevel \
         --features etcd` (which needs protoc)",
    ))
}

/// Serves `backend`, shown as `label`, where `args` say until SIGINT or SIGTERM.
async fn serve_backend<B: Backend>(backend: B, label: &str, args: ServeOptions) -> Result<(), Failure> {
    let target = args.target();
    let mut signals = Signals::new().map_err(|err| Failure::new(format!("cannot watch for signals: {err}")))?;
    let mut config = backend.server_config();
    config.tokens = tokens(&args)?;
    let protocol = multilevel_proto::Protocol::from(args.protocol);
    let many_level_target = args.many_level_target();
    let serves_many_level = protocol == multilevel_proto::Protocol::ManyLevel || many_level_target.is_some();
    if serves_many_level && config.tokens.is_some() {
        return Err(Failure::new(
            "many-level has no authentication: --protocol many-level, --many-level-addr and \
             --many-level-unix cannot be used with tokens (--tokens-file or $MULTILEVEL_TOKENS)",
        ));
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(
            multilevel_tokio::tls::server_config(cert, key, args.tls_client_ca.as_deref())
                .map_err(|err| Failure::new(format!("cannot set up TLS: {err}")))?,
        ),
        _ => None,
    };
    let server = Server::with_config(backend.clone(), config.clone())
        .with_max_connections(args.max_connections)
        .with_protocol(protocol);
    let (listener, shown) = bind(&target).await?;
    let open = config.tokens.is_none() && tls.is_none();
    warn_if_open_to_network(&listener, open, &shown);
    // The second listener shares the store (one writer, one set of snapshots) and the cap.
    let many_level = match &many_level_target {
        Some(target) => {
            let (listener, shown) = bind(target).await?;
            warn_if_open_to_network(&listener, true, &shown);
            let server = Server::with_config(backend.clone(), config.clone())
                .with_max_connections(args.max_connections)
                .with_protocol(multilevel_proto::Protocol::ManyLevel);
            Some((server, listener, shown))
        }
        None => None,
    };
    info!(serving = %label, on = %shown, readonly = args.readonly, no_sync = args.no_sync,
        protocol = ?protocol, "serving");
    banner(label, &shown, "");
    if let Some((_, _, shown)) = &many_level {
        info!(on = %shown, "serving many-level guests");
        banner(label, shown, " to many-level guests");
    }
    if let Some(addr) = crate::metrics::listening() {
        info!(on = %addr, "serving metrics");
        let _ = writeln!(io::stdout().lock(), "multilevel: metrics on http://{addr}/metrics");
    }

    let mut task = tokio::spawn(accept(server.clone(), listener, tls));
    let (mut second, second_server) = match many_level {
        Some((server, listener, _)) => (Some(tokio::spawn(accept(server.clone(), listener, None))), Some(server)),
        None => (None, None),
    };
    let second_done = async {
        match second.as_mut() {
            Some(task) => task.await,
            None => std::future::pending().await,
        }
    };
    let failed = tokio::select! {
        signal = signals.recv() => {
            info!("{signal}: shutting down, letting {} connection(s) finish", server.connections());
            None
        }
        result = &mut task => Some(stopped("the listener", result)),
        result = second_done => Some(stopped("the many-level listener", result)),
    };
    let servers: Vec<&Server<B>> = std::iter::once(&server).chain(second_server.as_ref()).collect();
    for server in &servers {
        server.shutdown();
    }
    task.abort();
    if let Some(task) = &second {
        task.abort();
    }
    let all_closed = futures_util::future::join_all(servers.iter().map(|server| server.closed()));
    tokio::select! {
        finished = tokio::time::timeout(GRACE, all_closed) => if finished.is_err() {
            let open: usize = servers.iter().map(|server| server.connections()).sum();
            warn!("{open} connection(s) still open after {GRACE:?}; exiting anyway");
        },
        signal = signals.recv() => warn!("{signal} again: exiting now"),
    }
    #[cfg(unix)]
    for target in std::iter::once(&target).chain(many_level_target.as_ref()) {
        if let Place::Unix(path) = target {
            let _ = std::fs::remove_file(path);
        }
    }
    if args.no_sync {
        // Flush what the skipped fsyncs left in the page cache.
        if let Err(err) = backend.flush() {
            warn!("flushing the database to disk: {err}");
        }
    }
    drop(servers);
    drop(server);
    drop(second_server);
    drop(backend); // LMDB: commits what is queued and closes the environment, unless connections linger
    info!("stopped");
    match failed {
        None => Ok(()),
        Some(message) => Err(Failure::new(message)),
    }
}

/// The token list from `--tokens-file`, else `$MULTILEVEL_TOKENS`; `None` lets everyone in.
fn tokens(args: &ServeOptions) -> Result<Option<std::sync::Arc<multilevel_proto::Tokens>>, Failure> {
    let text = match &args.tokens_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|err| Failure::new(format!("cannot read the tokens file {}: {err}", path.display())))?,
        None => match std::env::var("MULTILEVEL_TOKENS") {
            Ok(text) => text,
            Err(_) => return Ok(None),
        },
    };
    let tokens =
        multilevel_proto::Tokens::parse(&text).map_err(|err| Failure::new(format!("bad token list: {err}")))?;
    Ok(Some(std::sync::Arc::new(tokens)))
}

/// Accepts and serves connections on `listener` until it fails or the task is aborted.
async fn accept<B: Backend>(
    server: Server<B>,
    listener: Listener,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> io::Result<()> {
    match listener {
        Listener::Tcp(listener) => match tls {
            Some(tls) => server.serve_tls(listener, tls).await,
            None => server.serve_tcp(listener).await,
        },
        #[cfg(unix)]
        Listener::Unix(listener) => server.serve_unix(listener).await,
    }
}

/// Why serving stopped, from the end of a listener's task.
fn stopped(what: &str, result: Result<io::Result<()>, tokio::task::JoinError>) -> String {
    match result {
        Ok(Ok(())) => format!("{what} stopped"),
        Ok(Err(err)) => format!("{what} failed: {err}"),
        Err(err) => format!("{what} failed: {err}"),
    }
}

/// Warns when `listener` is reachable from the network with neither tokens nor TLS.
fn warn_if_open_to_network(listener: &Listener, open: bool, shown: &str) {
    if let Listener::Tcp(listener) = listener
        && open
        && listener.local_addr().is_ok_and(|addr| !addr.ip().is_loopback())
    {
        warn!("serving {shown} to the network with neither tokens nor TLS: anyone who can reach it can read and write");
    }
}

/// Binds the listener; returns it and how to show its address (with the real port).
async fn bind(target: &Place) -> Result<(Listener, String), Failure> {
    let cannot = |err: io::Error| Failure::new(format!("cannot listen on {target}: {err}"));
    match target {
        Place::Tcp(addr) => {
            let listener = tokio::net::TcpListener::bind(addr.as_str()).await.map_err(cannot)?;
            let local = listener.local_addr().map_err(cannot)?;
            Ok((Listener::Tcp(listener), local.to_string()))
        }
        #[cfg(unix)]
        Place::Unix(path) => {
            // The one routine every server uses: replaces only a stale socket, owner-only.
            let listener = multilevel_blocking::bind_unix_replacing_stale(path)
                .map_err(|err| Failure::new(format!("cannot listen on unix:{err}")))?;
            listener.set_nonblocking(true).map_err(cannot)?;
            let listener = tokio::net::UnixListener::from_std(listener).map_err(cannot)?;
            Ok((Listener::Unix(listener), target.to_string()))
        }
        #[cfg(not(unix))]
        Place::Unix(_) => Err(Failure::new("Unix sockets are not supported on this platform")),
    }
}

/// Prints `multilevel: serving LABEL{what} on ADDR` to stdout, flushed, for scripts to read.
fn banner(label: &str, on: &str, what: &str) {
    let mut out = io::stdout().lock();
    // Nobody reading stdout is no reason to stop serving.
    let _ = writeln!(out, "multilevel: serving {label}{what} on {on}").and_then(|()| out.flush());
}

/// SIGINT and SIGTERM, installed before the banner so that a signal right after it is handled.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self { interrupt: signal(SignalKind::interrupt())?, terminate: signal(SignalKind::terminate())? })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Waits for the next signal; returns its name.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => "interrupted",
                _ = self.terminate.recv() => "terminated",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "interrupted"
        }
    }
}
