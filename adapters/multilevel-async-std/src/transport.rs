//! A transport: the two halves of an async byte stream.

use std::io;

use async_net::TcpStream;
#[cfg(unix)]
use async_net::unix::UnixStream;
use futures_io::{AsyncRead, AsyncWrite};

multilevel_proto::async_transport!(futures_io::AsyncRead, futures_io::AsyncWrite);

impl Transport {
    /// A transport over any stream (split into halves).
    pub fn new<S: AsyncRead + AsyncWrite + Send + Unpin + 'static>(stream: S) -> Self {
        let (reader, writer) = futures_lite::io::split(stream);
        Self { reader: Box::new(reader), writer: Box::new(writer) }
    }

    /// A transport over a TCP stream, with `TCP_NODELAY` on.
    pub fn tcp(stream: TcpStream) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        Ok(Self { reader: Box::new(stream.clone()), writer: Box::new(stream) })
    }

    /// A transport over a Unix socket.
    #[cfg(unix)]
    pub fn unix(stream: UnixStream) -> Self {
        Self { reader: Box::new(stream.clone()), writer: Box::new(stream) }
    }
}
