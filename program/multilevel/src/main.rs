//! `multilevel`: serve an LMDB database (or, with the `etcd` feature, an etcd cluster) over TCP
//! or a Unix socket (`multilevel serve`, or no command at all), and talk to a server from the
//! shell in the spirit of `redis-cli`: `get`, `mget`, `put`, `del`, `scan`, `count`, `clear`,
//! `stats`, `import` and `export` of JSON lines.
//!
//! `multilevel --help` documents the formats; the README has a tour.

use std::fmt;
use std::io::{self, IsTerminal};
use std::process::ExitCode;
use std::time::Duration;

mod args;
mod commands;
mod connect;
mod encoding;
mod jsonl;
mod metrics;
mod serve;
mod watch;

use args::{Cli, Command, ServeArgs};
use connect::Connection;

/// Why the program stops with a non-zero status (or, for a closed stdout, quietly).
#[derive(Debug)]
pub(crate) struct Failure {
    /// The one-line message printed after `multilevel: `; `None` prints nothing.
    message: Option<String>,
    /// The exit status.
    code: u8,
}

impl Failure {
    /// A failure with this message and exit status 1.
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self { message: Some(message.into()), code: 1 }
    }

    /// A failure to write the output. When the reader went away (`multilevel scan | head`)
    /// there is nobody to tell: exit quietly, successfully.
    pub(crate) fn output(err: io::Error) -> Self {
        if err.kind() == io::ErrorKind::BrokenPipe {
            Self { message: None, code: 0 }
        } else {
            Self::new(format!("cannot write the output: {err}"))
        }
    }

    /// A command-line mistake found after parsing (such as bad hex): exit status 2.
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self { message: Some(message.into()), code: 2 }
    }

    /// This failure with `context` in front of its message.
    pub(crate) fn context(self, context: &str) -> Self {
        Self { message: self.message.map(|message| format!("{context}: {message}")), code: self.code }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message.as_deref().unwrap_or(""))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse_args();
    let serving = matches!(cli.command, None | Some(Command::Serve(_)));
    init_logging(if serving { "info" } else { "warn" });
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("multilevel: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // Do not wait for a blocking reader still parked on stdin, or for lingering connections.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if let Some(message) = &failure.message {
                eprintln!("multilevel: {message}");
            }
            ExitCode::from(failure.code)
        }
    }
}

/// Logs to stderr, at `RUST_LOG`'s levels, else at `default`.
fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .init();
}

/// `multilevel bench`: starts its own servers (this executable) and prints the figures.
async fn bench(args: args::BenchArgs) -> Result<(), Failure> {
    let exe = std::env::current_exe().map_err(|err| Failure::new(format!("cannot find this executable: {err}")))?;
    let mut config = multilevel::bench::BenchConfig {
        keys: args.keys,
        value_size: args.value_size,
        ops: args.ops,
        clients: args.clients,
        depth: args.depth,
        redis: !args.no_redis,
        server_exe: exe,
    };
    if args.quick {
        config = config.quick();
    }
    let report = if args.etcd.is_empty() {
        multilevel::bench::run(&config).await
    } else {
        bench_etcd(&config, &args.etcd).await?
    };
    let report = report.map_err(|err| Failure::new(format!("bench: {err}")))?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

/// `multilevel bench --etcd`: the workloads on a cluster, next to raw etcd-client calls.
#[cfg(feature = "etcd")]
async fn bench_etcd(
    config: &multilevel::bench::BenchConfig,
    endpoints: &[String],
) -> Result<std::io::Result<multilevel::bench::Report>, Failure> {
    Ok(multilevel::bench::run_etcd(config, endpoints).await)
}

/// `multilevel bench --etcd` in a program built without the `etcd` feature.
#[cfg(not(feature = "etcd"))]
async fn bench_etcd(
    _config: &multilevel::bench::BenchConfig,
    _endpoints: &[String],
) -> Result<std::io::Result<multilevel::bench::Report>, Failure> {
    Err(Failure::usage(
        "this multilevel was built without etcd support: build it with `cargo build --release -p multilevel \
         --features etcd` (which needs protoc)",
    ))
}

/// Runs the command line: serves, benches, or connects and runs one client command.
async fn run(cli: Cli) -> Result<(), Failure> {
    let command = match cli.command {
        None => return serve::serve(ServeArgs { path: args::DEFAULT_PATH.into(), options: cli.serve }).await,
        Some(Command::Serve(args)) => return serve::serve(args).await,
        Some(Command::Bench(args)) => return bench(args).await,
        Some(command) => command,
    };
    // Mistakes in the arguments are found before connecting, and exit with status 2.
    let prepared = commands::Prepared::new(&command)?;
    let setup = command.client().ok_or_else(|| Failure::new("not a client command"))?;
    let db = Connection::open(&setup).await?;
    let result = prepared.run(&db).await;
    db.close().await;
    result
}
