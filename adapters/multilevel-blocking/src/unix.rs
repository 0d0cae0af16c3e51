//! Listening on a Unix socket path without destroying what is there: a stale socket left by a
//! server that is gone is replaced; anything else (a live socket, a regular file, a directory,
//! a symbolic link...) is refused and left as it was.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// Why [`bind_unix_replacing_stale`] did not listen. Each message names the path and what to
/// do; nothing at the path was changed unless the error says so.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnixBindError {
    /// A server is listening on the socket at the path.
    #[error("{}: another server is listening on this socket; stop it, or pick another path", path.display())]
    InUse {
        /// The socket path.
        path: PathBuf,
    },
    /// Something other than a socket is at the path; it was left untouched.
    #[error("{}: {what} is there, not a socket; refusing to replace it: remove it yourself, or pick another path", path.display())]
    NotASocket {
        /// The socket path.
        path: PathBuf,
        /// What is there: "a regular file", "a directory", "a symbolic link"...
        what: &'static str,
    },
    /// A socket is at the path, and connecting to it failed for a reason other than nobody
    /// listening (e.g. permission denied), so it may be live; it was left untouched.
    #[error("{}: cannot tell whether a server listens on this socket ({source}); remove it yourself if it is stale, or pick another path", path.display())]
    Unknown {
        /// The socket path.
        path: PathBuf,
        /// Why connecting failed.
        #[source]
        source: io::Error,
    },
    /// The path could not be inspected (e.g. a directory on the way cannot be searched).
    #[error("{}: cannot inspect the path: {source}", path.display())]
    Inspect {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The stale socket could not be removed.
    #[error("{}: cannot remove the stale socket: {source}", path.display())]
    RemoveStale {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Binding the socket failed (e.g. the directory does not exist, or the path is too long).
    #[error("{}: cannot listen: {source}", path.display())]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The socket was bound but could not be made owner-only; it was removed again.
    #[error("{}: cannot make the socket owner-only: {source}", path.display())]
    Permissions {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl UnixBindError {
    /// The socket path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            UnixBindError::InUse { path }
            | UnixBindError::NotASocket { path, .. }
            | UnixBindError::Unknown { path, .. }
            | UnixBindError::Inspect { path, .. }
            | UnixBindError::RemoveStale { path, .. }
            | UnixBindError::Bind { path, .. }
            | UnixBindError::Permissions { path, .. } => path,
        }
    }
}

impl From<UnixBindError> for io::Error {
    fn from(error: UnixBindError) -> Self {
        let kind = match &error {
            UnixBindError::InUse { .. } => io::ErrorKind::AddrInUse,
            UnixBindError::NotASocket { .. } => io::ErrorKind::AlreadyExists,
            UnixBindError::Unknown { source, .. }
            | UnixBindError::Inspect { source, .. }
            | UnixBindError::RemoveStale { source, .. }
            | UnixBindError::Bind { source, .. }
            | UnixBindError::Permissions { source, .. } => source.kind(),
        };
        io::Error::new(kind, error)
    }
}

/// Listens on the Unix socket at `path`, replacing a stale socket file (one nobody listens
/// on, left by a server that is gone) and refusing anything else: a live socket, a regular
/// file, a directory, a symbolic link or any other file is left exactly as it was.
///
/// The socket is made owner-only (mode 0600), so other local users cannot connect. The
/// listener is blocking; for tokio, call `set_nonblocking(true)` and
/// `tokio::net::UnixListener::from_std`. The socket file stays when the listener is dropped:
/// remove it on a clean shutdown (the next bind replaces it anyway).
///
/// ```no_run
/// let listener = multilevel_blocking::bind_unix_replacing_stale("/tmp/db.sock")?;
/// # Ok::<(), multilevel_blocking::UnixBindError>(())
/// ```
pub fn bind_unix_replacing_stale(path: impl AsRef<Path>) -> Result<UnixListener, UnixBindError> {
    let path = path.as_ref();
    let owned = || path.to_path_buf();
    match std::fs::symlink_metadata(path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(UnixBindError::Inspect { path: owned(), source }),
        Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => return Err(UnixBindError::InUse { path: owned() }),
            Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => match std::fs::remove_file(path) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => {
                    return Err(UnixBindError::RemoveStale { path: owned(), source: err });
                }
                _ => {}
            },
            // Removed since we looked: nothing to replace.
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(UnixBindError::Unknown { path: owned(), source }),
        },
        Ok(meta) => return Err(UnixBindError::NotASocket { path: owned(), what: describe(meta.file_type()) }),
    }
    let listener = UnixListener::bind(path).map_err(|source| match source.kind() {
        // Someone else bound it between our check and our bind.
        io::ErrorKind::AddrInUse => UnixBindError::InUse { path: owned() },
        _ => UnixBindError::Bind { path: owned(), source },
    })?;
    if let Err(source) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        drop(listener);
        let _ = std::fs::remove_file(path);
        return Err(UnixBindError::Permissions { path: owned(), source });
    }
    Ok(listener)
}

/// What a file that is not a socket is, for an error message.
fn describe(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_file() {
        "a regular file"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_fifo() {
        "a named pipe"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "a device"
    } else {
        "a file"
    }
}
