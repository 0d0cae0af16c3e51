//! In-process clients: the client API over a server in the same process, with no socket.

use multilevel_proto::ClientOptions;
use multilevel_proto::backend::Backend;

use crate::{Client, Server, Transport};

/// The size of each direction's in-memory pipe between an in-process client and its server.
const PIPE_BYTES: usize = 256 * 1024;

impl Client {
    /// A client of `server` in this process, over an in-memory pipe instead of a socket: the same
    /// API, semantics and failure handling as a remote client (sessions, iterator resumption),
    /// so a program can start embedded and move to a server or to etcd by changing this one
    /// line. Each connection is served by a task spawned on the current tokio runtime; other
    /// processes can share the same database through `server`'s `serve_*` methods at the same
    /// time. Must be called inside a tokio runtime.
    pub fn in_process<B: Backend>(server: &Server<B>, options: ClientOptions) -> Self {
        let server = server.clone();
        Self::new(
            move || {
                let (client_end, server_end) = tokio::io::duplex(PIPE_BYTES);
                let server = server.clone();
                tokio::spawn(async move { server.serve_stream(server_end).await });
                std::future::ready(Ok(Transport::new(client_end)))
            },
            options,
        )
    }

    /// A client of `backend` (e.g. an LMDB [`Store`](crate::Store) just opened) served in this
    /// process with the default server settings: [`in_process`](Self::in_process) of a new
    /// [`Server`]. Must be called inside a tokio runtime.
    pub fn embedded<B: Backend>(backend: B, options: ClientOptions) -> Self {
        Self::in_process(&Server::new(backend), options)
    }
}
