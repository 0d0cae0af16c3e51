//! The command line: global flags, subcommands, and the parsers for sizes and durations.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::connect::Target;

/// Where `serve` listens and clients connect when neither `--addr` nor `MULTILEVEL_ADDR` says.
pub(crate) const DEFAULT_ADDR: &str = "127.0.0.1:7481";

/// The database directory `serve` uses when none is given.
pub(crate) const DEFAULT_PATH: &str = "multilevel-data";

/// Shown after `multilevel --help`.
const AFTER_HELP: &str = "\
With no command, `multilevel` serves ./multilevel-data on 127.0.0.1:7481, like `multilevel serve`.

Address: clients connect to --addr, else $MULTILEVEL_ADDR, else 127.0.0.1:7481; --unix PATH uses a
Unix socket instead. `serve` listens where clients would connect.

Input: keys and values on the command line are UTF-8 text; with --hex they are hex (`put --hex 00ff
cafe`). `put KEY` without VALUE reads the value, as raw bytes, from stdin.

Output (--format):
  text  the bytes as UTF-8; bytes that are not valid UTF-8 are shown as \\xNN (default)
  hex   lowercase hex
  json  one JSON object per line, as in JSON lines below
`scan` prints one entry per line, key and value separated by a tab; `stats` prints `name value`
lines (one JSON object with --format json).

JSON lines (import, export, --format json): one object per line,
  {\"key\":\"fruit/apple\",\"value\":\"red\"}
where a key or value is a JSON string when its bytes are valid UTF-8, and {\"hex\":\"...\"}
otherwise, so any bytes round-trip: {\"key\":\"blob\",\"value\":{\"hex\":\"00ff\"}}.

Exit status: 0 on success; 1 on any error, and for `get` of a missing key (nothing is printed on
stdout, `multilevel: not found: KEY` on stderr); 2 for a command-line mistake.";

/// Shown after `multilevel import --help` and `multilevel export --help`.
const JSONL_HELP: &str = "\
JSON lines: one object per line, {\"key\": K, \"value\": V}, where K and V are JSON strings when the
bytes are valid UTF-8 and {\"hex\": \"...\"} objects otherwise, so any bytes round-trip:
  {\"key\":\"fruit/apple\",\"value\":\"red\"}
  {\"key\":\"blob\",\"value\":{\"hex\":\"00ff\"}}
`export` writes exactly this (no spaces, keys in order); `import` accepts any JSON spacing, skips
blank lines, and stops at the first bad line, naming it. Progress shows on stderr when it is a
terminal; at the end a summary (`imported N entries`, `exported N entries`) goes to stderr.";

/// Share an LMDB database over TCP or a Unix socket, and talk to it.
#[derive(Debug, Parser)]
#[command(name = "multilevel", version, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    /// Flags every command takes.
    #[command(flatten)]
    pub(crate) global: Global,
    /// What to do; `serve` when absent.
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

/// Flags every command takes (`global`: accepted before or after the command name).
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub(crate) struct Global {
    /// The server's TCP address; for `serve`, where to listen (port 0 picks a free port)
    #[arg(long, global = true, env = "MULTILEVEL_ADDR", default_value = DEFAULT_ADDR, value_name = "HOST:PORT")]
    pub(crate) addr: String,
    /// Use the Unix socket at PATH instead of TCP; for `serve`, listen on it
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) unix: Option<PathBuf>,
    /// Keys and values on the command line are hex
    #[arg(long, global = true)]
    pub(crate) hex: bool,
    /// How to print keys and values
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,
    /// Give up connecting, and give up on each request, after this long (e.g. 10s, 500ms, 2m)
    #[arg(long, global = true, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) timeout: Duration,
    /// Read the token to present from FILE (else from $MULTILEVEL_TOKEN); never pass a token as
    /// an argument, other users see arguments in `ps`
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) token_file: Option<PathBuf>,
    /// Connect over TLS, trusting the CA certificate(s) in this PEM file
    #[arg(long, global = true, value_name = "PEM")]
    pub(crate) tls_ca: Option<PathBuf>,
    /// The server name to verify over TLS [default: the host of --addr]
    #[arg(long, global = true, value_name = "NAME")]
    pub(crate) tls_name: Option<String>,
}

/// How keys and values are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// UTF-8, with bytes that are not valid UTF-8 shown as \xNN
    Text,
    /// Lowercase hex
    Hex,
    /// One JSON object per line: {"key": K, "value": V}, K and V strings or {"hex": "..."}
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve an LMDB database (what `multilevel` does with no command)
    Serve(ServeArgs),
    /// Print the value of KEY; exit status 1, and nothing on stdout, if it is missing
    Get {
        /// The key
        key: String,
    },
    /// Set KEY to VALUE
    Put {
        /// The key
        key: String,
        /// The value; read as raw bytes from stdin when omitted
        value: Option<String>,
    },
    /// Delete KEY (deleting a missing key is not an error)
    Del {
        /// The key
        key: String,
    },
    /// Print the entries of a key range, in key order: `key<TAB>value` per line
    Scan(ScanArgs),
    /// Print the server's counters: entries, map size, open connections...
    Stats,
    /// Write entries from JSON lines ({"key": K, "value": V} per line), in atomic batches
    #[command(after_help = JSONL_HELP)]
    Import(ImportArgs),
    /// Print entries as JSON lines ({"key": K, "value": V} per line), in key order
    #[command(after_help = JSONL_HELP)]
    Export(ExportArgs),
    /// Measure a server started for the run against raw LMDB, a loopback ping-pong and Redis
    /// (when installed); run under `taskset -c 0` for pinned figures
    Bench(BenchArgs),
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
}

/// `multilevel serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The database directory; created if missing
    #[arg(default_value = DEFAULT_PATH)]
    pub(crate) path: PathBuf,
    /// Refuse every write; the files are opened read-only
    #[arg(long)]
    pub(crate) readonly: bool,
    /// Do not fsync each commit: faster, but a machine crash may lose the last commits
    #[arg(long)]
    pub(crate) no_sync: bool,
    /// Initial memory map size, e.g. 512MiB, 64GiB, 1TiB or bytes; it grows when full [default: 64GiB]
    ///
    /// KiB, MiB, GiB, TiB (and K, M, G, T) are powers of 1024; KB, MB, GB, TB powers of 1000.
    /// The data file is sparse: a large map costs address space, not disk.
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
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
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "many_level_unix")]
    pub(crate) many_level_addr: Option<String>,
    /// Also serve many-level 2.0 guests (Node) on the Unix socket at PATH, from the same
    /// database and process (owner-only, like --unix)
    #[arg(long, value_name = "PATH")]
    pub(crate) many_level_unix: Option<PathBuf>,
}

impl ServeArgs {
    /// Where `--many-level-addr` or `--many-level-unix` asks for a second, many-level listener.
    pub(crate) fn many_level_target(&self) -> Option<Target> {
        match (&self.many_level_unix, &self.many_level_addr) {
            (Some(path), _) => Some(Target::Unix(path.clone())),
            (None, Some(addr)) => Some(Target::Tcp(addr.clone())),
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

impl Default for ServeArgs {
    fn default() -> Self {
        Self {
            path: PathBuf::from(DEFAULT_PATH),
            readonly: false,
            no_sync: false,
            map_size: None,
            tokens_file: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            max_connections: 10_000,
            protocol: WireProtocol::Multilevel,
            many_level_addr: None,
            many_level_unix: None,
        }
    }
}

/// Bounds of a key range; keys are UTF-8, or hex with `--hex`.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct RangeArgs {
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

/// `multilevel scan`.
#[derive(Debug, Args)]
pub(crate) struct ScanArgs {
    /// The range to print.
    #[command(flatten)]
    pub(crate) range: RangeArgs,
    /// Print keys only
    #[arg(long, conflicts_with = "values_only")]
    pub(crate) keys_only: bool,
    /// Print values only
    #[arg(long)]
    pub(crate) values_only: bool,
}

/// `multilevel import`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// JSON lines file to read; `-` or nothing reads stdin
    pub(crate) file: Option<PathBuf>,
    /// Entries per atomic batch
    #[arg(long, default_value_t = 1000, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) batch_size: u32,
}

/// `multilevel export`.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// File to write (replaced if it exists); `-` or nothing writes stdout
    pub(crate) file: Option<PathBuf>,
    /// The range to export.
    #[command(flatten)]
    pub(crate) range: RangeArgs,
}

/// Parses a size in bytes: `4096`, `512MiB`, `64GiB`, `1TiB`, `10MB` (powers of 1000), `2G`
/// (a bare letter is a power of 1024).
pub(crate) fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 =
        number.parse().map_err(|_| format!("`{text}` is not a size: expected e.g. 4096, 512MiB, 64GiB"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => return Err(format!("unknown size unit `{other}`: use B, KiB, MiB, GiB, TiB (or KB, MB, GB, TB)")),
    };
    number
        .checked_mul(multiplier)
        .and_then(|bytes| usize::try_from(bytes).ok())
        .ok_or_else(|| format!("`{text}` is too large for this machine"))
}

/// Parses a duration: `10s`, `500ms`, `1.5s`, `2m`, `1h`; a bare number is seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("`{text}` is not a duration: expected e.g. 10s, 500ms"))?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        other => return Err(format!("unknown duration unit `{other}`: use ms, s, m or h")),
    };
    match Duration::try_from_secs_f64(seconds) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        Ok(_) => Err("the duration must be more than zero".into()),
        Err(_) => Err(format!("`{text}` is out of range")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("64GiB"), Ok(64 << 30));
        assert_eq!(parse_size("64gib"), Ok(64 << 30));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("1 TiB"), Ok(1 << 40));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("12parsecs").is_err());
        assert!(parse_size("99999999999999TiB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3d").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
