//! A transport: the two halves of a byte stream, and a way to shut it down from another thread.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::sync::Arc;

/// Closes a transport from another thread, so a thread blocked reading it wakes up.
pub type Closer = Arc<dyn Fn() + Send + Sync>;

/// The halves of one byte stream.
pub struct Transport {
    /// Where bytes from the peer come from.
    pub reader: Box<dyn Read + Send>,
    /// Where bytes to the peer go.
    pub writer: Box<dyn Write + Send>,
    /// Shuts the stream down; `None` if the stream cannot be shut down from outside (the
    /// reading thread then notices only when the peer closes).
    pub closer: Option<Closer>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport").field("closer", &self.closer.is_some()).finish_non_exhaustive()
    }
}

impl Transport {
    /// A transport over any reader and writer, e.g. the two ends of a pipe.
    pub fn new(reader: impl Read + Send + 'static, writer: impl Write + Send + 'static) -> Self {
        Self { reader: Box::new(reader), writer: Box::new(writer), closer: None }
    }

    /// A transport over a TCP stream, with `TCP_NODELAY` on.
    pub fn tcp(stream: TcpStream) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        Self::socket(stream, TcpStream::try_clone, TcpStream::shutdown)
    }

    /// A transport over a Unix socket.
    #[cfg(unix)]
    pub fn unix(stream: UnixStream) -> io::Result<Self> {
        Self::socket(stream, UnixStream::try_clone, UnixStream::shutdown)
    }

    /// A transport over a socket whose clones share it: one reads, one writes, one shuts it down.
    fn socket<S: Read + Write + Send + Sync + 'static>(
        stream: S,
        try_clone: fn(&S) -> io::Result<S>,
        shutdown: fn(&S, Shutdown) -> io::Result<()>,
    ) -> io::Result<Self> {
        let writer = try_clone(&stream)?;
        let closer = try_clone(&stream)?;
        Ok(Self {
            reader: Box::new(stream),
            writer: Box::new(writer),
            closer: Some(Arc::new(move || {
                let _ = shutdown(&closer, Shutdown::Both);
            })),
        })
    }

    /// Shuts the stream down, if it can be.
    pub fn close(&self) {
        if let Some(closer) = &self.closer {
            closer();
        }
    }
}
