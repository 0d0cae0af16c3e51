//! Tests across processes: the test binary runs itself again as a child (`--ignored --exact
//! NAME`), a server over an LMDB directory or a client, which reports on its stdout in tagged
//! lines; the parent kills (SIGKILL) and restarts them. Children exit once their stdin closes,
//! so a parent that dies without dropping its guards leaves no orphan behind.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use multilevel_store::{Store, StoreOptions};

/// Every line the children report starts with this, wherever the test harness puts it.
pub const TAG: &str = "proctest: ";
/// The server child's LMDB directory.
pub const ENV_DIR: &str = "MULTILEVEL_PROC_CHILD_DIR";
/// The server child's port on 127.0.0.1.
pub const ENV_PORT: &str = "MULTILEVEL_PROC_CHILD_PORT";

/// An environment variable the parent set for a child.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is set by the parent test"))
}

/// Makes this child exit (status 3) once its stdin closes, that is once the parent is gone.
pub fn exit_when_the_parent_goes() {
    thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(3);
    });
}

/// Reports one line: the tag, then the words, flushed at once.
pub fn report(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "\n{TAG}{line}").and_then(|()| out.flush()).expect("stdout");
}

/// The payload of a tagged line, wherever the harness put the tag.
pub fn tagged(line: &str) -> Option<&str> {
    line.find(TAG).map(|at| line[at + TAG.len()..].trim())
}

/// The body of a server child's test: serves the LMDB directory `$ENV_DIR` on
/// `127.0.0.1:$ENV_PORT` with the blocking server until killed, reporting `serving` first.
pub fn serve_lmdb_child() {
    exit_when_the_parent_goes();
    let dir = env(ENV_DIR);
    let port: u16 = env(ENV_PORT).parse().expect("a port");
    let store = Store::open(&dir, StoreOptions::default()).expect("the store opens");
    // std sets SO_REUSEADDR on Unix listeners, so connections of the killed server lingering in
    // TIME_WAIT do not block the port; retry a while anyway in case the old socket is not gone.
    let started = Instant::now();
    let listener = loop {
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(listener) => break listener,
            Err(err) if started.elapsed() < Duration::from_secs(5) => {
                eprintln!("server child: bind 127.0.0.1:{port}: {err}; retrying");
                thread::sleep(Duration::from_millis(50));
            }
            Err(err) => panic!("server child: bind 127.0.0.1:{port}: {err}"),
        }
    };
    report(format_args!("serving {port}"));
    multilevel_blocking::Server::new(store).serve_tcp(listener).expect("serve");
}

/// A child process killed (SIGKILL) and reaped when dropped, also on a panic.
pub struct Guard {
    /// The process.
    pub child: Child,
    /// Held open: the child exits when it closes.
    _stdin: Option<ChildStdin>,
}

impl Guard {
    /// Runs this test binary's ignored test `test` as a child with `envs`; returns its stdout.
    pub fn spawn(test: &str, envs: &[(&str, String)]) -> (Self, BufReader<ChildStdout>) {
        let mut command = Command::new(std::env::current_exe().expect("the test binary"));
        command.args(["--ignored", "--exact", test, "--nocapture", "--test-threads", "1"]);
        command.envs(envs.iter().map(|(k, v)| (k, v))).stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = command.spawn().expect("the test binary runs again");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let stdin = child.stdin.take();
        (Self { child, _stdin: stdin }, stdout)
    }

    /// Kills the child (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the child to exit, failing after `deadline` from `started`.
    pub fn wait_until(&mut self, started: Instant, deadline: Duration, what: &str) -> std::process::ExitStatus {
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for a child") {
                return status;
            }
            assert!(started.elapsed() < deadline, "{what} still running after {deadline:?}");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts the server child (the ignored test `test`, whose body is [`serve_lmdb_child`]) over
/// `dir` on `port`, and waits for its ready line.
pub fn start_server(test: &str, dir: &Path, port: u16) -> Guard {
    let (guard, mut stdout) = Guard::spawn(test, &[(ENV_DIR, dir.display().to_string()), (ENV_PORT, port.to_string())]);
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stdout.read_line(&mut line).expect("the server's stdout") > 0,
            "the server child exited before serving"
        );
        if tagged(&line).is_some_and(|l| l.starts_with("serving")) {
            break;
        }
    }
    // Drain the rest so the child never blocks on a full pipe.
    thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    guard
}

/// A port on 127.0.0.1 free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("an address").port()
}
