//! `multilevel-blocking-server`: serve an LMDB database over TCP or a Unix socket, on threads.
//!
//! With no arguments it serves `./multilevel-data` on `127.0.0.1:7481`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use multilevel_blocking::Server;
use multilevel_store::{Store, StoreOptions};

/// Serve an LMDB database to multilevel clients.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The database directory; created if missing.
    #[arg(default_value = "multilevel-data")]
    path: PathBuf,
    /// TCP address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:7481", env = "MULTILEVEL_ADDR")]
    addr: String,
    /// Listen on this Unix socket path instead of TCP.
    #[cfg(unix)]
    #[arg(long)]
    unix: Option<PathBuf>,
    /// Refuse every write.
    #[arg(long)]
    readonly: bool,
    /// Do not fsync commits: faster, but a machine crash may lose the last commits.
    #[arg(long)]
    no_sync: bool,
    /// Initial map size in MiB (the file is sparse; it grows when full).
    #[arg(long)]
    map_size_mib: Option<usize>,
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
    if let Some(mib) = args.map_size_mib {
        options = options.map_size(mib << 20);
    }
    let store = Store::open(&args.path, options)
        .map_err(|err| format!("cannot open the database at {}: {err}", args.path.display()))?;
    let server = Server::new(store);
    #[cfg(unix)]
    if let Some(socket) = &args.unix {
        let _ = std::fs::remove_file(socket); // a stale socket from a previous run
        let listener = std::os::unix::net::UnixListener::bind(socket)
            .map_err(|err| format!("cannot listen on {}: {err}", socket.display()))?;
        println!("multilevel: serving {} on unix:{}", args.path.display(), socket.display());
        return Ok(server.serve_unix(listener)?);
    }
    let listener = TcpListener::bind(&args.addr).map_err(|err| format!("cannot listen on {}: {err}", args.addr))?;
    println!("multilevel: serving {} on {}", args.path.display(), listener.local_addr()?);
    Ok(server.serve_tcp(listener)?)
}
