//! In-process clients: the client API over a server in the same process, with no socket.

use futures_lite::io::{AsyncRead, AsyncWrite};
use multilevel_proto::ClientOptions;
use multilevel_proto::backend::Backend;

use crate::{Client, Server, Spawn, Transport};

/// The size of each direction's in-memory pipe between an in-process client and its server.
const PIPE_BYTES: usize = 256 * 1024;

impl Client {
    /// A client of `server` in this process, over in-memory pipes instead of a socket: the same
    /// API, semantics and failure handling as a remote client (sessions, iterator resumption),
    /// so a program can start embedded and move to a server or to etcd by changing this one
    /// line. Each connection is served by a task on `server`'s spawner; the client's driver
    /// runs on `spawner`. Other processes can share the same database through `server`'s
    /// `serve_*` methods at the same time.
    pub fn in_process<B: Backend>(server: &Server<B>, options: ClientOptions, spawner: impl Spawn + Clone) -> Self {
        let server = server.clone();
        let serve_on = spawner.clone();
        Self::new(
            move || {
                let (from_server, to_client) = piper::pipe(PIPE_BYTES);
                let (from_client, to_server) = piper::pipe(PIPE_BYTES);
                let server = server.clone();
                serve_on.spawn(Box::pin(async move { server.serve_halves(from_client, to_client).await }));
                std::future::ready(Ok(transport(from_server, to_server)))
            },
            options,
            spawner,
        )
    }

    /// A client of `backend` (e.g. an LMDB [`Store`](crate::Store) just opened) served in this
    /// process with the default server settings: [`in_process`](Self::in_process) of a new
    /// [`Server`] whose tasks run on `spawner` too.
    pub fn embedded<B: Backend>(backend: B, options: ClientOptions, spawner: impl Spawn + Clone) -> Self {
        Self::in_process(&Server::new(backend, spawner.clone()), options, spawner)
    }
}

fn transport(
    reader: impl AsyncRead + Unpin + Send + 'static,
    writer: impl AsyncWrite + Unpin + Send + 'static,
) -> Transport {
    Transport { reader: Box::new(reader), writer: Box::new(writer) }
}
