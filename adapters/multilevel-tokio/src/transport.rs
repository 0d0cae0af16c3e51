//! A transport: the two halves of an async byte stream.

use std::io;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
#[cfg(unix)]
use tokio::net::UnixStream;

multilevel_proto::async_transport!(tokio::io::AsyncRead, tokio::io::AsyncWrite);

impl Transport {
    /// A transport over any stream (split into halves).
    pub fn new<S: AsyncRead + AsyncWrite + Send + 'static>(stream: S) -> Self {
        let (reader, writer) = tokio::io::split(stream);
        Self { reader: Box::new(reader), writer: Box::new(writer) }
    }

    /// A transport over a TCP stream, with `TCP_NODELAY` on.
    pub fn tcp(stream: TcpStream) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        let (reader, writer) = stream.into_split();
        Ok(Self { reader: Box::new(reader), writer: Box::new(writer) })
    }

    /// A TLS transport over a TCP stream: runs the handshake, verifying the server as
    /// `server_name` with `config` (see [`crate::tls::client_config`]).
    pub async fn tls(
        stream: TcpStream,
        config: std::sync::Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        let name = crate::tls::server_name(server_name)?;
        let stream = tokio_rustls::TlsConnector::from(config).connect(name, stream).await?;
        Ok(Self::new(stream))
    }

    /// A transport over a Unix socket.
    #[cfg(unix)]
    pub fn unix(stream: UnixStream) -> Self {
        let (reader, writer) = stream.into_split();
        Self { reader: Box::new(reader), writer: Box::new(writer) }
    }
}
