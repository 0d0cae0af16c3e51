//! The options of `serve` (which `multilevel` with no command takes too) and of `bench`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::parse::{parse_addr, parse_duration};
use super::{DEFAULT_ADDR, DEFAULT_PATH};

/// Where a server listens.
#[derive(Debug, Clone)]
pub(crate) enum Place {
    /// A TCP address, `host:port`.
    Tcp(String),
    /// A Unix socket path.
    Unix(std::path::PathBuf),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Tcp(addr) => f.write_str(addr),
            Place::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// `multilevel bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Keys in the data set
    #[arg(long, default_value_t = 100_000)]
    pub(crate) keys: u64,
    /// Value size in bytes
    #[arg(long, default_value_t = 100)]
    pub(crate) value_size: usize,
    /// Operations per workload
    #[arg(long, default_value_t = 100_000)]
    pub(crate) ops: u64,
    /// Clients in the many-client workloads
    #[arg(long, default_value_t = 50)]
    pub(crate) clients: usize,
    /// Requests in flight per client in the pipelined workloads
    #[arg(long, default_value_t = 64)]
    pub(crate) depth: usize,
    /// Skip Redis even if it is installed
    #[arg(long)]
    pub(crate) no_redis: bool,
    /// A run of seconds that checks every workload works (figures meaningless)
    #[arg(long)]
    pub(crate) quick: bool,
    /// Print the figures as one JSON document
    #[arg(long)]
    pub(crate) json: bool,
    /// Measure an etcd cluster at these client URLs instead (comma-separated): the workloads
    /// through a `serve --etcd` child next to raw etcd-client calls of the same shape (needs a
    /// multilevel built with `--features etcd`)
    #[arg(long, value_name = "URL[,...]", value_delimiter = ',', num_args = 1)]
    pub(crate) etcd: Vec<String>,
}

/// `multilevel serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The database directory; created if missing
    #[arg(default_value = DEFAULT_PATH, conflicts_with = "etcd")]
    pub(crate) path: PathBuf,
    /// Everything else.
    #[command(flatten)]
    pub(crate) options: ServeOptions,
}

/// The options of `serve`, which `multilevel` with no command takes too.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServeOptions {
    /// Where to listen for TCP connections (port 0 picks a free port); $MULTILEVEL_ADDR, the
    /// clients' setting, is never read here. `--addr` is accepted as an alias
    #[arg(long, alias = "addr", env = "MULTILEVEL_LISTEN", default_value = DEFAULT_ADDR, value_name = "HOST:PORT", value_parser = parse_addr)]
    pub(crate) listen: String,
    /// Listen on the Unix socket at PATH instead of TCP (owner-only; a stale socket file is
    /// replaced, anything else at PATH is refused)
    #[arg(long, value_name = "PATH")]
    pub(crate) unix: Option<PathBuf>,
    /// Serve the etcd cluster at these client URLs (comma-separated, e.g.
    /// http://127.0.0.1:2379,http://127.0.0.1:22379) instead of an LMDB directory; several
    /// servers may serve one cluster. Needs a multilevel built with `--features etcd`
    #[arg(long, value_name = "URL[,...]", value_delimiter = ',', num_args = 1)]
    pub(crate) etcd: Vec<String>,
    /// With --etcd: the database's namespace in the cluster (its keys' prefix), so several
    /// databases can share one cluster [default: none]
    #[arg(long, value_name = "NAME", requires = "etcd")]
    pub(crate) namespace: Option<String>,
    /// Refuse every write; the files are opened read-only
    #[arg(long)]
    pub(crate) readonly: bool,
    /// Do not fsync each commit: faster, but a machine crash may lose the last commits
    #[arg(long, conflicts_with = "etcd")]
    pub(crate) no_sync: bool,
    /// Initial memory map size, e.g. 512MiB, 64GiB, 1TiB or bytes; it grows when full [default: 64GiB]
    ///
    /// KiB, MiB, GiB, TiB (and K, M, G, T) are powers of 1024; KB, MB, GB, TB powers of 1000.
    /// The data file is sparse: a large map costs address space, not disk.
    #[arg(long, value_parser = multilevel_store::parse_size, value_name = "SIZE", conflicts_with = "etcd")]
    pub(crate) map_size: Option<usize>,
    /// Commits of history kept for watches (`multilevel watch --from`); older ones are
    /// dropped [default: 100000]
    #[arg(long, value_name = "N", conflicts_with = "etcd")]
    pub(crate) history_commits: Option<u64>,
    /// Bytes of history kept for watches, e.g. 64MiB [default: 64MiB]
    #[arg(long, value_parser = multilevel_store::parse_size, value_name = "SIZE", conflicts_with = "etcd")]
    pub(crate) history_size: Option<usize>,
    /// Drop history older than this for watches, e.g. 7d, 12h [default: no age limit]
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", conflicts_with = "etcd")]
    pub(crate) history_age: Option<std::time::Duration>,
    /// Let in only clients presenting a token from FILE: lines of `read-write TOKEN` or
    /// `read-only TOKEN` (also read from $MULTILEVEL_TOKENS)
    ///
    /// A line may end with `sublevel=PATH` to limit the token to that sublevel (nested:
    /// `sublevel=users/admins`; `%XX` for `/`, `%`, spaces and other bytes in a name): its
    /// requests outside are refused, so its clients work with --sublevel.
    #[arg(long, value_name = "FILE")]
    pub(crate) tokens_file: Option<PathBuf>,
    /// Serve TLS with this certificate chain (PEM); needs --tls-key
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM)
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM)
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub(crate) tls_client_ca: Option<PathBuf>,
    /// Connections served at once; past it new ones are told so and closed
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub(crate) max_connections: usize,
    /// The wire protocol: multilevel's own, or many-level 2.0 for Node guests (`many-level`,
    /// `rave-level`); many-level has no authentication, so it cannot be used with tokens
    #[arg(long, value_enum, default_value_t = WireProtocol::Multilevel)]
    pub(crate) protocol: WireProtocol,
    /// Also serve many-level 2.0 guests (Node) on this TCP address, from the same database and
    /// process; plain TCP, no tokens (port 0 picks a free port)
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "many_level_unix", value_parser = parse_addr)]
    pub(crate) many_level_addr: Option<String>,
    /// Also serve many-level 2.0 guests (Node) on the Unix socket at PATH, from the same
    /// database and process (owner-only, like --unix)
    #[arg(long, value_name = "PATH")]
    pub(crate) many_level_unix: Option<PathBuf>,
    /// Serve Prometheus metrics over HTTP at http://HOST:PORT/metrics (port 0 picks a free
    /// port): requests by kind and outcome, latency, connections, iterators, bytes, commits
    #[arg(long, env = "MULTILEVEL_METRICS", value_name = "HOST:PORT", value_parser = parse_addr)]
    pub(crate) metrics: Option<String>,
}

impl ServeOptions {
    /// Where to listen: `--unix`, else `--listen`.
    pub(crate) fn target(&self) -> Place {
        match &self.unix {
            Some(path) => Place::Unix(path.clone()),
            None => Place::Tcp(self.listen.clone()),
        }
    }

    /// Where `--many-level-addr` or `--many-level-unix` asks for a second, many-level listener.
    pub(crate) fn many_level_target(&self) -> Option<Place> {
        match (&self.many_level_unix, &self.many_level_addr) {
            (Some(path), _) => Some(Place::Unix(path.clone())),
            (None, Some(addr)) => Some(Place::Tcp(addr.clone())),
            (None, None) => None,
        }
    }
}

/// The protocols `serve` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum WireProtocol {
    /// multilevel's own protocol (Rust clients, the other commands)
    Multilevel,
    /// many-level 2.0 (Node guests); writes replayed by a reconnecting guest may apply twice
    ManyLevel,
}

impl From<WireProtocol> for multilevel_proto::Protocol {
    fn from(protocol: WireProtocol) -> Self {
        match protocol {
            WireProtocol::Multilevel => multilevel_proto::Protocol::Multilevel,
            WireProtocol::ManyLevel => multilevel_proto::Protocol::ManyLevel,
        }
    }
}
