//! In-process clients: the client API over a server in the same process, with no socket.

use multilevel_proto::ClientOptions;
use multilevel_proto::backend::Backend;

use crate::{Client, Server, Transport};

impl Client {
    /// A client of `server` in this process, over a pair of OS pipes instead of a socket: the
    /// same API, semantics and failure handling as a remote client (sessions, iterator
    /// resumption), so a program can start embedded and move to a server or to etcd by changing
    /// this one line. Each connection is served by the server's own threads, as a socket's
    /// would be; other processes can share the same database through `server`'s `serve_*`
    /// methods at the same time.
    pub fn in_process<B: Backend>(server: &Server<B>, options: ClientOptions) -> Self {
        let server = server.clone();
        Self::new(
            move || {
                let (from_server, to_client) = std::io::pipe()?;
                let (from_client, to_server) = std::io::pipe()?;
                server.spawn_connection(Transport::new(from_client, to_client));
                Ok(Transport::new(from_server, to_server))
            },
            options,
        )
    }

    /// A client of `backend` (e.g. an LMDB [`Store`](crate::Store) just opened) served in this
    /// process with the default server settings: [`in_process`](Self::in_process) of a new
    /// [`Server`].
    pub fn embedded<B: Backend>(backend: B, options: ClientOptions) -> Self {
        Self::in_process(&Server::new(backend), options)
    }
}
