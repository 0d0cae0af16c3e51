//! The client commands' own arguments and output formats (`get` ... `export`); the options
//! they share are [`KeyOptions`], [`RangeOptions`] and [`ScopeArgs`].

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::connection::ConnectArgs;
use super::keys::{KeyOptions, RangeOptions, ScopeArgs};

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
    /// --hex, --sublevel and the connection.
    #[command(flatten)]
    pub(crate) shared: KeyOptions,
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
    /// --hex, --sublevel and the connection.
    #[command(flatten)]
    pub(crate) shared: KeyOptions,
}

/// `multilevel put`.
#[derive(Debug, Args)]
pub(crate) struct PutArgs {
    /// The key
    pub(crate) key: String,
    /// The value; read as raw bytes from stdin when omitted
    pub(crate) value: Option<String>,
    /// --hex, --sublevel and the connection.
    #[command(flatten)]
    pub(crate) shared: KeyOptions,
}

/// `multilevel del`.
#[derive(Debug, Args)]
pub(crate) struct DelArgs {
    /// The key
    pub(crate) key: String,
    /// --hex, --sublevel and the connection.
    #[command(flatten)]
    pub(crate) shared: KeyOptions,
}

/// `multilevel incr`.
#[derive(Debug, Args)]
pub(crate) struct IncrArgs {
    /// The key
    pub(crate) key: String,
    /// What to add
    #[arg(default_value_t = 1, allow_negative_numbers = true)]
    pub(crate) by: i64,
    /// --hex, --sublevel and the connection.
    #[command(flatten)]
    pub(crate) shared: KeyOptions,
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
    /// --hex, the range to print, --sublevel and the connection.
    #[command(flatten)]
    pub(crate) shared: RangeOptions,
}

/// `multilevel watch`.
#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// Replay the changes committed after POSITION (a position an earlier watch printed), then
    /// go on live; without it, only changes from now on
    #[arg(long, value_name = "POSITION")]
    pub(crate) from: Option<u64>,
    /// Print keys only (puts without their values)
    #[arg(long)]
    pub(crate) keys_only: bool,
    /// text (escaped), hex or json
    #[arg(long, value_enum, default_value_t = Format::Text, hide_possible_values = true)]
    pub(crate) format: Format,
    /// --hex, the range to watch (--limit: stop after N changes), --sublevel and the connection.
    #[command(flatten)]
    pub(crate) shared: RangeOptions,
}

/// `multilevel count`.
#[derive(Debug, Args)]
pub(crate) struct CountArgs {
    /// --hex, the range to count, --sublevel and the connection.
    #[command(flatten)]
    pub(crate) shared: RangeOptions,
}

/// `multilevel clear`.
#[derive(Debug, Args)]
pub(crate) struct ClearArgs {
    /// Delete every key: required when no range flag (--prefix, --gt... or --limit) is given
    #[arg(long, conflicts_with_all = ["prefix", "gt", "gte", "lt", "lte", "limit"])]
    pub(crate) all: bool,
    /// --hex, the range to delete, --sublevel and the connection.
    #[command(flatten)]
    pub(crate) shared: RangeOptions,
}

/// `multilevel import`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// JSON lines file to read; `-` or nothing reads stdin
    pub(crate) file: Option<PathBuf>,
    /// Entries per atomic batch
    #[arg(long, default_value_t = 1000, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) batch_size: u32,
    /// --sublevel and the connection.
    #[command(flatten)]
    pub(crate) scope: ScopeArgs,
}

/// `multilevel export`.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// File to write (replaced once the export is complete); `-` or nothing writes stdout
    pub(crate) file: Option<PathBuf>,
    /// --hex, the range to export, --sublevel and the connection.
    #[command(flatten)]
    pub(crate) shared: RangeOptions,
}
