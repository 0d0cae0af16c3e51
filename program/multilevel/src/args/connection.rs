//! `--addr`, `--unix`, `--timeout`, `--retry` and the rest of how a client command reaches the
//! server: the "Connection" options every client command takes.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::DEFAULT_ADDR;
use super::parse::{parse_addr, parse_duration};
use crate::connect::Target;

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
    /// Reconnect when the connection is lost (a server restart, a cut network) and carry on: a
    /// scan or export resumes after its last entry, a write is applied at most once [default:
    /// on for scan, export, import and several --addr]. A server that stays away still fails
    /// the command after --timeout, which bounds each request, reconnecting included; a
    /// transfer that keeps making progress is never cut short
    #[arg(long, overrides_with = "no_retry")]
    pub(crate) retry: bool,
    /// Fail when the connection is lost [default: get, mget, put, del, count, clear and stats
    /// with one address]
    #[arg(long, overrides_with = "retry")]
    pub(crate) no_retry: bool,
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

    /// Whether to reconnect and carry on when the connection is lost: as `--retry` or
    /// `--no-retry` says, else for a long transfer (`transfer`: scan, export, import) and for
    /// several addresses (to carry on through the next server).
    pub(crate) fn retry(&self, transfer: bool) -> bool {
        let several = matches!(self.target(), Target::Tcp(addrs) if addrs.len() > 1);
        if self.retry {
            true
        } else if self.no_retry {
            false
        } else {
            transfer || several
        }
    }
}
