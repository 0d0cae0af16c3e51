//! Why a store could not be opened, and how LMDB's errors become [`StoreError`]s.

use std::io;
use std::path::PathBuf;

use heed::MdbError;
use multilevel_proto::StoreError;

/// Why [`Store::open`](crate::Store::open) failed. Each message names the path and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The path exists and is not a directory: a store is a directory holding `data.mdb` and
    /// `lock.mdb`.
    #[error("{}: not a directory; a store is a directory (it holds data.mdb and lock.mdb), pass its path", path.display())]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The path is not valid for LMDB (e.g. it holds a NUL byte).
    #[error("{}: invalid path: {reason}", path.display())]
    InvalidPath {
        /// The path given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The directory or its files could not be created or written for lack of permission.
    #[error("{}: permission denied; the store needs a directory it can create and write (or open it with readonly)", path.display())]
    PermissionDenied {
        /// The path given.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The directory is on a read-only filesystem.
    #[error("{}: read-only filesystem; open the store with readonly, or move it to a writable filesystem", path.display())]
    ReadOnlyFilesystem {
        /// The path given.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The store is already open in this process; LMDB allows one open per process, so share
    /// the first [`Store`](crate::Store) (it is `Clone`) instead.
    #[error("{}: this store is already open in this process; clone the open Store instead of opening it again", path.display())]
    AlreadyOpen {
        /// The path given.
        path: PathBuf,
    },
    /// `data.mdb` is not an LMDB file, or one of an incompatible LMDB version.
    #[error("{}: not an LMDB database ({detail}); point the store at its own directory", path.display())]
    NotADatabase {
        /// The path given.
        path: PathBuf,
        /// What LMDB said.
        detail: String,
    },
    /// The database is damaged.
    #[error("{}: the database is corrupted ({detail}); restore it from a backup", path.display())]
    Corrupted {
        /// The path given.
        path: PathBuf,
        /// What LMDB said.
        detail: String,
    },
    /// A read-only open found no database at the path (no directory, or no `data.mdb` with
    /// the store's databases in it). A read-only open creates nothing.
    #[error("no database at {}: a read-only store needs an existing one; check the path, or create the database by opening it once without readonly", path.display())]
    Missing {
        /// The path given.
        path: PathBuf,
    },
    /// The store's directory did not exist and could not be created.
    #[error("{}: could not create the store directory ({source}); create it, or pick another path", path.display())]
    CreateDir {
        /// The path given.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The writer thread could not be started.
    #[error("could not start the writer thread: {0}")]
    Thread(#[source] io::Error),
    /// Any other I/O error.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path given.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Any other LMDB error.
    #[error("{}: LMDB error: {source}", path.display())]
    Lmdb {
        /// The path given.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: heed::Error,
    },
}

impl OpenError {
    /// Classifies an I/O error met while creating or opening `path`.
    pub(crate) fn from_io(path: PathBuf, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::PermissionDenied => OpenError::PermissionDenied { path, source },
            io::ErrorKind::ReadOnlyFilesystem => OpenError::ReadOnlyFilesystem { path, source },
            io::ErrorKind::NotADirectory => OpenError::NotADirectory { path },
            _ => OpenError::Io { path, source },
        }
    }

    /// Classifies an error of LMDB while opening `path`.
    pub(crate) fn from_heed(path: PathBuf, source: heed::Error) -> Self {
        match source {
            heed::Error::Io(io) => Self::from_io(path, io),
            heed::Error::EnvAlreadyOpened => OpenError::AlreadyOpen { path },
            heed::Error::Mdb(MdbError::Invalid | MdbError::VersionMismatch | MdbError::Incompatible) => {
                OpenError::NotADatabase { path, detail: source.to_string() }
            }
            heed::Error::Mdb(MdbError::Corrupted | MdbError::PageNotFound | MdbError::Panic) => {
                OpenError::Corrupted { path, detail: source.to_string() }
            }
            source => OpenError::Lmdb { path, source },
        }
    }
}

/// An LMDB error met while serving a request, as the client sees it.
pub(crate) fn internal(context: &str, error: &heed::Error) -> StoreError {
    StoreError::Internal(format!("{context}: {error}"))
}

/// Whether another process grew the map, which this one must adopt before going on.
pub(crate) fn is_map_resized(error: &heed::Error) -> bool {
    matches!(error, heed::Error::Mdb(MdbError::MapResized))
}
