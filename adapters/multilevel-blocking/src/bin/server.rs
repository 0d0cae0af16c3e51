//! `multilevel-blocking-server`: serve an LMDB database over TCP or a Unix socket, on threads.
//!
//! With no arguments it serves `./multilevel-data` on `127.0.0.1:7481`. Its flags are those of
//! `multilevel serve` where they overlap (the path, `--listen` or `$MULTILEVEL_LISTEN`, `--unix`,
//! `--readonly`, `--no-sync`, `--map-size`).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use multilevel_blocking::Server;
use multilevel_store::{Store, StoreOptions, parse_size};

/// Where the server listens when neither `--listen`, `$MULTILEVEL_LISTEN` nor `--unix` says.
const DEFAULT_ADDR: &str = "127.0.0.1:7481";

/// The database directory served when none is given.
const DEFAULT_PATH: &str = "multilevel-data";

/// Shown after `--help`.
const AFTER_HELP: &str = "\
The same server as `multilevel serve`, on std threads instead of tokio, with the flags they share.
TLS, tokens and many-level guests are only in `multilevel serve`.

It listens on --listen, else $MULTILEVEL_LISTEN, else 127.0.0.1:7481 (`--addr` is another name for
--listen); it never reads $MULTILEVEL_ADDR, the clients' setting, so exporting it for a remote
server cannot make a local server try to bind that address.

It prints `multilevel: serving PATH on ADDR` on stdout once listening (with the real port), and
logs to stderr (RUST_LOG, default info). Exit status: 1 if it cannot open the database or listen,
2 for a command-line mistake.";

/// Serve an LMDB database to multilevel clients, on threads
#[derive(Debug, Parser)]
#[command(name = "multilevel-blocking-server", version, after_help = AFTER_HELP)]
struct Args {
    /// The database directory; created if missing (with --readonly it must exist)
    #[arg(default_value = DEFAULT_PATH)]
    path: PathBuf,
    /// Where to listen for TCP connections (port 0 picks a free port); $MULTILEVEL_ADDR, the
    /// clients' setting, is never read here. `--addr` is accepted as an alias
    #[arg(long, alias = "addr", env = "MULTILEVEL_LISTEN", default_value = DEFAULT_ADDR, value_name = "HOST:PORT")]
    listen: String,
    /// Listen on the Unix socket at PATH instead of TCP (owner-only); a stale socket file is
    /// replaced, anything else there is refused
    #[cfg(unix)]
    #[arg(long, value_name = "PATH")]
    unix: Option<PathBuf>,
    /// Refuse every write; the files are opened read-only, and the database must exist
    #[arg(long)]
    readonly: bool,
    /// Do not fsync each commit: faster, but a machine crash may lose the last commits
    #[arg(long)]
    no_sync: bool,
    /// Initial memory map size, e.g. 512MiB, 64GiB, 1TiB or bytes; it grows when full [default: 64GiB]
    ///
    /// KiB, MiB, GiB, TiB (and K, M, G, T) are powers of 1024; KB, MB, GB, TB powers of 1000.
    /// The data file is sparse: a large map costs address space, not disk.
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    map_size: Option<usize>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("multilevel-blocking-server: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut options = StoreOptions::default().readonly(args.readonly).no_sync(args.no_sync);
    if let Some(size) = args.map_size {
        options = options.map_size(size);
    }
    let store = Store::open(&args.path, options).map_err(|err| format!("cannot open the database: {err}"))?;
    let server = Server::new(store);
    #[cfg(unix)]
    if let Some(socket) = &args.unix {
        let listener = multilevel_blocking::bind_unix_replacing_stale(socket)
            .map_err(|err| format!("cannot listen on unix:{err}"))?;
        banner(&args.path, &format!("unix:{}", socket.display()));
        return Ok(server.serve_unix(listener)?);
    }
    let listener = TcpListener::bind(&args.listen).map_err(|err| format!("cannot listen on {}: {err}", args.listen))?;
    banner(&args.path, &listener.local_addr()?.to_string());
    Ok(server.serve_tcp(listener)?)
}

/// Prints `multilevel: serving PATH on ADDR` to stdout, flushed, for scripts to read.
fn banner(path: &std::path::Path, on: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // Nobody reading stdout is no reason to stop serving.
    let _ = writeln!(out, "multilevel: serving {} on {on}", path.display()).and_then(|()| out.flush());
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Args::command().debug_assert();
    }
}
