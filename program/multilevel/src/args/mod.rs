//! The command line, a file per group: the top level and the list of commands here; the long
//! help texts in `help`; the connection options every client command takes in `connection`;
//! `--hex`, `--sublevel` and the range flags in `keys`; each client command's own arguments in
//! `client`; `serve` and `bench` in `serve`; the address and duration parsers in `parse`.

use std::ffi::OsString;

use clap::{Parser, Subcommand};

mod client;
mod connection;
mod help;
mod keys;
mod parse;
mod serve;

pub(crate) use client::{
    ClearArgs, CountArgs, DelArgs, ExportArgs, Format, GetArgs, ImportArgs, IncrArgs, MgetArgs, PutArgs, ScanArgs,
    StatsArgs, StatsFormat, ValueFormat, WatchArgs,
};
pub(crate) use connection::{ConnectArgs, Target};
pub(crate) use keys::{HexArg, RangeArgs};
pub(crate) use serve::{BenchArgs, Place, ServeArgs, ServeOptions};

use help::{AFTER_HELP, GET_HELP, JSONL_HELP, WATCH_HELP};

/// Where `serve` listens and clients connect when neither `--addr` nor `MULTILEVEL_ADDR` says.
pub(crate) const DEFAULT_ADDR: &str = "127.0.0.1:7481";

/// The database directory `serve` uses when none is given.
pub(crate) const DEFAULT_PATH: &str = "multilevel-data";

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
    /// Add BY (default 1, may be negative) to the counter at KEY on the server and print its
    /// new value; counters are decimal text, a missing key counts as 0
    Incr(IncrArgs),
    /// Print the entries of a key range, in key order: `key<TAB>value` per line
    Scan(ScanArgs),
    /// Print the changes to a key range as they are committed, one per line, until interrupted:
    /// `position<TAB>put<TAB>key<TAB>value` or `position<TAB>del<TAB>key`
    #[command(after_help = WATCH_HELP)]
    Watch(WatchArgs),
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

/// What a client command needs to connect.
pub(crate) struct ClientSetup<'a> {
    /// The connection options.
    pub(crate) connect: &'a ConnectArgs,
    /// The sublevel the command works in (`--sublevel`, outermost first); empty for the whole
    /// database.
    pub(crate) sublevels: &'a [String],
    /// Whether to reconnect and carry on when the connection is lost (`--retry`).
    pub(crate) retry: bool,
}

impl Command {
    /// How a client command connects; `None` for `serve` and `bench`. Retry is on by default
    /// for the long transfers (`scan`, `export`, `import`) and `watch`.
    pub(crate) fn client(&self) -> Option<ClientSetup<'_>> {
        let (scope, transfer) = match self {
            Command::Serve(_) | Command::Bench(_) => return None,
            Command::Stats(args) => {
                let retry = args.connect.retry(false);
                return Some(ClientSetup { connect: &args.connect, sublevels: &[], retry });
            }
            Command::Get(args) => (&args.shared.scope, false),
            Command::Mget(args) => (&args.shared.scope, false),
            Command::Put(args) => (&args.shared.scope, false),
            Command::Del(args) => (&args.shared.scope, false),
            Command::Incr(args) => (&args.shared.scope, false),
            Command::Count(args) => (&args.shared.scope, false),
            Command::Clear(args) => (&args.shared.scope, false),
            Command::Scan(args) => (&args.shared.scope, true),
            Command::Watch(args) => (&args.shared.scope, true),
            Command::Export(args) => (&args.shared.scope, true),
            Command::Import(args) => (&args.scope, true),
        };
        let retry = scope.connect.retry(transfer);
        Some(ClientSetup { connect: &scope.connect, sublevels: &scope.sublevel.names, retry })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

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
            (get.shared.scope.connect.addr.clone(), get.shared.scope.connect.timeout, get.shared.hex.hex),
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
    fn long_transfers_retry_by_default() {
        let retry = |args: &[&str]| match parse(args) {
            Ok(Cli { command: Some(command), .. }) => command.client().map(|setup| setup.retry),
            Ok(_) => panic!("no command in {args:?}"),
            Err(err) => panic!("{args:?}: {err}"),
        };
        for transfer in [&["scan"][..], &["export", "f"], &["import", "f"]] {
            assert_eq!(retry(transfer), Some(true), "{transfer:?}");
            assert_eq!(retry(&[transfer, &["--no-retry"]].concat()), Some(false), "{transfer:?} --no-retry");
        }
        for one_shot in [&["get", "k"][..], &["put", "k", "v"], &["del", "k"], &["mget", "k"], &["count"]] {
            assert_eq!(retry(one_shot), Some(false), "{one_shot:?}");
            assert_eq!(retry(&[one_shot, &["--retry"]].concat()), Some(true), "{one_shot:?} --retry");
        }
        assert_eq!(retry(&["clear", "--all", "--addr", "a:1,b:2"]), Some(true), "several addresses fail over");
        assert_eq!(retry(&["stats", "--addr", "a:1,b:2", "--no-retry"]), Some(false));
        assert_eq!(retry(&["get", "k", "--retry", "--no-retry"]), Some(false), "the last one wins");
        assert_eq!(retry(&["--retry", "get", "k"]), Some(true), "before the command");
        assert_eq!(retry(&["serve"]), None);
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        Cli::top_level().debug_assert();
    }
}
