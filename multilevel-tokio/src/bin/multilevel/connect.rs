//! Connecting a client command to the server: one attempt, bounded by `--timeout`, and errors
//! worded for a person at a terminal.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use multilevel_proto::RequestError;
use multilevel_tokio::{Client, ClientOptions, ConnectionState, Error, Transport};
use tokio::sync::Notify;

use crate::Failure;

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
    pub(crate) fn from_flags(global: &crate::args::Global) -> Result<Self, Failure> {
        let token = match &global.token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|err| Failure::new(format!("cannot read the token file {}: {err}", path.display())))?
                    .trim()
                    .to_owned(),
            ),
            None => std::env::var("MULTILEVEL_TOKEN").ok().map(|t| t.trim().to_owned()),
        };
        let tls = match &global.tls_ca {
            Some(ca) => Some((
                multilevel_tokio::tls::client_config(ca, None).map_err(|err| Failure::new(err.to_string()))?,
                global.tls_name.clone(),
            )),
            None => None,
        };
        Ok(Self { token: token.filter(|t| !t.is_empty()), tls })
    }
}

/// The last error of the connector, which the client itself only logs.
#[derive(Default)]
struct ConnectFailures {
    last: Mutex<Option<String>>,
    notify: Notify,
}

impl ConnectFailures {
    fn report(&self, err: &std::io::Error) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(err.to_string());
        self.notify.notify_one();
    }

    /// Waits for the first failure to connect and returns its message.
    async fn first(&self) -> String {
        self.notify.notified().await;
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_default()
    }
}

/// A connected client, and what its errors should say.
pub(crate) struct Connection {
    /// The client; retry off, every request bounded by the timeout.
    pub(crate) client: Client,
    target: Target,
    timeout: Duration,
}

impl Connection {
    /// Connects to `target`, waiting at most `timeout` for the connection and the handshake.
    /// Fails at the first refused connection rather than retrying.
    pub(crate) async fn open(target: Target, timeout: Duration, security: Security) -> Result<Self, Failure> {
        let failures = Arc::new(ConnectFailures::default());
        let mut options = ClientOptions::default().request_timeout(timeout);
        options.token = security.token;
        let report = Arc::clone(&failures);
        let client = match &target {
            Target::Tcp(addr) => {
                let addr = addr.clone();
                Client::new(
                    move || {
                        let (addr, report, tls) = (addr.clone(), Arc::clone(&report), security.tls.clone());
                        async move {
                            let stream = tokio::net::TcpStream::connect(addr.as_str())
                                .await
                                .inspect_err(|e| report.report(e))?;
                            match tls {
                                None => Transport::tcp(stream),
                                Some((config, name)) => {
                                    // Verify the host of the address unless told another name.
                                    let host = addr.rsplit_once(':').map_or(addr.as_str(), |(host, _)| host);
                                    let name = name.as_deref().unwrap_or(host.trim_matches(['[', ']']));
                                    Transport::tls(stream, config, name).await.inspect_err(|e| report.report(e))
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
                            let stream =
                                tokio::net::UnixStream::connect(path).await.inspect_err(|e| report.report(e))?;
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
                    Ok(ConnectionState::Disconnected(err)) => Err(err.to_string()),
                    _ => Err("the client was closed".to_owned()),
                },
                message = failures.first() => Err(message),
            }
        };
        let outcome = match tokio::time::timeout(timeout, connected).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no connection within {}", seconds(timeout))),
        };
        match outcome {
            Ok(()) => Ok(Self { client, target, timeout }),
            Err(message) => {
                client.close();
                Err(Failure::new(format!("cannot reach {target}: {message}")))
            }
        }
    }

    /// The message for a failed request: connection trouble names the server; the server's
    /// own refusals are shown as they came.
    pub(crate) fn failure(&self, err: Error) -> Failure {
        match err {
            Error::Request(RequestError::TimedOut) => {
                Failure::new(format!("cannot reach {}: no answer within {}", self.target, seconds(self.timeout)))
            }
            Error::Request(
                err @ (RequestError::ConnectionLost | RequestError::Incompatible(_) | RequestError::Unauthenticated(_)),
            ) => Failure::new(format!("cannot reach {}: {err}", self.target)),
            err => Failure::new(err.to_string()),
        }
    }

    /// Runs `request` with the timeout (which also bounds what the client does not, such as
    /// waiting for an iterator's next batch), mapping errors with [`failure`](Self::failure).
    pub(crate) async fn run<T>(&self, request: impl Future<Output = Result<T, Error>>) -> Result<T, Failure> {
        match tokio::time::timeout(self.timeout, request).await {
            Ok(result) => result.map_err(|err| self.failure(err)),
            Err(_) => Err(self.failure(Error::Request(RequestError::TimedOut))),
        }
    }

    /// Says goodbye to the server, waiting briefly for the goodbye to go out.
    pub(crate) async fn close(self) {
        let mut state = self.client.watch_state();
        self.client.close();
        let _ = tokio::time::timeout(Duration::from_secs(1), state.wait_for(|s| *s == ConnectionState::Closed)).await;
    }
}

/// A duration as seconds, e.g. `10s` or `0.5s`.
fn seconds(duration: Duration) -> String {
    format!("{}s", duration.as_secs_f64())
}
