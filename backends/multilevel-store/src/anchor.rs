//! Raw heed, for benchmarks: the same workloads the server runs, done in-process with LMDB
//! directly, so `multilevel bench` can print each figure as a ratio to what LMDB itself does
//! on the same machine in the same run.

use std::path::Path;
use std::time::{Duration, Instant};

use heed::types::Bytes;
use heed::{Database, Env, WithoutTls};

use crate::env;
use crate::error::OpenError;
use crate::options::StoreOptions;

/// What one anchor workload measured.
#[derive(Debug, Clone, Default)]
pub struct Measurement {
    /// Operations (or entries, for a scan) done.
    pub ops: u64,
    /// Bytes of keys and values moved, for a scan.
    pub bytes: u64,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// Latency of each operation in nanoseconds, when measured one by one.
    pub latencies_ns: Vec<u64>,
}

/// An LMDB environment with one database, used directly.
pub struct RawHeed {
    env: Env<WithoutTls>,
    db: Database<'static, Bytes, Bytes>,
}

impl std::fmt::Debug for RawHeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawHeed").finish_non_exhaustive()
    }
}

fn err(e: heed::Error) -> std::io::Error {
    std::io::Error::other(e)
}

impl RawHeed {
    /// Opens (creating) an environment at `path`; `no_sync` skips the fsync of each commit.
    pub fn open(path: &Path, no_sync: bool) -> Result<Self, OpenError> {
        std::fs::create_dir_all(path).map_err(|source| OpenError::CreateDir { path: path.to_path_buf(), source })?;
        let options = StoreOptions::default().no_sync(no_sync);
        let env::Databases { env, data: db, .. } = env::create(path, &options, options.map_size)?;
        Ok(Self { env, db })
    }

    /// Writes `keys` entries with `key(i)` and `value`, 10 000 per transaction.
    pub fn fill(&self, keys: u64, key: impl Fn(u64) -> Vec<u8>, value: &[u8]) -> std::io::Result<()> {
        for chunk in (0..keys).collect::<Vec<_>>().chunks(10_000) {
            let mut txn = self.env.write_txn().map_err(err)?;
            for i in chunk {
                self.db.put(&mut txn, &key(*i), value).map_err(err)?;
            }
            txn.commit().map_err(err)?;
        }
        Ok(())
    }

    /// `ops` gets of `key(i)`, each in its own read transaction, as the server does them.
    pub fn gets(&self, ops: u64, key: impl Fn(u64) -> Vec<u8>) -> std::io::Result<Measurement> {
        let mut m = Measurement { ops, latencies_ns: Vec::with_capacity(ops as usize), ..Measurement::default() };
        let start = Instant::now();
        for i in 0..ops {
            let t = Instant::now();
            let txn = self.env.read_txn().map_err(err)?;
            let found = self.db.get(&txn, &key(i)).map_err(err)?.map(<[u8]>::len);
            std::hint::black_box(found);
            drop(txn);
            m.latencies_ns.push(t.elapsed().as_nanos() as u64);
        }
        m.elapsed = start.elapsed();
        Ok(m)
    }

    /// `ops` puts, `per_txn` to a committed transaction.
    pub fn puts(
        &self,
        ops: u64,
        per_txn: u64,
        key: impl Fn(u64) -> Vec<u8>,
        value: &[u8],
    ) -> std::io::Result<Measurement> {
        let mut m = Measurement { ops, ..Measurement::default() };
        let start = Instant::now();
        let mut done = 0;
        while done < ops {
            let t = Instant::now();
            let mut txn = self.env.write_txn().map_err(err)?;
            for i in done..(done + per_txn).min(ops) {
                self.db.put(&mut txn, &key(i), value).map_err(err)?;
            }
            txn.commit().map_err(err)?;
            done = (done + per_txn).min(ops);
            m.latencies_ns.push(t.elapsed().as_nanos() as u64);
        }
        m.elapsed = start.elapsed();
        Ok(m)
    }

    /// Reads every entry in key order in one read transaction.
    pub fn scan(&self) -> std::io::Result<Measurement> {
        let mut m = Measurement::default();
        let start = Instant::now();
        let txn = self.env.read_txn().map_err(err)?;
        for entry in self.db.iter(&txn).map_err(err)? {
            let (key, value) = entry.map_err(err)?;
            m.ops += 1;
            m.bytes += (key.len() + value.len()) as u64;
            std::hint::black_box((key, value));
        }
        m.elapsed = start.elapsed();
        Ok(m)
    }
}
