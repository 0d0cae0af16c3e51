//! The option groups of the commands that take keys: `--hex`, `--sublevel`, the range flags
//! ("Range"), and the groups they are flattened into, written once for every command.

use clap::Args;

use super::connection::ConnectArgs;

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

/// Where a command's keys live: `--sublevel`, then the connection options.
#[derive(Debug, Clone, Args)]
pub(crate) struct ScopeArgs {
    /// --sublevel.
    #[command(flatten)]
    pub(crate) sublevel: SublevelArg,
    /// Where the server is.
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
}

/// The options of a command that takes keys (`get`, `mget`, `put`, `del`): `--hex`, then
/// [`ScopeArgs`].
#[derive(Debug, Clone, Args)]
pub(crate) struct KeyOptions {
    /// --hex.
    #[command(flatten)]
    pub(crate) hex: HexArg,
    /// --sublevel and the connection.
    #[command(flatten)]
    pub(crate) scope: ScopeArgs,
}

/// The options of a command that works on a key range (`scan`, `count`, `clear`, `export`):
/// `--hex`, the range flags, then [`ScopeArgs`].
#[derive(Debug, Clone, Args)]
pub(crate) struct RangeOptions {
    /// --hex.
    #[command(flatten)]
    pub(crate) hex: HexArg,
    /// The range.
    #[command(flatten)]
    pub(crate) range: RangeArgs,
    /// --sublevel and the connection.
    #[command(flatten)]
    pub(crate) scope: ScopeArgs,
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
