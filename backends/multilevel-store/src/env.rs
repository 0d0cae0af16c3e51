//! The LMDB environment shared by readers, snapshots and the writer: opening it, and the gate
//! every transaction passes so the map can be resized safely.
//!
//! # Resizing the map while snapshots are open
//!
//! `mdb_env_set_mapsize` (heed's `unsafe fn resize`) may only be called while no transaction
//! is active in this process, and LMDB does not check it. Every transaction here is therefore
//! accounted for:
//!
//! - short read transactions (`Get`, `GetMany`, stats) and the writer's write transaction hold
//!   the read side of [`Shared::gate`] for their whole life;
//! - iterator snapshots are created while holding the read side, and are then registered in the
//!   [`Registry`](crate::snapshots::Registry); a batch read on one holds that snapshot's mutex.
//!
//! [`Shared::remap`] takes the write side of the gate (waiting for short transactions and the
//! writer's to end and blocking new ones), then closes every registered snapshot (waiting, per
//! snapshot, for a batch read in progress), and only then resizes. Those iterators end with
//! [`StoreError::UnknownIterator`] on their next batch. The map only grows by doubling from a
//! large initial size (64 GiB by default), so this is rare; LMDB does not allow a snapshot to
//! stay open across a remap.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, RoTxn, RwTxn, WithoutTls};
use multilevel_proto::StoreError;

use crate::error::{OpenError, internal, is_map_resized};
use crate::keys::MAX_KEY_SIZE;
use crate::options::StoreOptions;
use crate::snapshots::Registry;
use crate::watchers::Watchers;

/// A database of raw keys and values.
pub(crate) type Db = Database<'static, Bytes, Bytes>;

/// The data file LMDB keeps in a store's directory (beside `lock.mdb`).
const DATA_FILE: &str = "data.mdb";

/// Map sizes are multiples of this, which is a multiple of every common page size.
const MAP_ALIGN: usize = 64 << 10;

/// Everything the store's threads share.
pub(crate) struct Shared {
    pub(crate) env: Env<WithoutTls>,
    /// User keys, stored with a prefix byte (see [`crate::keys`]).
    pub(crate) data: Db,
    /// Session records for at-most-once writes, keyed by big-endian session id.
    pub(crate) sessions: Db,
    /// The change log (see [`crate::changes`]); `None` only in a read-only open of a database
    /// made before change logs, whose log reads as empty.
    pub(crate) changes: Option<Db>,
    /// Watch reads waiting for a commit.
    pub(crate) watchers: Watchers,
    pub(crate) options: StoreOptions,
    /// The growth ceiling, aligned and at least the initial size.
    pub(crate) max_map_size: usize,
    /// The longest user key.
    pub(crate) max_key_size: usize,
    /// Read side: any transaction other than a registered snapshot. Write side: a remap.
    gate: RwLock<()>,
    pub(crate) snapshots: Registry,
    /// Group commits made by the writer.
    pub(crate) commits: AtomicU64,
    /// Writes answered by the writer (applied, replayed or refused).
    pub(crate) writes: AtomicU64,
    /// Times the map was grown or adopted a size another process set.
    pub(crate) remaps: AtomicU64,
}

/// A short read transaction that holds the gate.
pub(crate) struct ReadTxn<'a> {
    // Field order matters: the transaction ends before the gate opens.
    pub(crate) txn: RoTxn<'a, WithoutTls>,
    _gate: RwLockReadGuard<'a, ()>,
}

/// The writer's transaction, holding the gate.
pub(crate) struct WriteTxn<'a> {
    pub(crate) txn: RwTxn<'a>,
    _gate: RwLockReadGuard<'a, ()>,
}

impl WriteTxn<'_> {
    /// Commits, then opens the gate.
    pub(crate) fn commit(self) -> heed::Result<()> {
        let WriteTxn { txn, _gate } = self;
        txn.commit()
    }
}

fn round_up(size: usize) -> usize {
    size.max(MAP_ALIGN).div_ceil(MAP_ALIGN).saturating_mul(MAP_ALIGN)
}

fn round_down(size: usize) -> usize {
    size / MAP_ALIGN * MAP_ALIGN
}

impl Shared {
    /// Opens the environment and its databases at `path`: creates them if missing, unless
    /// `options.readonly`, which only opens an existing database and creates nothing (no
    /// directory, no LMDB file).
    pub(crate) fn open(path: &Path, options: StoreOptions) -> Result<Shared, OpenError> {
        let owned = || path.to_path_buf();
        if path.as_os_str().as_encoded_bytes().contains(&0) {
            return Err(OpenError::InvalidPath { path: owned(), reason: "it contains a NUL byte".into() });
        }
        match std::fs::metadata(path) {
            Ok(meta) if !meta.is_dir() => return Err(OpenError::NotADirectory { path: owned() }),
            Ok(_) => {}
            // A mistyped path must not become an empty database served read-only.
            Err(e) if options.readonly => {
                return Err(match e.kind() {
                    std::io::ErrorKind::NotFound => OpenError::Missing { path: owned() },
                    _ => OpenError::from_io(owned(), e),
                });
            }
            Err(_) => std::fs::create_dir_all(path).map_err(|e| match OpenError::from_io(owned(), e) {
                OpenError::Io { path, source } => OpenError::CreateDir { path, source },
                classified => classified,
            })?,
        }
        let map_size = round_up(options.map_size);
        let max_map_size = round_down(options.max_map_size).max(map_size);
        let Databases { env, data, sessions, changes } = if options.readonly {
            // LMDB creates `lock.mdb` even for a read-only open: look for the data file first.
            match std::fs::symlink_metadata(path.join(DATA_FILE)) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(OpenError::Missing { path: owned() });
                }
                Err(e) => return Err(OpenError::from_io(owned(), e)),
            }
            open_env(path, &options, map_size, true)
                .and_then(|env| open_databases(path, env))?
                .ok_or_else(|| OpenError::Missing { path: owned() })?
        } else {
            create(path, &options, map_size)?
        };
        let max_key_size = MAX_KEY_SIZE.min(env.max_key_size().saturating_sub(1));
        let head = {
            let rtxn = env.read_txn().map_err(|e| OpenError::from_heed(owned(), e))?;
            crate::changes::load_meta(changes, &rtxn).map_err(|e| OpenError::from_heed(owned(), e))?.head
        };
        Ok(Shared {
            env,
            data,
            sessions,
            changes,
            watchers: Watchers::new(head),
            options,
            max_map_size,
            max_key_size,
            gate: RwLock::new(()),
            snapshots: Registry::default(),
            commits: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            remaps: AtomicU64::new(0),
        })
    }

    /// The read side of the gate; see the module docs.
    pub(crate) fn gate(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// A short read transaction.
    pub(crate) fn read_txn(&self) -> Result<ReadTxn<'_>, StoreError> {
        match self.begin(|| self.env.read_txn()) {
            Ok((txn, gate)) => Ok(ReadTxn { txn, _gate: gate }),
            Err(Begin::Adopting(e)) => Err(internal("adopting the map size of another process", &e)),
            Err(Begin::Starting(e)) => Err(internal("beginning a read transaction", &e)),
        }
    }

    /// Takes a snapshot for an iterator (a read transaction that owns an environment handle)
    /// and hands it to `register` while still holding the gate, so a remap cannot miss it.
    pub(crate) fn open_snapshot<R>(&self, register: impl FnOnce(RoTxn<'static, WithoutTls>) -> R) -> heed::Result<R> {
        let (txn, gate) = self.begin(|| self.env.clone().static_read_txn()).map_err(Begin::into_error)?;
        let registered = register(txn);
        drop(gate);
        Ok(registered)
    }

    /// The writer's transaction. Only the writer thread calls this.
    pub(crate) fn write_txn(&self) -> heed::Result<WriteTxn<'_>> {
        let (txn, gate) = self.begin(|| self.env.write_txn()).map_err(Begin::into_error)?;
        Ok(WriteTxn { txn, _gate: gate })
    }

    /// Starts a transaction with `start` under the read side of the gate and returns it with
    /// the gate still held. If another process grew the map past this one's size, adopts its
    /// size (once) and starts again.
    fn begin<T>(&self, mut start: impl FnMut() -> heed::Result<T>) -> Result<(T, RwLockReadGuard<'_, ()>), Begin> {
        let mut adopted = false;
        loop {
            let gate = self.gate();
            match start() {
                Ok(txn) => return Ok((txn, gate)),
                Err(e) if is_map_resized(&e) && !adopted => {
                    drop(gate);
                    self.remap(0).map_err(Begin::Adopting)?;
                    adopted = true;
                }
                Err(e) => return Err(Begin::Starting(e)),
            }
        }
    }

    /// The current map size.
    pub(crate) fn map_size(&self) -> usize {
        let _gate = self.gate();
        self.env.info().map_size
    }

    /// Sets the map size (0: adopt the size another process set), closing every snapshot
    /// first. The caller must hold no transaction and no gate guard.
    pub(crate) fn remap(&self, new_size: usize) -> heed::Result<()> {
        let _exclusive = self.gate.write().unwrap_or_else(PoisonError::into_inner);
        let closed = self.snapshots.close_all();
        if closed > 0 {
            tracing::warn!(closed, new_size, "closed iterator snapshots to resize the LMDB map");
        }
        // SAFETY: LMDB requires that no transaction be active in this process. With the write
        // side of the gate held, no short read transaction and no write transaction exists (they
        // hold the read side for their whole life), and none can begin; every snapshot was
        // registered under the read side and has just been closed by `close_all`, which waited
        // for any batch read in progress on it.
        #[allow(unsafe_code)]
        let result = unsafe { self.env.resize(new_size) };
        if result.is_ok() {
            self.remaps.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// The size the map would grow to from `current`, or `None` at the ceiling.
    pub(crate) fn next_map_size(&self, current: usize) -> Option<usize> {
        (current < self.max_map_size).then(|| round_up(current.saturating_mul(2)).min(self.max_map_size))
    }
}

fn env_options(options: &StoreOptions, map_size: usize, readonly: bool) -> EnvOpenOptions<WithoutTls> {
    let mut env = EnvOpenOptions::new().read_txn_without_tls();
    env.map_size(map_size).max_readers(options.max_readers.max(1)).max_dbs(4);
    let mut flags = EnvFlags::empty();
    if options.no_sync {
        flags |= EnvFlags::NO_SYNC;
    }
    if readonly {
        flags |= EnvFlags::READ_ONLY;
    }
    // SAFETY: `NO_SYNC` trades durability on machine crashes for speed, as documented on
    // `StoreOptions::no_sync`; it cannot corrupt the database or cause undefined behaviour in
    // this process. `READ_ONLY` is safe.
    #[allow(unsafe_code)]
    unsafe {
        env.flags(flags);
    }
    env
}

fn open_env(
    path: &Path,
    options: &StoreOptions,
    map_size: usize,
    readonly: bool,
) -> Result<Env<WithoutTls>, OpenError> {
    let env_options = env_options(options, map_size, readonly);
    // SAFETY: the map is only unsafe if its file is modified behind LMDB's back. The store
    // opens its files only through LMDB, heed refuses a second open of the same path in this
    // process, and LMDB's lock file coordinates other processes.
    #[allow(unsafe_code)]
    let opened = unsafe { env_options.open(path) };
    opened.map_err(|e| OpenError::from_heed(path.to_path_buf(), e))
}

/// An environment and its databases.
pub(crate) struct Databases {
    pub(crate) env: Env<WithoutTls>,
    pub(crate) data: Db,
    pub(crate) sessions: Db,
    pub(crate) changes: Option<Db>,
}

/// Opens the environment read-write and creates the databases if missing.
pub(crate) fn create(path: &Path, options: &StoreOptions, map_size: usize) -> Result<Databases, OpenError> {
    let env = open_env(path, options, map_size, false)?;
    let err = |e: heed::Error| OpenError::from_heed(path.to_path_buf(), e);
    let wtxn = env.write_txn().map_err(err)?;
    let created = env
        .create_databases_and_commit(wtxn, |opener, wtxn| -> heed::Result<_> {
            let data = opener.create_database::<Bytes, Bytes>(wtxn, Some("data"))?;
            let sessions = opener.create_database::<Bytes, Bytes>(wtxn, Some("sessions"))?;
            let changes = opener.create_database::<Bytes, Bytes>(wtxn, Some("changes"))?;
            Ok(CommitOrAbort::<_, ()>::Commit((data, sessions, changes)))
        })
        .map_err(err)?;
    match created.commit() {
        Some((data, sessions, changes)) => Ok(Databases { env, data, sessions, changes: Some(changes) }),
        None => Err(OpenError::Missing { path: path.to_path_buf() }),
    }
}

/// Opens the databases of a read-only environment; `None` if they do not exist yet. The change
/// log may be missing (a database made before change logs): it then reads as empty.
fn open_databases(path: &Path, env: Env<WithoutTls>) -> Result<Option<Databases>, OpenError> {
    let err = |e: heed::Error| OpenError::from_heed(path.to_path_buf(), e);
    let rtxn = env.read_txn().map_err(err)?;
    let opened = env
        .open_databases_and_commit(rtxn, |opener, rtxn| -> heed::Result<_> {
            let data = opener.open_database::<Bytes, Bytes>(rtxn, Some("data"))?;
            let sessions = opener.open_database::<Bytes, Bytes>(rtxn, Some("sessions"))?;
            let changes = opener.open_database::<Bytes, Bytes>(rtxn, Some("changes"))?;
            Ok(CommitOrAbort::<_, ()>::Commit(data.zip(sessions).map(|(data, sessions)| (data, sessions, changes))))
        })
        .map_err(err)?;
    Ok(opened.commit().flatten().map(|(data, sessions, changes)| Databases { env, data, sessions, changes }))
}

/// Why [`Shared::begin`] failed.
enum Begin {
    /// Adopting another process's larger map failed.
    Adopting(heed::Error),
    /// The transaction did not start.
    Starting(heed::Error),
}

impl Begin {
    fn into_error(self) -> heed::Error {
        match self {
            Begin::Adopting(e) | Begin::Starting(e) => e,
        }
    }
}
