//! Every adapter's server and client, behind one blocking interface, so one suite runs on all
//! nine pairs.

use std::net::SocketAddr;
use std::sync::OnceLock;

use bytes::Bytes;
use futures_util::StreamExt;
use multilevel_proto::{CallError, ChangeEvent, ClientOptions, IterOptions, KeyRange, ServerConfig, WatchOptions};
use multilevel_serve::{Backend, Serving};
use multilevel_store::{Store, StoreOptions};
use tempfile::TempDir;

/// The adapters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    /// `multilevel-blocking`.
    Blocking,
    /// `multilevel-tokio`.
    Tokio,
    /// `multilevel-async-std`, on smol.
    Smol,
}

/// Every adapter.
pub const ALL: [Adapter; 3] = [Adapter::Blocking, Adapter::Tokio, Adapter::Smol];

/// A tokio runtime shared by the tests of one process.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime")
    })
}

fn smol_spawn(task: multilevel_async_std::Task) {
    smol::spawn(task).detach();
}

/// A server of some adapter on loopback, over a fresh LMDB file.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The store it serves.
    pub store: Store,
    /// Stopped on drop, before the directory goes.
    _server: BackendServer,
    _dir: TempDir,
}

impl TestServer {
    /// Starts a server of `adapter`.
    pub fn start(adapter: Adapter, options: StoreOptions) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = Store::open(dir.path(), options).expect("the store opens");
        let server = BackendServer::start(adapter, store.clone());
        Self { addr: server.addr, store, _server: server, _dir: dir }
    }
}

/// A server of some adapter on loopback, over any backend.
pub struct BackendServer {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Box<dyn Fn() + Send + Sync>,
}

impl BackendServer {
    /// Starts a server of `adapter` serving `backend`.
    pub fn start<B: Backend>(adapter: Adapter, backend: B) -> Self {
        let config = backend.server_config();
        Self::with_config(adapter, backend, config)
    }

    /// Starts a server of `adapter` serving `backend` with `config` (e.g. with tokens).
    pub fn with_config<B: Backend>(adapter: Adapter, backend: B, config: ServerConfig) -> Self {
        Self::from_serving(adapter, Serving::with_config(backend, config))
    }

    /// Starts a server of `adapter` serving what `serving` says (e.g. with a connection cap).
    pub fn from_serving<B: Backend>(adapter: Adapter, serving: Serving<B>) -> Self {
        let (addr, stop): (SocketAddr, Box<dyn Fn() + Send + Sync>) = match adapter {
            Adapter::Blocking => {
                let server = multilevel_blocking::Server::from_serving(serving);
                let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
                let addr = listener.local_addr().expect("addr");
                let handle = server.shutdown_handle();
                std::thread::spawn(move || server.serve_tcp(listener));
                (addr, Box::new(move || handle.shutdown()))
            }
            Adapter::Tokio => {
                let server = multilevel_tokio::Server::from_serving(serving);
                let listener = runtime().block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
                let addr = listener.local_addr().expect("addr");
                let serving = server.clone();
                runtime().spawn(async move { serving.serve_tcp(listener).await });
                (addr, Box::new(move || server.shutdown()))
            }
            Adapter::Smol => {
                let server = multilevel_async_std::Server::from_serving(serving, smol_spawn);
                let listener = smol::block_on(async_net::TcpListener::bind("127.0.0.1:0")).expect("bind");
                let addr = listener.local_addr().expect("addr");
                let serving = server.clone();
                smol::spawn(async move { serving.serve_tcp(listener).await }).detach();
                (addr, Box::new(move || server.shutdown()))
            }
        };
        Self { addr, stop }
    }
}

impl Drop for BackendServer {
    fn drop(&mut self) {
        (self.stop)();
    }
}

/// A client of some adapter, used through blocking calls.
pub enum AnyClient {
    /// A blocking client.
    Blocking(multilevel_blocking::Client),
    /// A tokio client, driven on [`runtime`].
    Tokio(multilevel_tokio::Client),
    /// An async-std/smol client, driven on smol.
    Smol(multilevel_async_std::Client),
}

/// What the suite reads from an iterator: its entries, or the error it ended with.
pub type Entries = Result<Vec<multilevel_proto::Entry>, CallError>;

impl AnyClient {
    /// A client of `adapter` connecting to `addr` through `connector`-less TCP.
    pub fn connect(adapter: Adapter, addr: SocketAddr, options: ClientOptions) -> Self {
        match adapter {
            Adapter::Blocking => AnyClient::Blocking(multilevel_blocking::Client::tcp(addr, options)),
            Adapter::Tokio => {
                let _guard = runtime().enter();
                AnyClient::Tokio(multilevel_tokio::Client::tcp(addr, options))
            }
            Adapter::Smol => AnyClient::Smol(multilevel_async_std::Client::tcp(addr, options, smol_spawn)),
        }
    }

    /// A client of `adapter` given several addresses of one database, tried in turn.
    pub fn connect_any(adapter: Adapter, addrs: Vec<SocketAddr>, options: ClientOptions) -> Self {
        match adapter {
            Adapter::Blocking => AnyClient::Blocking(multilevel_blocking::Client::tcp_any(addrs, options)),
            Adapter::Tokio => {
                let _guard = runtime().enter();
                AnyClient::Tokio(multilevel_tokio::Client::tcp_any(addrs, options))
            }
            Adapter::Smol => AnyClient::Smol(multilevel_async_std::Client::tcp_any(addrs, options, smol_spawn)),
        }
    }

    /// Where the client's connection stands.
    pub fn state(&self) -> multilevel_proto::ConnectionState {
        match self {
            AnyClient::Blocking(c) => c.state(),
            AnyClient::Tokio(c) => c.state(),
            AnyClient::Smol(c) => c.state(),
        }
    }

    /// Reads `key` with a deadline of its own; the blocking client has only the client-wide
    /// [`ClientOptions::request_timeout`], so it gets `None`.
    pub fn get_within(
        &self,
        key: impl AsRef<[u8]>,
        timeout: std::time::Duration,
    ) -> Option<Result<Option<Bytes>, CallError>> {
        let request = multilevel_proto::Request::get(key);
        let value = |response: multilevel_proto::Response| response.into_value();
        match self {
            AnyClient::Blocking(_) => None,
            AnyClient::Tokio(c) => Some(runtime().block_on(c.request(request, Some(timeout))).and_then(value)),
            AnyClient::Smol(c) => Some(smol::block_on(c.request(request, Some(timeout))).and_then(value)),
        }
    }

    /// The server's counters.
    pub fn stats(&self) -> Result<Vec<(String, u64)>, CallError> {
        match self {
            AnyClient::Blocking(c) => c.stats(),
            AnyClient::Tokio(c) => runtime().block_on(c.stats()),
            AnyClient::Smol(c) => smol::block_on(c.stats()),
        }
    }

    /// Sets `key` to `value`.
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), CallError> {
        match self {
            AnyClient::Blocking(c) => c.put(key, value),
            AnyClient::Tokio(c) => runtime().block_on(c.put(key, value)),
            AnyClient::Smol(c) => smol::block_on(c.put(key, value)),
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, CallError> {
        match self {
            AnyClient::Blocking(c) => c.get(key),
            AnyClient::Tokio(c) => runtime().block_on(c.get(key)),
            AnyClient::Smol(c) => smol::block_on(c.get(key)),
        }
    }

    /// The values of `keys`.
    pub fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CallError> {
        match self {
            AnyClient::Blocking(c) => c.get_many(keys),
            AnyClient::Tokio(c) => runtime().block_on(c.get_many(keys)),
            AnyClient::Smol(c) => smol::block_on(c.get_many(keys)),
        }
    }

    /// Removes `key`.
    pub fn del(&self, key: impl AsRef<[u8]>) -> Result<(), CallError> {
        match self {
            AnyClient::Blocking(c) => c.del(key),
            AnyClient::Tokio(c) => runtime().block_on(c.del(key)),
            AnyClient::Smol(c) => smol::block_on(c.del(key)),
        }
    }

    /// Applies `ops` atomically.
    pub fn batch(&self, ops: Vec<multilevel_proto::BatchOp>) -> Result<(), CallError> {
        match self {
            AnyClient::Blocking(c) => c.request(multilevel_proto::Request::Batch { ops })?.into_done(),
            AnyClient::Tokio(c) => runtime().block_on(c.batch(ops)),
            AnyClient::Smol(c) => smol::block_on(c.batch(ops)),
        }
    }

    /// Sets `key` to `new` if its value is `old` (`None`: absent / delete).
    pub fn compare_and_swap(
        &self,
        key: impl AsRef<[u8]>,
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<Result<(), Option<Bytes>>, CallError> {
        match self {
            AnyClient::Blocking(c) => c.compare_and_swap(key, old, new),
            AnyClient::Tokio(c) => runtime().block_on(c.compare_and_swap(key, old, new)),
            AnyClient::Smol(c) => smol::block_on(c.compare_and_swap(key, old, new)),
        }
    }

    /// Sets `key` to `value` if it is absent.
    pub fn put_if_absent(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<Result<(), Bytes>, CallError> {
        match self {
            AnyClient::Blocking(c) => c.put_if_absent(key, value),
            AnyClient::Tokio(c) => runtime().block_on(c.put_if_absent(key, value)),
            AnyClient::Smol(c) => smol::block_on(c.put_if_absent(key, value)),
        }
    }

    /// Adds `by` to the counter at `key`.
    pub fn increment(&self, key: impl AsRef<[u8]>, by: i64) -> Result<i64, CallError> {
        match self {
            AnyClient::Blocking(c) => c.increment(key, by),
            AnyClient::Tokio(c) => runtime().block_on(c.increment(key, by)),
            AnyClient::Smol(c) => smol::block_on(c.increment(key, by)),
        }
    }

    /// Applies `ops` atomically if every condition holds.
    pub fn batch_if(
        &self,
        conditions: Vec<multilevel_proto::Condition>,
        ops: Vec<multilevel_proto::BatchOp>,
    ) -> Result<Result<(), multilevel_proto::ConditionFailed>, CallError> {
        match self {
            AnyClient::Blocking(c) => c.batch_if(conditions, ops),
            AnyClient::Tokio(c) => runtime().block_on(c.batch_if(conditions, ops)),
            AnyClient::Smol(c) => smol::block_on(c.batch_if(conditions, ops)),
        }
    }

    /// Removes at most `limit` keys of `range`.
    pub fn clear_with(&self, range: KeyRange, reverse: bool, limit: Option<u64>) -> Result<(), CallError> {
        match self {
            AnyClient::Blocking(c) => c.clear_with(range, reverse, limit),
            AnyClient::Tokio(c) => runtime().block_on(c.clear_with(range, reverse, limit)),
            AnyClient::Smol(c) => smol::block_on(c.clear_with(range, reverse, limit)),
        }
    }

    /// Every entry of an iterator; after `seek_after` entries, seeks to `seek` if given.
    pub fn scan(&self, options: IterOptions, seek: Option<(usize, Bytes)>) -> Entries {
        // The same loop over three iterator types, `.await`ing on the async ones.
        macro_rules! collect {
            ($it:expr $(, $await:tt)?) => {{
                let mut it = $it;
                let mut out = Vec::new();
                loop {
                    if let Some((at, target)) = &seek
                        && out.len() == *at
                    {
                        it.seek(target);
                    }
                    match it.next()$(.$await)? {
                        Some(entry) => out.push(entry?),
                        None => return Ok(out),
                    }
                }
            }};
        }
        match self {
            AnyClient::Blocking(c) => collect!(c.iter(options)?),
            AnyClient::Tokio(c) => runtime().block_on(async { collect!(c.iter(options)?, await) }),
            AnyClient::Smol(c) => smol::block_on(async { collect!(c.iter(options)?, await) }),
        }
    }

    /// Starts a watch whose events a background reader passes to the returned receiver, so a
    /// test waits for them with a deadline whatever the adapter (a blocking watch blocks).
    pub fn watch(&self, options: WatchOptions) -> Result<AnyWatch, CallError> {
        Ok(match self {
            AnyClient::Blocking(c) => AnyWatch::blocking(c.watch(options)?),
            AnyClient::Tokio(c) => AnyWatch::tokio(c.watch(options)?),
            AnyClient::Smol(c) => AnyWatch::smol(c.watch(options)?),
        })
    }
}

/// The events of a watch of any adapter (see [`AnyClient::watch`]). The reader stops at the
/// first event after this is dropped, ending the watch.
pub struct AnyWatch {
    receiver: std::sync::mpsc::Receiver<Result<ChangeEvent, CallError>>,
}

/// Passes the events of an async watch to `events` until the receiver goes.
async fn forward(
    mut watch: impl futures_util::Stream<Item = Result<ChangeEvent, CallError>> + Unpin,
    events: std::sync::mpsc::Sender<Result<ChangeEvent, CallError>>,
) {
    while let Some(event) = watch.next().await {
        if events.send(event).is_err() {
            return;
        }
    }
}

impl AnyWatch {
    /// The events of a blocking client's watch, read on a thread of their own.
    pub fn blocking(watch: multilevel_blocking::Watch) -> Self {
        let (events, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for event in watch {
                if events.send(event).is_err() {
                    return;
                }
            }
        });
        Self { receiver }
    }

    /// The events of a tokio client's watch, read on [`runtime`].
    pub fn tokio(watch: multilevel_tokio::Watch) -> Self {
        let (events, receiver) = std::sync::mpsc::channel();
        runtime().spawn(forward(watch, events));
        Self { receiver }
    }

    /// The events of a smol client's watch, read on smol.
    pub fn smol(watch: multilevel_async_std::Watch) -> Self {
        let (events, receiver) = std::sync::mpsc::channel();
        smol::spawn(forward(watch, events)).detach();
        Self { receiver }
    }

    /// The next event, waiting at most `within`; `None` if none came.
    pub fn next_within(&self, within: std::time::Duration) -> Option<Result<ChangeEvent, CallError>> {
        self.receiver.recv_timeout(within).ok()
    }

    /// `n` events, each within `within` of the one before; panics naming how many came.
    pub fn take(&self, n: usize, within: std::time::Duration) -> Vec<ChangeEvent> {
        (0..n)
            .map(|i| match self.next_within(within) {
                Some(Ok(event)) => event,
                Some(Err(err)) => panic!("the watch failed after {i} of {n} events: {err}"),
                None => panic!("only {i} of {n} events came"),
            })
            .collect()
    }
}
