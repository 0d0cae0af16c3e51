//! The command line: global flags, subcommands, and the parsers for addresses and durations
//! (sizes are `multilevel_store::parse_size`'s, as in `multilevel-blocking-server`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::connect::Target;
use crate::serve::Place;

/// Where `serve` listens and clients connect when neither `--addr` nor `MULTILEVEL_ADDR` says.
pub(crate) const DEFAULT_ADDR: &str = "127.0.0.1:7481";

/// The database directory `serve` uses when none is given.
pub(crate) const DEFAULT_PATH: &str = "multilevel-data";

/// Shown after `multilevel --help`.
const AFTER_HELP: &str = "\
With no command, `multilevel` serves ./multilevel-data on 127.0.0.1:7481, like `multilevel serve`,
and takes the options of `multilevel serve --help`.

Each command takes its own options (`multilevel get --help`), after its name or before it:
`multilevel get KEY --addr HOST:PORT` or `multilevel --addr HOST:PORT get KEY`. Client commands
connect to --addr, else $MULTILEVEL_ADDR, else 127.0.0.1:7481 (--unix PATH: a Unix socket);
several addresses, comma-separated, are servers of one database: each is tried in turn, and a
command whose server dies carries on through the next. `serve` listens on --listen, else
$MULTILEVEL_LISTEN, else 127.0.0.1:7481; it never reads $MULTILEVEL_ADDR, so a client setting
cannot make a server bind a remote address. `serve --etcd URL,...` serves an etcd cluster
instead of a directory (a program built with the cargo feature `etcd`).

--sublevel NAME (repeatable, to nest) makes a command work inside that sublevel: keys are given
and printed without its prefix (stored as !NAME!key, as abstract-level's sublevels).

Input: keys and values on the command line are UTF-8 text; with --hex they are hex (`put --hex 00ff
cafe`). `put KEY` without VALUE reads the value, as raw bytes, from stdin.

Output (--format):
  text  the bytes as UTF-8, with control characters and backslash escaped: \\t \\n \\r \\\\ and
        \\xNN for each byte of other control characters (C0, DEL, C1, bidirectional overrides)
        and of invalid UTF-8; a value can neither inject terminal escapes nor break lines
  hex   lowercase hex
  json  one JSON object per line, as in JSON lines below
  raw   (`get` only; also --raw) the value's exact bytes, no newline
`get` prints raw bytes when stdout is not a terminal (`get KEY > file` gives back exactly what
`put KEY < file` stored) and text when it is; --format chooses. `scan` prints `key<TAB>value`
lines; `mget` a line per key asked, a missing key as the key alone; `stats` `name value` lines.

JSON lines (import, export, --format json): one object per line,
  {\"key\":\"fruit/apple\",\"value\":\"red\"}
where a key or value is a JSON string when its bytes are valid UTF-8, and {\"hex\":\"...\"}
otherwise, so any bytes round-trip: {\"key\":\"blob\",\"value\":{\"hex\":\"00ff\"}}.

Durations (--timeout) are like 10s, 500ms, 2m, 1h30m; a bare number is seconds.

Exit status: 0 on success; 1 on any error, and for `get` (or `mget`) of a missing key (nothing is
printed on stdout for `get`, `multilevel: not found: KEY` on stderr); 2 for a command-line
mistake (an unknown option, a malformed address or duration, bad hex...).";

/// Shown after `multilevel import --help` and `multilevel export --help`.
const JSONL_HELP: &str = "\
JSON lines: one object per line, {\"key\": K, \"value\": V}, where K and V are JSON strings when the
bytes are valid UTF-8 and {\"hex\": \"...\"} objects otherwise, so any bytes round-trip:
  {\"key\":\"fruit/apple\",\"value\":\"red\"}
  {\"key\":\"blob\",\"value\":{\"hex\":\"00ff\"}}
`export` writes exactly this (no spaces, keys in order); `import` accepts any JSON spacing, skips
blank lines, and stops at the first bad line, naming it. Progress shows on stderr when it is a
terminal; at the end a summary (`imported N entries`, `exported N entries`) goes to stderr.
`export FILE` writes a temporary file beside FILE and renames it over FILE only once the export
is complete, so a failed export leaves an earlier FILE as it was (a symbolic link's target is
replaced; what is not a regular file, such as /dev/stdout or a FIFO, is written in place).";

/// Shown after `multilevel get --help`.
const GET_HELP: &str = "\
Output: raw bytes (no newline) when stdout is not a terminal, so `multilevel get KEY > file` gives
back exactly what `multilevel put KEY < file` stored; escaped text when stdout is a terminal.
--format (or --raw) chooses. A missing key prints nothing on stdout and exits with status 1.";

/// Share an LMDB database (or an etcd cluster) over TCP or a Unix socket, and talk to it.
#[derive(Debug, Parser)]
#[command(name = "multilevel", version, after_help = AFTER_HELP, args_conflicts_with_subcommands = true)]
pub(crate) struct Cli {
    /// The options of `serve`, for when no command is given (hidden from `multilevel --help`).
    #[command(flatten)]
    pub(crate) serve: ServeOptions,
    /// What to do; `serve` when absent.
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

impl Cli {
    /// Parses the command line; prints help, or the mistake and exits with status 2.
    pub(crate) fn parse_args() -> Self {
        Self::try_parse_args(std::env::args_os().collect()).unwrap_or_else(|err| err.exit())
    }

    /// Parses `args`, the program name first. Options written before the command name
    /// (`multilevel --addr HOST:PORT get KEY`, the order of earlier versions) apply to the
    /// command: when the line does not parse as written, they are moved after the command name.
    pub(crate) fn try_parse_args(args: Vec<OsString>) -> Result<Self, clap::Error> {
        use clap::{CommandFactory, FromArgMatches};
        let mut matches = match Self::top_level().try_get_matches_from(&args) {
            Ok(matches) => matches,
            Err(err) if !err.use_stderr() => return Err(err), // --help, --version
            Err(err) => match options_after_command(&args) {
                Some(reordered) => Self::top_level().try_get_matches_from(reordered)?,
                None => return Err(err),
            },
        };
        Self::from_arg_matches_mut(&mut matches).map_err(|err| err.format(&mut Self::command()))
    }

    /// The command line, with `serve`'s options hidden from `multilevel --help` (they are
    /// documented in `multilevel serve --help`).
    pub(crate) fn top_level() -> clap::Command {
        use clap::CommandFactory;
        Self::command().mut_args(|arg| match arg.get_id().as_str() {
            "help" | "version" => arg,
            _ => arg.hide(true),
        })
    }
}

/// `args` with the options before the first command name moved after it; `None` when `args`
/// do not start with an option followed, later, by a command name.
fn options_after_command(args: &[OsString]) -> Option<Vec<OsString>> {
    use clap::CommandFactory;
    let names: Vec<String> = Cli::command().get_subcommands().map(|command| command.get_name().to_owned()).collect();
    if !args.get(1)?.to_string_lossy().starts_with('-') {
        return None;
    }
    let at = 1 + args[1..].iter().position(|arg| arg == "--" || names.iter().any(|name| arg == name.as_str()))?;
    if args[at] == "--" {
        return None;
    }
    let mut reordered = vec![args[0].clone(), args[at].clone()];
    reordered.extend_from_slice(&args[1..at]);
    reordered.extend_from_slice(&args[at + 1..]);
    Some(reordered)
}

/// How a client command reaches the server.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection")]
pub(crate) struct ConnectArgs {
    /// The server's TCP address; several, comma-separated, for the servers of one database
    /// (e.g. in front of one etcd cluster): each is tried in turn, and a command whose
    /// connection is lost carries on through the next
    #[arg(long, env = "MULTILEVEL_ADDR", default_value = DEFAULT_ADDR, value_name = "HOST:PORT[,...]", value_parser = parse_addr, value_delimiter = ',')]
    pub(crate) addr: Vec<String>,
    /// Connect to the Unix socket at PATH instead of TCP
    #[arg(long, value_name = "PATH")]
    pub(crate) unix: Option<PathBuf>,
    /// Give up connecting, and give up on each request, after this long (e.g. 10s, 500ms, 1h30m)
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) timeout: Duration,
    /// Read the token to present from FILE (else from $MULTILEVEL_TOKEN); never pass a token as
    /// an argument, other users see arguments in `ps`
    #[arg(long, value_name = "FILE")]
    pub(crate) token_file: Option<PathBuf>,
    /// Connect over TLS, trusting the CA certificate(s) in this PEM file
    #[arg(long, value_name = "PEM")]
    pub(crate) tls_ca: Option<PathBuf>,
    /// The server name to verify over TLS [default: the host of each --addr]
    #[arg(long, value_name = "NAME", requires = "tls_ca")]
    pub(crate) tls_name: Option<String>,
}

impl ConnectArgs {
    /// Where to connect: `--unix`, else `--addr`.
    pub(crate) fn target(&self) -> Target {
        match &self.unix {
            Some(path) => Target::Unix(path.clone()),
            None if self.addr.is_empty() => Target::Tcp(vec![DEFAULT_ADDR.to_owned()]),
            None => Target::Tcp(self.addr.clone()),
        }
    }
}

/// `--hex`, for the commands that take keys or values.
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct HexArg {
    /// Keys and values on the command line are hex
    #[arg(long)]
    pub(crate) hex: bool,
}

/// `--sublevel`, for the commands that read or write keys.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct SublevelArg {
    /// Work inside the sublevel NAME (stored as `!NAME!key`, as abstract-level's sublevels):
    /// keys are given and shown without the prefix, ranges stay inside it; repeat to nest
    /// (`--sublevel a --sublevel b`: `!a!!b!key`)
    #[arg(long = "sublevel", value_name = "NAME")]
    pub(crate) names: Vec<String>,
}

/// How keys and values are printed by `scan` and `mget`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// UTF-8, with backslash, control characters and invalid UTF-8 escaped (\t, \n, \\, \xNN)
    Text,
    /// Lowercase hex
    Hex,
    /// One JSON object per line: {"key": K, "value": V}, K and V strings or {"hex": "..."}
    Json,
}

/// How `get` prints the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ValueFormat {
    /// UTF-8, with backslash, control characters and invalid UTF-8 escaped, and a newline
    Text,
    /// Lowercase hex, and a newline
    Hex,
    /// {"key": K, "value": V} and a newline
    Json,
    /// The exact bytes, no newline
    Raw,
}

/// How `stats` prints the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StatsFormat {
    /// `name value` per line
    Text,
    /// One JSON object
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve an LMDB database, or an etcd cluster (what `multilevel` does with no command)
    Serve(ServeArgs),
    /// Print the value of KEY; exit status 1, and nothing on stdout, if it is missing
    #[command(after_help = GET_HELP)]
    Get(GetArgs),
    /// Print the values of several keys, a line per key; exit status 1 if any is missing
    Mget(MgetArgs),
    /// Set KEY to VALUE
    Put(PutArgs),
    /// Delete KEY (deleting a missing key is not an error)
    Del(DelArgs),
    /// Print the entries of a key range, in key order: `key<TAB>value` per line
    Scan(ScanArgs),
    /// Print how many keys a range holds
    Count(CountArgs),
    /// Delete the keys of a range (every key only with --all)
    Clear(ClearArgs),
    /// Print the server's counters: entries, map size, open connections...
    Stats(StatsArgs),
    /// Write entries from JSON lines ({"key": K, "value": V} per line), in atomic batches
    #[command(after_help = JSONL_HELP)]
    Import(ImportArgs),
    /// Print entries as JSON lines ({"key": K, "value": V} per line), in key order
    #[command(after_help = JSONL_HELP)]
    Export(ExportArgs),
    /// Measure a server started for the run against raw LMDB, a loopback ping-pong and Redis
    /// (when installed), or with --etcd an etcd cluster against raw etcd-client calls; run under
    /// `taskset -c 0` for pinned figures
    Bench(BenchArgs),
}

impl Command {
    /// The connection flags of a client command; `None` for `serve` and `bench`.
    pub(crate) fn connect_args(&self) -> Option<&ConnectArgs> {
        match self {
            Command::Serve(_) | Command::Bench(_) => None,
            Command::Get(args) => Some(&args.connect),
            Command::Mget(args) => Some(&args.connect),
            Command::Put(args) => Some(&args.connect),
            Command::Del(args) => Some(&args.connect),
            Command::Scan(args) => Some(&args.connect),
            Command::Count(args) => Some(&args.connect),
            Command::Clear(args) => Some(&args.connect),
            Command::Stats(args) => Some(&args.connect),
            Command::Import(args) => Some(&args.connect),
            Command::Export(args) => Some(&args.connect),
        }
    }

    /// The sublevel a client command works in (`--sublevel`, outermost first); empty for the
    /// whole database, and for `stats`, `serve` and `bench`.
    pub(crate) fn sublevels(&self) -> &[String] {
        match self {
            Command::Serve(_) | Command::Bench(_) | Command::Stats(_) => &[],
            Command::Get(args) => &args.sublevel.names,
            Command::Mget(args) => &args.sublevel.names,
            Command::Put(args) => &args.sublevel.names,
            Command::Del(args) => &args.sublevel.names,
            Command::Scan(args) => &args.sublevel.names,
            Command::Count(args) => &args.sublevel.names,
            Command::Clear(args) => &args.sublevel.names,
            Command::Import(args) => &args.sublevel.names,
            Command::Export(args) => &args.sublevel.names,
        }
    }
}

/// `multilevel get`.
#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// The key
    pub(crate) key: String,
    /// text, hex, json or raw (the exact bytes, no newline) [default: raw when stdout is not a
    /// terminal, else text]
    #[arg(long, value_enum, hide_possible_values = true)]
    pub(crate) format: Option<ValueFormat>,
    /// Print the value's exact bytes, no newline (--format raw)
    #[arg(long, conflicts_with = "format")]
    pub(crate) raw: bool,
    /// --hex.
    #[command(flatten)]
    pub(crate) hex: HexArg,
    /// --sublevel.
    #[command(flatten)]
    pub(crate) sublevel: SublevelArg,
    /// Where the server is.
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
}

impl GetArgs {
    /// The format asked for, or `None` to choose by whether stdout is a terminal.
    pub(crate) fn format(&self) -> Option<ValueFormat> {
        if self.raw { Some(ValueFormat::Raw) } else { self.format }
    }
}

/// `multilevel mget`.
#[derive(Debug, Args)]
pub(crate) struct MgetArgs {
    /// The keys
    #[arg(required = true)]
    pub(crate) keys: Vec<String>,
    /// text or hex: `key<TAB>value`, or the key alone when it is missing; json: {"key": K,
    /// "value": V}, V null when it is missing
    #[arg(long, value_enum, default_value_t = Format::Text, hide_possible_values = true)]
    pub(crate) format: Format,
    /// --hex.
    #[command(flatten)]
    pub(crate) hex: HexArg,
    /// --sublevel.
    #[command(flatten)]
    pub(crate) sublevel: SublevelArg,
    /// Where the server is.
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
}

/// `multilevel put`.
#[derive(Debug, Args)]
pub(crate) struct PutArgs {
    /// The key
    pub(crate) key: String,
    /// The value; read as raw bytes from stdin when omitted
    pub(crate) value: Option<String>,
    /// --hex.
    #[command(flatten)]
    pub(crate) hex: HexArg,
    /// --sublevel.
    #[command(flatten)]
    pub(crate) sublevel: SublevelArg,
    /// Where the server is.
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
}

/// `multilevel del`.
#[derive(Debug, Args)]
pub(crate) struct DelArgs {
    /// The key
    pub(crate) key: String,
    /// --hex.
    #[command(flatten)]
    pub(crate) hex: HexArg,
    /// --sublevel.
    #[command(flatten)]
    pub(crate) sublevel: SublevelArg,
    /// Where the server is.
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
}

/// `multilevel stats`.
#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    /// text (`name value` lines) or json (one object)
    #[arg(long, value_enum, default_value_t = StatsFormat::Text, hide_possible_values = true)]
    pub(crate) format: StatsFormat,
    /// Where the server is.
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
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
    /// Let in only clients presenting a token from FILE: lines of `read-write TOKEN` or
    /// `read-only TOKEN` (also read from $MULTILEVEL_TOKENS)
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

/// Bounds of a key range; keys are UTF-8, or hex with `--hex`.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Range")]
pub(crate) struct RangeArgs {
    /// Only keys that start with PREFIX (combines with the bounds below)
    #[arg(long, value_name = "PREFIX")]
    pub(crate) prefix: Option<String>,
    /// Only keys greater than KEY
    #[arg(long, value_name = "KEY", conflicts_with = "gte")]
    pub(crate) gt: Option<String>,
    /// Only keys greater than or equal to KEY
    #[arg(long, value_name = "KEY")]
    pub(crate) gte: Option<String>,
    /// Only keys less than KEY
    #[arg(long, value_name = "KEY", conflicts_with = "lte")]
    pub(crate) lt: Option<String>,
    /// Only keys less than or equal to KEY
    #[arg(long, value_name = "KEY")]
    pub(crate) lte: Option<String>,
    /// From the highest key down
    #[arg(long)]
    pub(crate) reverse: bool,
    /// At most N entries
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<u64>,
}

impl RangeArgs {
    /// Whether any flag narrows the range (`--limit` included).
    pub(crate) fn is_bounded(&self) -> bool {
        self.prefix.is_some()
            || self.gt.is_some()
            || self.gte.is_some()
            || self.lt.is_some()
            || self.lte.is_some()
            || self.limit.is_some()
    }
}

/// `multilevel scan`.
#[derive(Debug, Args)]
pub(crate) struct ScanArgs {
    /// Print keys only
    #[arg(long, conflicts_with = "values_only")]
    pub(crate) keys_only: bool,
    /// Print values only
    #[arg(long)]
    pub(crate) values_only: bool,
    /// text (escaped), hex or json
    #[arg(long, value_enum, default_value_t = Format::Text, hide_possible_values = true)]
    pub(crate) format: Format,
    /// --hex.
    #[command(flatten)]
    pub(crate) hex: HexArg,
    /// The range to print.
    #[command(flatten)]
    pub(crate) range: RangeArgs,
    /// --sublevel.
    #[command(flatten)]
    pub(crate) sublevel: SublevelArg,
    /// Where the server is.
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
}

/// `multilevel count`.
#[derive(Debug, Args)]
pub(crate) struct CountArgs {
    /// --hex.
    #[command(flatten)]
    pub(crate) hex: HexArg,
    /// The range to count.
    #[command(flatten)]
    pub(crate) range: RangeArgs,
    /// --sublevel.
    #[command(flatten)]
    pub(crate) sublevel: SublevelArg,
    /// Where the server is.
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
}

/// `multilevel clear`.
#[derive(Debug, Args)]
pub(crate) struct ClearArgs {
    /// Delete every key: required when no range flag (--prefix, --gt... or --limit) is given
    #[arg(long, conflicts_with_all = ["prefix", "gt", "gte", "lt", "lte", "limit"])]
    pub(crate) all: bool,
    /// --hex.
    #[command(flatten)]
    pub(crate) hex: HexArg,
    /// The range to delete.
    #[command(flatten)]
    pub(crate) range: RangeArgs,
    /// --sublevel.
    #[command(flatten)]
    pub(crate) sublevel: SublevelArg,
    /// Where the server is.
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
}

/// `multilevel import`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// JSON lines file to read; `-` or nothing reads stdin
    pub(crate) file: Option<PathBuf>,
    /// Entries per atomic batch
    #[arg(long, default_value_t = 1000, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) batch_size: u32,
    /// --sublevel.
    #[command(flatten)]
    pub(crate) sublevel: SublevelArg,
    /// Where the server is.
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
}

/// `multilevel export`.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// File to write (replaced once the export is complete); `-` or nothing writes stdout
    pub(crate) file: Option<PathBuf>,
    /// --hex.
    #[command(flatten)]
    pub(crate) hex: HexArg,
    /// The range to export.
    #[command(flatten)]
    pub(crate) range: RangeArgs,
    /// --sublevel.
    #[command(flatten)]
    pub(crate) sublevel: SublevelArg,
    /// Where the server is.
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
}

/// Checks a TCP address: `HOST:PORT`, with a port number; IPv6 hosts in brackets (`[::1]:7481`).
/// The host is looked up when connecting or listening.
pub(crate) fn parse_addr(text: &str) -> Result<String, String> {
    let malformed = || format!("`{text}` is not an address: expected HOST:PORT, e.g. 127.0.0.1:7481 or [::1]:7481");
    let (host, port) = text.rsplit_once(':').ok_or_else(malformed)?;
    let bare_ipv6 = host.contains(':') && !(host.starts_with('[') && host.ends_with(']'));
    if host.is_empty() || host == "[]" || bare_ipv6 || host.contains(char::is_whitespace) {
        return Err(malformed());
    }
    port.parse::<u16>().map_err(|_| malformed())?;
    Ok(text.to_owned())
}

/// Parses a duration with `humantime`: `10s`, `500ms`, `2m`, `1h30m`, `1day`; a bare number is
/// seconds (`10`, `0.5`). Zero is refused.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let duration = match text.parse::<f64>() {
        Ok(seconds) => Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is out of range"))?,
        Err(_) => humantime::parse_duration(text)
            .map_err(|err| format!("`{text}` is not a duration ({err}): expected e.g. 10s, 500ms, 1h30m"))?,
    };
    if duration.is_zero() {
        return Err("the duration must be more than zero".into());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1h 30m 5s"), Ok(Duration::from_secs(5405)));
        assert_eq!(parse_duration("3d"), Ok(Duration::from_secs(3 * 86400)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("10 parsecs").is_err());
    }

    #[test]
    fn addresses() {
        for good in ["127.0.0.1:7481", "localhost:0", "[::1]:7481", "db.example.com:65535"] {
            assert_eq!(parse_addr(good), Ok(good.to_owned()));
        }
        for bad in ["nonsense", "127.0.0.1", ":7481", "host:", "host:65536", "host:port", "::1:7481", "a b:1"] {
            assert!(parse_addr(bad).is_err(), "{bad} was accepted");
        }
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_args(std::iter::once("multilevel").chain(args.iter().copied()).map(OsString::from).collect())
    }

    #[test]
    fn options_before_the_command_apply_to_it() {
        let Ok(Cli { command: Some(Command::Get(get)), .. }) =
            parse(&["--addr", "db:1", "--timeout", "5s", "--hex", "get", "00", "--raw"])
        else {
            panic!("not parsed as get");
        };
        assert_eq!(
            (get.connect.addr.clone(), get.connect.timeout, get.hex.hex),
            (vec!["db:1".to_owned()], Duration::from_secs(5), true)
        );
        assert_eq!((get.key.as_str(), get.format()), ("00", Some(ValueFormat::Raw)));
        let Ok(Cli { command: Some(Command::Serve(serve)), .. }) = parse(&["--listen", "h:2", "serve", "dir"]) else {
            panic!("not parsed as serve");
        };
        assert_eq!((serve.options.listen.as_str(), serve.path.to_str()), ("h:2", Some("dir")));
        // With no command, the options are serve's.
        let Ok(Cli { command: None, serve }) = parse(&["--addr", "h:3", "--readonly"]) else {
            panic!("not parsed as serving");
        };
        assert_eq!((serve.listen.as_str(), serve.readonly), ("h:3", true));
        // Mistakes stay mistakes.
        assert!(parse(&["--frobnicate", "get", "k"]).is_err());
        assert!(parse(&["--addr", "nonsense", "get", "k"]).is_err());
        assert!(parse(&["get", "k", "--listen", "h:1"]).is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        Cli::top_level().debug_assert();
    }
}
