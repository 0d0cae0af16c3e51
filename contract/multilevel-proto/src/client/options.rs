//! What every adapter's client takes: protocol settings plus the reconnect policy.

use std::time::Duration;

use crate::backoff::Backoff;
use crate::client::ClientConfig;
use crate::message::SessionId;

/// How a client behaves, for the adapters' `Client` types.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Replay pending requests and resume iterators after a reconnect. Default off: pending
    /// work then fails with [`RequestError::ConnectionLost`](crate::RequestError). Either way
    /// the adapters connect again for later requests.
    pub retry: bool,
    /// Delays between connection attempts.
    pub backoff: Backoff,
    /// Fail requests not answered within this long. Default: wait forever.
    pub request_timeout: Option<Duration>,
    /// Protocol settings; when `None`, defaults with a random session id.
    pub protocol: Option<ClientConfig>,
    /// The token to present to a server that requires one (read it from a file or the
    /// environment, not from a command-line argument).
    pub token: Option<String>,
}

impl ClientOptions {
    /// These options with `retry` set.
    pub fn retry(mut self, retry: bool) -> Self {
        self.retry = retry;
        self
    }

    /// These options with a token to present.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// These options with a default per-request timeout.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// The protocol settings to start a [`Client`](crate::Client) with; `random_session` is
    /// used unless [`protocol`](Self::protocol) names a session.
    pub fn config(&self, random_session: SessionId) -> ClientConfig {
        // Never the no-replay session, which a store keeps no record for.
        let random_session = random_session.max(crate::message::NO_REPLAY_SESSION + 1);
        let mut config = self.protocol.clone().unwrap_or_else(|| ClientConfig::new(random_session));
        config.retry = self.retry;
        if self.request_timeout.is_some() {
            config.request_timeout = self.request_timeout;
        }
        if self.token.is_some() {
            config.token.clone_from(&self.token);
        }
        config
    }
}
