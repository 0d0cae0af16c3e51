//! A transport: the two halves of an async byte stream.

use std::io;

use async_net::TcpStream;
#[cfg(unix)]
use async_net::unix::UnixStream;
use futures_io::{AsyncRead, AsyncWrite};

/// The halves of one async byte stream, as a client's connector returns them.
pub struct Transport {
    /// Where bytes from the server come from.
    pub reader: Box<dyn AsyncRead + Unpin + Send>,
    /// Where bytes to the server go.
    pub writer: Box<dyn AsyncWrite + Unpin + Send>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport").finish_non_exhaustive()
    }
}

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
