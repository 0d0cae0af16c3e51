//! [`Serving`]: what every server adapter is configured with, whatever its runtime.

use multilevel_proto::backend::Backend;
use multilevel_proto::{Protocol, ServerConfig};

use crate::ServedConnection;
use crate::limit::{ConnectionLimit, ConnectionPermit, Refusal};

/// A server's configuration, the part every adapter shares: the backend served, the protocol
/// settings, the protocol spoken and the connection cap. An adapter's `Server` wraps one and
/// adds only its runtime's I/O (listeners, tasks or threads, shutdown). Cheap to clone; clones
/// share the connection count.
///
/// For each new transport, an adapter calls [`admit`](Self::admit), then either serves a
/// [`connection`](Self::connection) with the permit or writes the refusal's goodbye and closes.
#[derive(Clone)]
pub struct Serving<B: Backend> {
    backend: B,
    config: ServerConfig,
    protocol: Protocol,
    limit: ConnectionLimit,
}

impl<B: Backend> std::fmt::Debug for Serving<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serving")
            .field("config", &self.config)
            .field("protocol", &self.protocol)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Serving<B> {
    /// Serves `backend` with the protocol settings it calls for.
    pub fn new(backend: B) -> Self {
        let config = backend.server_config();
        Self::with_config(backend, config)
    }

    /// Serves `backend` with explicit protocol settings; keep `max_key_size` at or below what
    /// the backend accepts. multilevel's own protocol, at most
    /// [`ConnectionLimit::DEFAULT_MAX`] connections at once.
    pub fn with_config(backend: B, config: ServerConfig) -> Self {
        Self { backend, config, protocol: Protocol::Multilevel, limit: ConnectionLimit::default() }
    }

    /// Speaks `protocol` on every connection (default [`Protocol::Multilevel`]);
    /// [`Protocol::ManyLevel`] serves Node `many-level` guests.
    #[must_use]
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Caps the connections served at once (default [`ConnectionLimit::DEFAULT_MAX`]); past it,
    /// a new connection gets a goodbye saying so and is closed.
    #[must_use]
    pub fn with_max_connections(mut self, max: usize) -> Self {
        self.limit = self.limit.with_max(max);
        self
    }

    /// The backend served.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The protocol settings of every connection.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The protocol spoken.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The connection cap and count.
    pub fn limit(&self) -> &ConnectionLimit {
        &self.limit
    }

    /// Connections open right now.
    pub fn connections(&self) -> usize {
        self.limit.open()
    }

    /// Takes a place for a new connection, or the refusal to send it; see
    /// [`ConnectionLimit::admit`].
    pub fn admit(&self) -> Result<ConnectionPermit, Refusal> {
        self.limit.admit(self.protocol)
    }

    /// The connection to serve on a transport admitted with `permit`.
    pub fn connection(&self, permit: ConnectionPermit) -> ServedConnection<B::Connection> {
        ServedConnection::with_protocol(&self.backend, self.config.clone(), permit, self.protocol)
    }
}

/// Writes the configuration methods every adapter's `Server` shares, over its field `serving`
/// (a [`Serving`]): `with_protocol`, `with_max_connections`, `serving`, `store` and
/// `connections`. Use it inside `impl<B: Backend> Server<B> { .. }`; the adapter writes its
/// I/O. With `constructors`, it also writes `new` and `with_config` for a server built by
/// `Self::from_serving(serving)` (an adapter whose constructors need more, such as a spawner,
/// writes its own).
#[macro_export]
macro_rules! serving_methods {
    (constructors) => {
        /// A server for `store`, with the protocol settings the store calls for.
        pub fn new(store: B) -> Self {
            Self::from_serving($crate::Serving::new(store))
        }

        /// A server with explicit protocol settings; keep `max_key_size` at or below what the
        /// store accepts.
        pub fn with_config(store: B, config: $crate::__proto::ServerConfig) -> Self {
            Self::from_serving($crate::Serving::with_config(store, config))
        }

        $crate::serving_methods!();
    };
    () => {
        /// Speaks `protocol` on every connection (default
        /// [`Protocol::Multilevel`](multilevel_proto::Protocol::Multilevel));
        /// [`Protocol::ManyLevel`](multilevel_proto::Protocol::ManyLevel) serves Node
        /// `many-level` guests.
        #[must_use]
        pub fn with_protocol(self, protocol: $crate::__proto::Protocol) -> Self {
            Self { serving: self.serving.with_protocol(protocol), ..self }
        }

        /// Caps the connections served at once, over every transport (default
        /// [`ConnectionLimit::DEFAULT_MAX`](multilevel_serve::ConnectionLimit::DEFAULT_MAX));
        /// past it, a new connection gets a `TooManyConnections` goodbye and is closed.
        #[must_use]
        pub fn with_max_connections(self, max: usize) -> Self {
            Self { serving: self.serving.with_max_connections(max), ..self }
        }

        /// What this server serves and how: backend, settings, protocol, connection cap.
        pub fn serving(&self) -> &$crate::Serving<B> {
            &self.serving
        }

        /// The store served.
        pub fn store(&self) -> &B {
            self.serving.backend()
        }

        /// Open connections right now.
        pub fn connections(&self) -> usize {
            self.serving.connections()
        }
    };
}
