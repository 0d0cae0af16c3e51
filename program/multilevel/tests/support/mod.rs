//! What the program's test files share: the binary with a clean environment, `multilevel
//! serve` children read up to their banner, and client commands run to completion within a
//! deadline. Every child is bounded in time and killed on drop, so a failing test leaves no
//! process behind.

// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The program under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_multilevel");
/// The longest any child may run before the test fails (slow, shared CI machines included).
pub(crate) const DEADLINE: Duration = Duration::from_secs(60);
/// The longest a server may take to print its banner.
pub(crate) const BANNER_WITHIN: Duration = Duration::from_secs(30);

/// The program, with the environment it could pick settings from cleared.
pub(crate) fn program() -> Command {
    let mut command = Command::new(BIN);
    command.env_remove("MULTILEVEL_ADDR").env_remove("MULTILEVEL_LISTEN").env_remove("RUST_LOG");
    command.env_remove("MULTILEVEL_TOKENS").env_remove("MULTILEVEL_TOKEN");
    command
}

/// A `multilevel serve` child; killed when dropped.
pub(crate) struct ServerProcess {
    /// The `multilevel serve` process.
    pub(crate) child: Child,
    /// Where it listens: `host:port`, or the socket path for `--unix` (the rest of the first
    /// banner line after the prefix it was started with).
    pub(crate) addr: String,
    /// The banner lines read at start (`multilevel: serving ...`).
    pub(crate) banners: Vec<String>,
    /// Keeps the temp dir (the database) alive as long as the server.
    pub(crate) dir: Option<TempDir>,
}

impl ServerProcess {
    /// `multilevel serve <tempdir>/db --listen 127.0.0.1:0`.
    pub(crate) fn tcp() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let mut command = program();
        command.arg("serve").arg(&db).args(["--listen", "127.0.0.1:0"]);
        let mut server = Self::start(command, &format!("multilevel: serving {} on ", db.display()));
        server.dir = Some(dir);
        server
    }

    /// Starts `command` and reads its banner, which must start with `prefix`; the rest of the
    /// line is the address.
    pub(crate) fn start(command: Command, prefix: &str) -> Self {
        Self::start_with_banners(command, prefix, 1)
    }

    /// [`start`](Self::start), reading `banners` banner lines (a listener each).
    pub(crate) fn start_with_banners(mut command: Command, prefix: &str, banners: usize) -> Self {
        let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Keeps reading (and discarding) after the banner, so the child never blocks on a full pipe.
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut server = Self { child, addr: String::new(), banners: Vec::new(), dir: None };
        for _ in 0..banners {
            let line = rx
                .recv_timeout(BANNER_WITHIN)
                .unwrap_or_else(|_| panic!("no banner from `multilevel serve` within {BANNER_WITHIN:?}"));
            server.banners.push(line);
        }
        let line = &server.banners[0];
        let addr =
            line.strip_prefix(prefix).unwrap_or_else(|| panic!("banner {line:?} does not start with {prefix:?}"));
        server.addr = addr.trim_end().to_owned();
        assert!(!server.addr.ends_with(":0"), "the banner shows the real port: {line:?}");
        server
    }

    /// Runs a client command against this server over TCP and returns its output; the
    /// connection options go after `args` (the command and its arguments).
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None)
    }

    /// [`run`](Self::run), with `stdin` piped to the command.
    pub(crate) fn run_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut command = program();
        command.args(args).args(["--addr", &self.addr, "--timeout", "20s"]);
        run(command, stdin)
    }

    /// Runs a client command that must succeed and returns its stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        stdout_of(self.run(args), args)
    }

    /// Sends SIGTERM and waits for the exit.
    #[cfg(unix)]
    pub(crate) fn terminate(&mut self) -> ExitStatus {
        signal(&self.child, "TERM");
        wait_within(&mut self.child, Duration::from_secs(30)).expect("the server stops within 30 s of SIGTERM")
    }

    /// SIGKILLs the server and waits for it.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `child` the signal `name` (`TERM`, `STOP`, `CONT`...) with kill(1).
#[cfg(unix)]
pub(crate) fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status().unwrap();
    assert!(status.success(), "kill -{name} failed");
}

/// Waits for `child` to exit, at most `limit`.
pub(crate) fn wait_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if start.elapsed() > limit {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `command` to completion with `stdin`, within [`DEADLINE`].
pub(crate) fn run(mut command: Command, stdin: Option<&[u8]>) -> Output {
    command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let input = input.to_vec();
        thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    finish(child)
}

/// Waits for `child`, at most [`DEADLINE`] (killing it and failing the test past it), and
/// collects what it wrote on the pipes still attached.
pub(crate) fn finish(mut child: Child) -> Output {
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut out);
            }
            out
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let Some(status) = wait_within(&mut child, DEADLINE) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("a command did not finish within {DEADLINE:?}");
    };
    Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}

/// The stdout of a run that must have succeeded.
pub(crate) fn stdout_of(output: Output, args: &[&str]) -> String {
    assert!(
        output.status.success(),
        "multilevel {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// What a command printed on stderr.
pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A TCP port where nothing listens.
pub(crate) fn refused_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// `{"key":K,"value":V}` lines, for keys and values that need no JSON escaping.
pub(crate) fn jsonl(entries: impl IntoIterator<Item = (String, String)>) -> String {
    entries.into_iter().map(|(key, value)| format!("{{\"key\":\"{key}\",\"value\":\"{value}\"}}\n")).collect()
}

/// A CA and a certificate for `localhost` signed by it, as PEM files in `dir`.
pub(crate) fn make_pki(dir: &std::path::Path) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()]).unwrap().signed_by(&key, &ca).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
}
