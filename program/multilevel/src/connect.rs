//! Connecting a client command to the server: one attempt, bounded by `--timeout`, and errors
//! worded for a person at a terminal.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use multilevel_proto::{ConnectionError, ErrorCode, IssueError, RemoteError, RequestError};
use multilevel_tokio::{Client, ClientOptions, ConnectionState, Error, Transport};
use tokio::sync::Notify;

use crate::Failure;
use crate::args::ConnectArgs;
use crate::encoding::text;

/// Where the server is.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A TCP address, `host:port`.
    Tcp(String),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp(addr) => f.write_str(addr),
            Target::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

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

/// Where the connector got to, which the client itself only logs: whether anything answered,
/// and the last failure.
#[derive(Default)]
struct ConnectProgress {
    /// The TCP or Unix connection was made: something listens at the address.
    answered: AtomicBool,
    /// The last failure of the connector.
    last: Mutex<Option<ConnectorFailure>>,
    notify: Notify,
}

/// How the connector failed.
#[derive(Clone)]
enum ConnectorFailure {
    /// No connection was made: nothing answered.
    Unreachable(String),
    /// The connection was made but the TLS handshake failed.
    Tls(String),
}

impl ConnectProgress {
    fn report(&self, failure: ConnectorFailure) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(failure);
        self.notify.notify_one();
    }

    /// Waits for the first failure to connect and returns it.
    async fn first(&self) -> ConnectorFailure {
        self.notify.notified().await;
        self.reported().unwrap_or_else(|| ConnectorFailure::Unreachable("the connection failed".into()))
    }

    /// The last failure reported, if any.
    fn reported(&self) -> Option<ConnectorFailure> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl ConnectorFailure {
    /// The message for this failure to connect to `target`.
    fn message(&self, target: &Target) -> String {
        match self {
            ConnectorFailure::Unreachable(message) => format!("cannot reach {target}: {}", safe(message)),
            ConnectorFailure::Tls(message) => format!("the TLS handshake with {target} failed: {}", safe(message)),
        }
    }
}

/// A connected client, and what its errors should say.
pub(crate) struct Connection {
    /// The client; retry off, every request bounded by the timeout.
    pub(crate) client: Client,
    target: Target,
    timeout: Duration,
    /// Whether a token was presented: a refused write then may be the token's doing.
    with_token: bool,
}

impl Connection {
    /// Connects to where `connect` says, waiting at most `--timeout` for the connection and
    /// the handshake. Fails at the first refused connection rather than retrying.
    pub(crate) async fn open(connect: &ConnectArgs) -> Result<Self, Failure> {
        let (target, timeout) = (connect.target(), connect.timeout);
        let security = Security::from_flags(connect)?;
        let with_token = security.token.is_some();
        let with_tls = security.tls.is_some();
        let progress = Arc::new(ConnectProgress::default());
        let mut options = ClientOptions::default().request_timeout(timeout);
        options.token = security.token;
        let report = Arc::clone(&progress);
        let client = match &target {
            Target::Tcp(addr) => {
                let addr = addr.clone();
                Client::new(
                    move || {
                        let (addr, report, tls) = (addr.clone(), Arc::clone(&report), security.tls.clone());
                        async move {
                            let stream = tokio::net::TcpStream::connect(addr.as_str())
                                .await
                                .inspect_err(|e| report.report(ConnectorFailure::Unreachable(e.to_string())))?;
                            report.answered.store(true, Ordering::SeqCst);
                            match tls {
                                None => Transport::tcp(stream),
                                Some((config, name)) => {
                                    // Verify the host of the address unless told another name.
                                    let host = addr.rsplit_once(':').map_or(addr.as_str(), |(host, _)| host);
                                    let name = name.as_deref().unwrap_or(host.trim_matches(['[', ']']));
                                    Transport::tls(stream, config, name)
                                        .await
                                        .inspect_err(|e| report.report(ConnectorFailure::Tls(e.to_string())))
                                }
                            }
                        }
                    },
                    options,
                )
            }
            #[cfg(unix)]
            Target::Unix(path) => {
                let path = path.clone();
                Client::new(
                    move || {
                        let (path, report) = (path.clone(), Arc::clone(&report));
                        async move {
                            let stream = tokio::net::UnixStream::connect(path)
                                .await
                                .inspect_err(|e| report.report(ConnectorFailure::Unreachable(e.to_string())))?;
                            report.answered.store(true, Ordering::SeqCst);
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
            tokio::select! {
                state = state.wait_for(|s| !matches!(s, ConnectionState::Connecting)) => match state.as_deref() {
                    Ok(ConnectionState::Connected) => Ok(()),
                    // A client that reports a failed connect in its state too: the connector's
                    // own report says more (whether anything answered).
                    Ok(ConnectionState::Disconnected(err)) => Err(match progress.reported() {
                        Some(failure) => failure.message(&target),
                        None => handshake_failure(&target, err, with_token, with_tls),
                    }),
                    _ => Err(format!("cannot reach {target}: the client was closed")),
                },
                failure = progress.first() => Err(failure.message(&target)),
            }
        };
        let outcome = match tokio::time::timeout(timeout, connected).await {
            Ok(outcome) => outcome,
            Err(_) if progress.answered.load(Ordering::SeqCst) => Err(format!(
                "{target} accepted the connection but did not complete a multilevel handshake within {}",
                seconds(timeout)
            )),
            Err(_) => Err(format!("cannot reach {target}: no connection within {}", seconds(timeout))),
        };
        match outcome {
            Ok(()) => Ok(Self { client, target, timeout, with_token }),
            Err(message) => {
                client.close();
                Err(Failure::new(message))
            }
        }
    }

    /// The message for a failed request: connection trouble names the server; the server's
    /// own refusals say what was refused.
    pub(crate) fn failure(&self, err: Error) -> Failure {
        let target = &self.target;
        Failure::new(match err {
            Error::Request(RequestError::TimedOut) => {
                format!("{target} did not answer within {}", seconds(self.timeout))
            }
            Error::Request(RequestError::ConnectionLost) => format!("lost the connection to {target}"),
            Error::Request(RequestError::Incompatible(message)) => {
                format!("{target} is not a compatible multilevel server: {}", safe(&message))
            }
            Error::Request(RequestError::Unauthenticated(_)) => token_refused(target, self.with_token),
            Error::Request(RequestError::Remote(remote)) => self.remote(&remote),
            Error::Issue(IssueError::KeyTooLarge { len, max }) => format!("key too large: {len} bytes (max {max})"),
            Error::Issue(IssueError::TooLarge { len, max }) => {
                format!("request too large: {len} bytes (max {max})")
            }
            err => safe(&err.to_string()),
        })
    }

    /// The message for an error the server sent.
    fn remote(&self, remote: &RemoteError) -> String {
        let message = &safe(&remote.message);
        match remote.code {
            // The server sends the same code for a read-only token and a read-only database.
            // Without a token it cannot be the token (a server with tokens lets nobody in
            // without one); with one, say what we know.
            ErrorCode::ReadOnly if message.contains("token") => format!("write refused: {message}"),
            ErrorCode::ReadOnly if self.with_token => {
                "write refused: read-only access (the token may only read, or the server was \
                 started with --readonly)"
                    .to_owned()
            }
            ErrorCode::ReadOnly => "write refused: the database is served read-only".to_owned(),
            ErrorCode::KeyTooLarge => format!("key too large: {message}"),
            ErrorCode::TooLarge => format!("too large: {message}"),
            ErrorCode::Rejected => format!("write rejected by the server: {message}"),
            ErrorCode::StorageFull => format!("the database is full: {message}"),
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

/// The message for a connection given up during the handshake, when something answered.
fn handshake_failure(target: &Target, err: &ConnectionError, with_token: bool, with_tls: bool) -> String {
    // A TLS server answers a plain client with an alert and closes: it looks like anything else
    // that is not a multilevel server.
    let hint = if with_tls { "" } else { "; if it serves TLS, connect with --tls-ca" };
    match err {
        ConnectionError::Unauthenticated(_) => token_refused(target, with_token),
        ConnectionError::Incompatible(message) if message.contains("not a multilevel server") => {
            format!("{target} is not a multilevel server{hint}")
        }
        ConnectionError::Incompatible(message) => {
            format!("{target} is not a compatible multilevel server: {}", safe(message))
        }
        ConnectionError::Frame(_) | ConnectionError::Decode(_) | ConnectionError::Protocol(_) => {
            format!("{target} is not a multilevel server ({}){hint}", safe(&err.to_string()))
        }
        ConnectionError::KeepaliveTimeout(_) => {
            format!("{target} accepted the connection but sent no multilevel greeting: not a multilevel server?")
        }
        ConnectionError::TransportClosed => {
            format!("{target} is not a multilevel server: it closed the connection without a multilevel greeting{hint}")
        }
        ConnectionError::Goodbye(goodbye) => format!("{target} closed the connection: {}", safe(&goodbye.message)),
        // Clients that name a peer that is not a multilevel server in an error of its own.
        err if err.to_string().contains("not a multilevel server") => {
            let shown = err.to_string();
            match shown.split_once("not a multilevel server: ") {
                Some((_, detail)) => format!("{target} is not a multilevel server: {}{hint}", safe(detail)),
                None => format!("{target} is not a multilevel server ({}){hint}", safe(&shown)),
            }
        }
        err => format!("{target} did not complete the handshake: {}", safe(&err.to_string())),
    }
}

/// The message for a refused (or missing) token.
fn token_refused(target: &Target, with_token: bool) -> String {
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
