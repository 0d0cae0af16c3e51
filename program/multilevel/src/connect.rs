//! Connecting a client command to the server: one attempt (each address in turn), bounded by
//! `--timeout`, and errors worded for a person at a terminal from the client's typed errors.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use multilevel_proto::{ConnectionError, Endpoints, RemoteError, StoreError};
use multilevel_tokio::{
    BatchOp, Client, ClientOptions, ConnectionState, Error, ErrorCode, ErrorKind, Iter, IterOptions, KeyRange,
    RequestError, Sublevel, Transport, Watch, WatchOptions,
};

use crate::Failure;
use crate::args::{ClientSetup, ConnectArgs, Target};
use crate::encoding::text;

/// How a client command proves who it is and protects the connection.
#[derive(Default)]
pub(crate) struct Security {
    token: Option<String>,
    tls: Option<(Arc<rustls::ClientConfig>, Option<String>)>,
}

impl Security {
    /// From `--token-file` (else `$MULTILEVEL_TOKEN`), `--tls-ca` and `--tls-name`.
    pub(crate) fn from_flags(connect: &ConnectArgs) -> Result<Self, Failure> {
        let token = match &connect.token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|err| Failure::new(format!("cannot read the token file {}: {err}", path.display())))?
                    .trim()
                    .to_owned(),
            ),
            None => std::env::var("MULTILEVEL_TOKEN").ok().map(|t| t.trim().to_owned()),
        };
        let tls = match &connect.tls_ca {
            Some(ca) => Some((
                multilevel_tokio::tls::client_config(ca, None).map_err(|err| Failure::new(err.to_string()))?,
                connect.tls_name.clone(),
            )),
            None => None,
        };
        Ok(Self { token: token.filter(|t| !t.is_empty()), tls })
    }
}

/// How far the connector's last attempt got, which the client's state does not say: whether a
/// TCP or Unix connection was made (something listens there), and whether TLS failed after it.
#[derive(Debug, Clone)]
enum Reached {
    /// The connection to this address was made.
    Answered(String),
    /// The connection to this address was made, and its TLS handshake failed.
    TlsFailed { addr: String, message: String },
}

/// Where the connector reports how far it got.
#[derive(Default)]
struct Progress(Mutex<Option<Reached>>);

impl Progress {
    fn set(&self, reached: Option<Reached>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = reached;
    }

    fn get(&self) -> Option<Reached> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Where a command's keys live: the whole database, or a sublevel (`--sublevel`), whose keys
/// are given and shown without its prefix.
#[derive(Clone)]
pub(crate) enum Scope {
    /// The whole database.
    Root(Client),
    /// A sublevel, nested as many times as `--sublevel` was given.
    Sublevel(Sublevel),
}

/// The same call on the client or the sublevel.
macro_rules! scoped {
    ($scope:expr, $db:ident => $call:expr) => {
        match $scope {
            Scope::Root($db) => $call,
            Scope::Sublevel($db) => $call,
        }
    };
}

impl Scope {
    pub(crate) async fn get(&self, key: &[u8]) -> Result<Option<Bytes>, Error> {
        scoped!(self, db => db.get(key).await)
    }

    pub(crate) async fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Bytes>>, Error> {
        scoped!(self, db => db.get_many(keys).await)
    }

    pub(crate) async fn put(&self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        scoped!(self, db => db.put(key, value).await)
    }

    pub(crate) async fn del(&self, key: &[u8]) -> Result<(), Error> {
        scoped!(self, db => db.del(key).await)
    }

    pub(crate) async fn increment(&self, key: &[u8], by: i64) -> Result<i64, Error> {
        scoped!(self, db => db.increment(key, by).await)
    }

    pub(crate) async fn clear_with(&self, range: KeyRange, reverse: bool, limit: Option<u64>) -> Result<(), Error> {
        scoped!(self, db => db.clear_with(range, reverse, limit).await)
    }

    pub(crate) async fn batch(&self, ops: Vec<BatchOp>) -> Result<(), Error> {
        scoped!(self, db => db.batch(ops).await)
    }

    pub(crate) fn iter(&self, options: IterOptions) -> Result<Iter, Error> {
        scoped!(self, db => db.iter(options))
    }

    pub(crate) fn watch(&self, options: WatchOptions) -> Result<Watch, Error> {
        scoped!(self, db => db.watch(options))
    }
}

/// A connected client, and what its errors should say.
pub(crate) struct Connection {
    /// The client; every request bounded by the timeout. With retry (`--retry`, the default of
    /// the long transfers and of several addresses) a lost connection is made again, to the
    /// same server or the next: pending writes are replayed and applied at most once, an
    /// iterator resumes exactly after its last entry. Without, a lost connection fails the
    /// command.
    pub(crate) client: Client,
    /// Where the command's keys live.
    pub(crate) db: Scope,
    target: Target,
    timeout: Duration,
    /// Whether the client reconnects and carries on when its connection is lost.
    retry: bool,
    /// Whether a token was presented: a refused write then may be the token's doing.
    with_token: bool,
}

impl Connection {
    /// Connects to where `setup` says, waiting at most `--timeout` for the connection and the
    /// handshake, and opens the sublevel it names (nested, outermost first). Fails when the
    /// first attempt fails (after trying every address), retry or not: retry is for carrying
    /// on after a connection that worked.
    pub(crate) async fn open(setup: &ClientSetup<'_>) -> Result<Self, Failure> {
        let (connect, sublevels, retry) = (setup.connect, setup.sublevels, setup.retry);
        let (target, timeout) = (connect.target(), connect.timeout);
        let security = Security::from_flags(connect)?;
        let with_token = security.token.is_some();
        let with_tls = security.tls.is_some();
        let progress = Arc::new(Progress::default());
        // With retry, a lost connection is made again (to the next of several servers of one
        // database, or to the same one restarted): requests replayed at most once, iterators
        // resumed exactly.
        let mut options = ClientOptions::default().request_timeout(timeout).retry(retry);
        options.token = security.token;
        let client = match &target {
            Target::Tcp(addrs) => {
                let endpoints = Arc::new(Mutex::new(Endpoints::new(addrs.clone())));
                let (progress, tls) = (Arc::clone(&progress), security.tls);
                // What `Client::tcp_any` does (each attempt tries the addresses in turn,
                // starting after the one that connected last), with TLS and progress reports.
                Client::new(
                    move || {
                        let (endpoints, progress, tls) = (Arc::clone(&endpoints), Arc::clone(&progress), tls.clone());
                        async move {
                            progress.set(None);
                            Endpoints::connect_any(&endpoints, |addr: String| {
                                let (progress, tls) = (Arc::clone(&progress), tls.clone());
                                async move { connect_tcp(addr, &progress, tls).await }
                            })
                            .await
                        }
                    },
                    options,
                )
            }
            #[cfg(unix)]
            Target::Unix(path) => {
                let path = path.clone();
                let progress = Arc::clone(&progress);
                Client::new(
                    move || {
                        let (path, progress) = (path.clone(), Arc::clone(&progress));
                        async move {
                            progress.set(None);
                            let stream = tokio::net::UnixStream::connect(&path).await?;
                            progress.set(Some(Reached::Answered(format!("unix:{}", path.display()))));
                            Ok(Transport::unix(stream))
                        }
                    },
                    options,
                )
            }
            #[cfg(not(unix))]
            Target::Unix(_) => return Err(Failure::new("Unix sockets are not supported on this platform")),
        };
        let mut state = client.watch_state();
        let connected = async {
            match state.wait_for(|s| !matches!(s, ConnectionState::Connecting)).await.as_deref() {
                Ok(ConnectionState::Connected) => Ok(()),
                Ok(ConnectionState::Disconnected(err)) => {
                    Err(first_attempt_failed(&target, err, progress.get(), with_token, with_tls))
                }
                _ => Err(format!("cannot reach {target}: the client was closed")),
            }
        };
        let outcome = match tokio::time::timeout(timeout, connected).await {
            Ok(outcome) => outcome,
            Err(_) => match progress.get() {
                Some(Reached::Answered(addr)) => Err(format!(
                    "{addr} accepted the connection but did not complete a multilevel handshake within {}",
                    seconds(timeout)
                )),
                _ => Err(format!("cannot reach {target}: no connection within {}", seconds(timeout))),
            },
        };
        if let Err(message) = outcome {
            client.close();
            return Err(Failure::new(message));
        }
        let db = match sublevels.split_first() {
            None => Scope::Root(client.clone()),
            Some((first, rest)) => {
                Scope::Sublevel(rest.iter().fold(client.sublevel(first), |outer, name| outer.sublevel(name)))
            }
        };
        Ok(Self { client, db, target, timeout, retry, with_token })
    }

    /// The message for a failed request: connection trouble names the server; the server's
    /// own refusals say what was refused.
    pub(crate) fn failure(&self, err: Error) -> Failure {
        let target = &self.target;
        Failure::new(match (err.kind(), &err) {
            (ErrorKind::TimedOut, _) if self.retry && !self.connected() => format!(
                "{target} did not answer within {}: the connection was lost and could not be made again",
                seconds(self.timeout)
            ),
            (ErrorKind::TimedOut, _) => format!("{target} did not answer within {}", seconds(self.timeout)),
            (ErrorKind::ConnectionLost, _) if self.retry => format!("lost the connection to {target}"),
            (ErrorKind::ConnectionLost, _) => {
                format!("lost the connection to {target} (with --retry the command reconnects and carries on)")
            }
            (ErrorKind::Unreachable, _) => match err.connect_failure() {
                Some(failure) => format!("cannot reach {target}: {}", safe(&failure.message)),
                None => format!("cannot reach {target}"),
            },
            (ErrorKind::NotMultilevel, Error::Request(RequestError::NotMultilevel(detail))) => {
                format!("{target} is not a multilevel server: {}", safe(detail))
            }
            (ErrorKind::Incompatible, Error::Request(RequestError::Incompatible(message))) => {
                format!("{target} is not a compatible multilevel server: {}", safe(message))
            }
            (ErrorKind::Unauthenticated, _) => token_refused(target, self.with_token),
            (ErrorKind::TooLarge, Error::Issue(multilevel_proto::IssueError::KeyTooLarge { len, max })) => {
                format!("key too large: {len} bytes (max {max})")
            }
            (ErrorKind::TooLarge, Error::Issue(multilevel_proto::IssueError::TooLarge { len, max })) => {
                format!("request too large: {len} bytes (max {max})")
            }
            _ => match err.remote() {
                Some(remote) => self.remote(remote),
                None => safe(&err.to_string()),
            },
        })
    }

    /// Where the server is.
    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    /// Whether the client is connected now.
    fn connected(&self) -> bool {
        *self.client.watch_state().borrow() == ConnectionState::Connected
    }

    /// The message for an error the server sent.
    fn remote(&self, remote: &RemoteError) -> String {
        let message = &safe(&remote.message);
        match remote.code {
            // The server says which: its own error for a read-only database (`serve
            // --readonly`), another message for a connection whose token may only read.
            ErrorCode::ReadOnly if *remote == StoreError::ReadOnly.to_remote() => {
                "write refused: the database is served read-only".to_owned()
            }
            ErrorCode::ReadOnly => format!("write refused: {message}"),
            ErrorCode::KeyTooLarge => format!("key too large: {message}"),
            ErrorCode::TooLarge => format!("too large: {message}"),
            ErrorCode::Rejected => format!("write rejected by the server: {message}"),
            ErrorCode::StorageFull => format!("the database is full: {message}"),
            // The server names the sublevel and the key or range; say how to stay inside it.
            ErrorCode::OutOfScope => format!(
                "refused: {message}; work inside that sublevel with --sublevel (once per nested name: `users/admins` \
                 is --sublevel users --sublevel admins)"
            ),
            ErrorCode::NotANumber => message.clone(),
            code => format!("server error ({code:?}): {message}"),
        }
    }

    /// Runs `request` with the timeout (which also bounds what the client does not, such as
    /// waiting for an iterator's next batch); a timeout is [`RequestError::TimedOut`].
    pub(crate) async fn call<T>(&self, request: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        match tokio::time::timeout(self.timeout, request).await {
            Ok(result) => result,
            Err(_) => Err(Error::Request(RequestError::TimedOut)),
        }
    }

    /// [`call`](Self::call), with errors mapped by [`failure`](Self::failure).
    pub(crate) async fn run<T>(&self, request: impl Future<Output = Result<T, Error>>) -> Result<T, Failure> {
        self.call(request).await.map_err(|err| self.failure(err))
    }

    /// Says goodbye to the server, waiting briefly for the goodbye to go out.
    pub(crate) async fn close(self) {
        let mut state = self.client.watch_state();
        self.client.close();
        let _ = tokio::time::timeout(Duration::from_secs(1), state.wait_for(|s| *s == ConnectionState::Closed)).await;
    }
}

/// Connects to one TCP address, with TLS when asked, reporting how far it got.
async fn connect_tcp(
    addr: String,
    progress: &Progress,
    tls: Option<(Arc<rustls::ClientConfig>, Option<String>)>,
) -> std::io::Result<Transport> {
    let stream = tokio::net::TcpStream::connect(addr.as_str()).await?;
    progress.set(Some(Reached::Answered(addr.clone())));
    match tls {
        None => Transport::tcp(stream),
        Some((config, name)) => {
            // Verify the host of the address unless told another name.
            let host = addr.rsplit_once(':').map_or(addr.as_str(), |(host, _)| host);
            let name = name.as_deref().unwrap_or(host.trim_matches(['[', ']']));
            Transport::tls(stream, config, name).await.inspect_err(|err| {
                progress.set(Some(Reached::TlsFailed { addr: addr.clone(), message: err.to_string() }));
            })
        }
    }
}

/// The message for a first attempt to connect that failed with `err`.
fn first_attempt_failed(
    target: &Target,
    err: &ConnectionError,
    reached: Option<Reached>,
    with_token: bool,
    with_tls: bool,
) -> String {
    // The address that answered, for what went wrong after the connection was made.
    let peer = match &reached {
        Some(Reached::Answered(addr) | Reached::TlsFailed { addr, .. }) => addr.clone(),
        None => target.to_string(),
    };
    // A TLS server answers a plain client with an alert and closes: it looks like anything else
    // that is not a multilevel server.
    let hint = if with_tls { "" } else { "; if it serves TLS, connect with --tls-ca" };
    match err {
        ConnectionError::Connect(failure) => match reached {
            Some(Reached::TlsFailed { addr, message }) => {
                format!("the TLS handshake with {addr} failed: {}", safe(&message))
            }
            _ => format!("cannot reach {target}: {}", safe(&failure.message)),
        },
        ConnectionError::NotMultilevel(detail) => format!("{peer} is not a multilevel server: {}{hint}", safe(detail)),
        ConnectionError::Unauthenticated(_) => token_refused(&peer, with_token),
        ConnectionError::Incompatible(message) => {
            format!("{peer} is not a compatible multilevel server: {}", safe(message))
        }
        ConnectionError::Frame(_) | ConnectionError::Decode(_) | ConnectionError::Protocol(_) => {
            format!("{peer} is not a multilevel server ({}){hint}", safe(&err.to_string()))
        }
        ConnectionError::KeepaliveTimeout(_) => {
            format!("{peer} accepted the connection but sent no multilevel greeting: not a multilevel server?")
        }
        ConnectionError::TransportClosed => {
            format!("{peer} is not a multilevel server: it closed the connection without a multilevel greeting{hint}")
        }
        ConnectionError::Goodbye(goodbye) => format!("{peer} closed the connection: {}", safe(&goodbye.message)),
        err => format!("{peer} did not complete the handshake: {}", safe(&err.to_string())),
    }
}

/// The message for a refused (or missing) token.
fn token_refused(target: &dyn fmt::Display, with_token: bool) -> String {
    if with_token {
        format!("the token was refused by {target}")
    } else {
        format!("{target} requires a token: give it with --token-file FILE or $MULTILEVEL_TOKEN")
    }
}

/// Text that came from the server, safe to print: control characters escaped (see [`text`]).
fn safe(message: &str) -> String {
    text(message.as_bytes())
}

/// A duration as seconds, e.g. `10s` or `0.5s`.
fn seconds(duration: Duration) -> String {
    format!("{}s", duration.as_secs_f64())
}
