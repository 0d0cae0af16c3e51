//! The `multilevel` program end to end: the real binary serves a temp dir as a child process,
//! and runs again as client commands against it; stdout is checked byte for byte.
//!
//! Every child is bounded in time and killed on drop, so a failing test leaves no process
//! behind.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_multilevel");
/// The longest any child may run before the test fails (slow, shared CI machines included).
const DEADLINE: Duration = Duration::from_secs(60);

/// The program, with the environment it could pick settings from cleared.
fn program() -> Command {
    let mut command = Command::new(BIN);
    command.env_remove("MULTILEVEL_ADDR").env_remove("RUST_LOG");
    command
}

/// A `multilevel serve` child; killed when dropped.
struct ServerProcess {
    child: Child,
    /// Where it listens: `host:port`, or the socket path for `--unix`.
    addr: String,
    /// Keeps the temp dir (the database) alive as long as the server.
    _dir: Option<TempDir>,
}

impl ServerProcess {
    /// `multilevel serve <tempdir>/db --addr 127.0.0.1:0`.
    fn tcp() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let mut command = program();
        command.arg("serve").arg(&db).args(["--addr", "127.0.0.1:0"]);
        let mut server = Self::start(command, &format!("multilevel: serving {} on ", db.display()));
        server._dir = Some(dir);
        server
    }

    /// Starts `command` and reads its banner, which must start with `prefix`; the rest of the
    /// line is the address.
    fn start(mut command: Command, prefix: &str) -> Self {
        let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let line = read_line_within(child.stdout.take().unwrap(), Duration::from_secs(30));
        let mut server = Self { child, addr: String::new(), _dir: None };
        let line = line.unwrap_or_else(|| panic!("no banner from `multilevel serve` within 30 s"));
        let addr =
            line.strip_prefix(prefix).unwrap_or_else(|| panic!("banner {line:?} does not start with {prefix:?}"));
        server.addr = addr.trim_end_matches('\n').to_owned();
        assert!(!server.addr.ends_with(":0"), "the banner shows the real port: {line:?}");
        server
    }

    /// Runs a client command against this server over TCP and returns its output.
    fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None)
    }

    fn run_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut command = program();
        command.args(["--addr", &self.addr, "--timeout", "20s"]).args(args);
        run(command, stdin)
    }

    /// Runs a client command that must succeed and returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        stdout_of(self.run(args), args)
    }

    /// Sends SIGTERM and waits for the exit.
    #[cfg(unix)]
    fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill -TERM failed");
        wait_within(&mut self.child, Duration::from_secs(30)).expect("the server stops within 30 s of SIGTERM")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first line of `stdout`, or `None` if none came within `limit`. Keeps reading (and
/// discarding) afterwards so the child never blocks on a full pipe.
fn read_line_within(stdout: ChildStdout, limit: Duration) -> Option<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    rx.recv_timeout(limit).ok().filter(|line| !line.is_empty())
}

/// Waits for `child` to exit, at most `limit`.
fn wait_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
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
fn run(mut command: Command, stdin: Option<&[u8]>) -> Output {
    command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let input = input.to_vec();
        thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let drain = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut out = Vec::new();
            let _ = pipe.read_to_end(&mut out);
            out
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let Some(status) = wait_within(&mut child, DEADLINE) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{command:?} did not finish within {DEADLINE:?}");
    };
    Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}

/// The stdout of a run that must have succeeded.
fn stdout_of(output: Output, args: &[&str]) -> String {
    assert!(
        output.status.success(),
        "multilevel {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn put_get_del_in_each_format() {
    let server = ServerProcess::tcp();
    assert_eq!(server.ok(&["put", "hello", "world"]), "", "put prints nothing");
    assert_eq!(server.ok(&["get", "hello"]), "world\n");
    assert_eq!(server.ok(&["get", "hello", "--format", "text"]), "world\n");
    assert_eq!(server.ok(&["get", "hello", "--format", "hex"]), "776f726c64\n");
    assert_eq!(server.ok(&["--format", "json", "get", "hello"]), "{\"key\":\"hello\",\"value\":\"world\"}\n");
    assert_eq!(server.ok(&["put", "grüße", "tab\there"]), "");
    assert_eq!(server.ok(&["get", "grüße"]), "tab\there\n");

    // Bytes that are not UTF-8, given as hex.
    assert_eq!(server.ok(&["--hex", "put", "00ff", "80ff41"]), "");
    assert_eq!(server.ok(&["--hex", "get", "00ff"]), "\\x80\\xffA\n");
    assert_eq!(server.ok(&["--hex", "get", "00FF", "--format", "hex"]), "80ff41\n");
    assert_eq!(
        server.ok(&["--hex", "get", "00ff", "--format", "json"]),
        "{\"key\":{\"hex\":\"00ff\"},\"value\":{\"hex\":\"80ff41\"}}\n"
    );
    let bad = server.run(&["--hex", "get", "xyz"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).starts_with("multilevel: KEY `xyz` is not hex"), "{}", stderr(&bad));

    // A value piped on stdin is taken as raw bytes.
    let piped = server.run_with_stdin(&["put", "blob"], Some(&[0, 1, 2, 0xff, b'\n']));
    assert!(piped.status.success(), "{}", stderr(&piped));
    assert_eq!(server.ok(&["get", "blob", "--format", "hex"]), "000102ff0a\n");

    // Deleting, and what a missing key looks like.
    assert_eq!(server.ok(&["del", "hello"]), "");
    let missing = server.run(&["get", "hello"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(missing.stdout, b"");
    assert_eq!(stderr(&missing), "multilevel: not found: hello\n");
    assert_eq!(server.ok(&["del", "hello"]), "", "deleting a missing key is no error");
}

/// Five entries a..e with values 1..5, written through `import` from stdin.
fn five_entries(server: &ServerProcess) {
    let lines: String = ["a", "b", "c", "d", "e"]
        .iter()
        .enumerate()
        .map(|(i, key)| format!("{{\"key\":\"{key}\",\"value\":\"{}\"}}\n", i + 1))
        .collect();
    let output = server.run_with_stdin(&["import"], Some(lines.as_bytes()));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout, b"");
    assert_eq!(stderr(&output), "imported 5 entries\n");
}

#[test]
fn scan_with_ranges_and_options() {
    let server = ServerProcess::tcp();
    five_entries(&server);
    assert_eq!(server.ok(&["scan"]), "a\t1\nb\t2\nc\t3\nd\t4\ne\t5\n");
    assert_eq!(server.ok(&["scan", "--gt", "a", "--lte", "c"]), "b\t2\nc\t3\n");
    assert_eq!(server.ok(&["scan", "--gte", "b", "--lt", "d"]), "b\t2\nc\t3\n");
    assert_eq!(server.ok(&["scan", "--gte", "b", "--lt", "d", "--reverse"]), "c\t3\nb\t2\n");
    assert_eq!(server.ok(&["scan", "--limit", "2"]), "a\t1\nb\t2\n");
    assert_eq!(server.ok(&["scan", "--reverse", "--limit", "2", "--keys-only"]), "e\nd\n");
    assert_eq!(server.ok(&["scan", "--values-only", "--gt", "c"]), "4\n5\n");
    assert_eq!(server.ok(&["scan", "--keys-only", "--format", "hex", "--lt", "c"]), "61\n62\n");
    assert_eq!(server.ok(&["scan", "--format", "hex", "--gte", "e"]), "65\t35\n");
    assert_eq!(server.ok(&["--hex", "scan", "--gte", "63", "--lte", "64", "--keys-only"]), "c\nd\n");
    assert_eq!(
        server.ok(&["scan", "--format", "json", "--gte", "d"]),
        "{\"key\":\"d\",\"value\":\"4\"}\n{\"key\":\"e\",\"value\":\"5\"}\n"
    );
    assert_eq!(server.ok(&["scan", "--format", "json", "--keys-only", "--limit", "1"]), "{\"key\":\"a\"}\n");
    assert_eq!(server.ok(&["scan", "--format", "json", "--values-only", "--limit", "1"]), "{\"value\":\"1\"}\n");
    assert_eq!(server.ok(&["scan", "--gt", "e"]), "", "an empty range prints nothing");
    let conflicting = server.run(&["scan", "--keys-only", "--values-only"]);
    assert_eq!(conflicting.status.code(), Some(2), "a usage error");
}

#[test]
fn export_import_round_trip() {
    let first = ServerProcess::tcp();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();

    // Awkward keys and values, out of order; `late` is written twice and the second one wins.
    let mut input = String::from(
        "{\"key\":\"late\",\"value\":\"first\"}\n\
         \n\
         { \"value\": {\"hex\": \"00FF10\"}, \"key\": {\"hex\": \"ff\"} }\n\
         {\"key\":\"\",\"value\":\"the empty key\"}\n\
         {\"key\":\"quote\\\"back\\\\slash\\nnewline\",\"value\":\"é ✓ \\u0000\"}\n",
    );
    // Enough entries for several batches in flight.
    for i in 0..2500 {
        input.push_str(&format!("{{\"key\":\"n/{i:05}\",\"value\":\"{i}\"}}\n"));
    }
    input.push_str("{\"key\":\"late\",\"value\":\"second\"}\n");
    std::fs::write(path("input.jsonl"), &input).unwrap();
    let imported = first.run(&["import", &path("input.jsonl"), "--batch-size", "100"]);
    assert!(imported.status.success(), "{}", stderr(&imported));
    assert_eq!(stderr(&imported), "imported 2505 entries\n");

    assert_eq!(first.ok(&["export", &path("one.jsonl")]), "");
    let exported = std::fs::read_to_string(path("one.jsonl")).unwrap();
    let mut expected = String::from(
        "{\"key\":\"\",\"value\":\"the empty key\"}\n\
         {\"key\":\"late\",\"value\":\"second\"}\n",
    );
    for i in 0..2500 {
        expected.push_str(&format!("{{\"key\":\"n/{i:05}\",\"value\":\"{i}\"}}\n"));
    }
    expected.push_str("{\"key\":\"quote\\\"back\\\\slash\\nnewline\",\"value\":\"é ✓ \\u0000\"}\n");
    expected.push_str("{\"key\":{\"hex\":\"ff\"},\"value\":{\"hex\":\"00ff10\"}}\n");
    assert_eq!(exported, expected);
    assert_eq!(first.ok(&["export", "-"]), expected, "export to stdout writes the same");
    assert_eq!(first.ok(&["export"]), expected);

    // Into a fresh server, and out again: the same bytes.
    let second = ServerProcess::tcp();
    let imported = second.run(&["import", &path("one.jsonl")]);
    assert!(imported.status.success(), "{}", stderr(&imported));
    assert_eq!(second.ok(&["export", &path("two.jsonl")]), "");
    assert_eq!(std::fs::read(path("two.jsonl")).unwrap(), exported.as_bytes());

    // Export takes the range flags of scan.
    assert_eq!(
        second.ok(&["export", "--gte", "n/00010", "--lt", "n/00013", "--reverse"]),
        "{\"key\":\"n/00012\",\"value\":\"12\"}\n\
         {\"key\":\"n/00011\",\"value\":\"11\"}\n\
         {\"key\":\"n/00010\",\"value\":\"10\"}\n"
    );
    assert_eq!(second.ok(&["export", "--limit", "1"]), "{\"key\":\"\",\"value\":\"the empty key\"}\n");

    // A bad line stops the import and is named.
    let bad = second.run_with_stdin(&["import", "-"], Some(b"{\"key\":\"x\",\"value\":\"1\"}\n{\"key\":\"y\"}\n"));
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("stdin, line 2: missing \"value\""), "{}", stderr(&bad));
}

#[test]
fn stats_shows_counters() {
    let server = ServerProcess::tcp();
    server.ok(&["put", "a", "1"]);
    server.ok(&["put", "b", "2"]);
    let text = server.ok(&["stats"]);
    let stats: Vec<(&str, u64)> = text
        .lines()
        .map(|line| {
            let (name, value) = line.split_once(' ').unwrap();
            (name, value.parse().unwrap())
        })
        .collect();
    assert!(stats.contains(&("entries", 2)), "{text}");
    let connections = stats.iter().find(|(name, _)| *name == "connections").expect("a connections line").1;
    assert!(connections >= 1, "{text}");
    assert!(stats.iter().any(|(name, value)| *name == "map_size" && *value > 0), "{text}");

    let json = server.ok(&["stats", "--format", "json"]);
    assert_eq!(json.lines().count(), 1);
    let object: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(object["entries"], 2);
    assert!(object["connections"].as_u64().unwrap() >= 1);
}

#[test]
fn unreachable_server_fails_fast() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap().to_string();
    drop(free); // now nothing listens there
    let start = Instant::now();
    let mut command = program();
    command.args(["--addr", &addr, "--timeout", "30s", "get", "x"]);
    let output = run(command, None);
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(output.stdout, b"");
    let message = stderr(&output);
    assert!(message.starts_with(&format!("multilevel: cannot reach {addr}: ")), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");

    // The address can come from MULTILEVEL_ADDR too.
    let mut command = program();
    command.env("MULTILEVEL_ADDR", &addr).args(["get", "x"]);
    let output = run(command, None);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).starts_with(&format!("multilevel: cannot reach {addr}: ")), "{}", stderr(&output));
}

#[test]
fn serve_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut command = program();
    command.arg("serve").arg(dir.path().join("db")).args(["--addr", &addr]);
    let output = run(command, None);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(output.stdout, b"");
    let message = stderr(&output);
    assert!(message.starts_with(&format!("multilevel: cannot listen on {addr}: ")), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");

    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a database").unwrap();
    let mut command = program();
    command.arg("serve").arg(&file).args(["--addr", "127.0.0.1:0"]);
    let output = run(command, None);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.starts_with("multilevel: cannot open the database: "), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
}

#[cfg(unix)]
#[test]
fn no_command_serves_multilevel_data_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = program();
    command.current_dir(dir.path()).args(["--addr", "127.0.0.1:0"]);
    let mut server = ServerProcess::start(command, "multilevel: serving multilevel-data on 127.0.0.1:");
    server.addr = format!("127.0.0.1:{}", server.addr);
    server.ok(&["put", "k", "v"]);
    assert_eq!(server.ok(&["get", "k"]), "v\n");
    assert!(dir.path().join("multilevel-data").join("data.mdb").is_file());
    assert!(server.terminate().success(), "a graceful shutdown exits with 0");
}

#[cfg(unix)]
#[test]
fn serve_and_talk_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let (db, socket): (PathBuf, PathBuf) = (dir.path().join("db"), dir.path().join("sock"));
    // A stale socket file from a server that is gone is replaced.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let mut command = program();
    command.arg("serve").arg(&db).arg("--unix").arg(&socket);
    let mut server =
        ServerProcess::start(command, &format!("multilevel: serving {} on unix:{}", db.display(), socket.display()));
    assert_eq!(server.addr, "");
    let unix = |args: &[&str]| {
        let mut command = program();
        command.arg("--unix").arg(&socket).args(["--timeout", "20s"]).args(args);
        run(command, None)
    };
    let put = unix(&["put", "over", "unix"]);
    assert!(put.status.success(), "{}", stderr(&put));
    let get = unix(&["get", "over"]);
    assert!(get.status.success(), "{}", stderr(&get));
    assert_eq!(get.stdout, b"unix\n");

    // A second server refuses to take over a live socket.
    let mut second = program();
    second.arg("serve").arg(dir.path().join("db2")).arg("--unix").arg(&socket);
    let refused = run(second, None);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("another server is listening there"), "{}", stderr(&refused));

    assert!(server.terminate().success());
    assert!(!socket.exists(), "the socket file is removed on shutdown");
    let gone = unix(&["get", "over"]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(stderr(&gone).starts_with(&format!("multilevel: cannot reach unix:{}: ", socket.display())));
}

/// A CA and a certificate for `localhost` signed by it, as PEM files in `dir`.
fn make_pki(dir: &std::path::Path) {
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

#[test]
fn serve_with_tokens_and_tls() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let pem = |name: &str| dir.path().join(name).display().to_string();
    let writer = "0123456789abcdef-writer";
    let reader = "0123456789abcdef-reader";
    let db = dir.path().join("db");
    let mut command = program();
    command
        .env("MULTILEVEL_TOKENS", format!("read-write {writer}\nread-only {reader}\n"))
        .arg("serve")
        .arg(&db)
        .args(["--addr", "127.0.0.1:0", "--tls-cert", &pem("server.pem"), "--tls-key", &pem("server.key")]);
    let server = ServerProcess::start(command, &format!("multilevel: serving {} on ", db.display()));
    let client = |token: Option<&str>, tls: bool, args: &[&str]| {
        let mut command = program();
        command.env_remove("MULTILEVEL_TOKEN").args(["--addr", &server.addr, "--timeout", "5s"]);
        if let Some(token) = token {
            command.env("MULTILEVEL_TOKEN", token);
        }
        if tls {
            command.args(["--tls-ca", &pem("ca.pem"), "--tls-name", "localhost"]);
        }
        command.args(args);
        run(command, None)
    };
    assert_eq!(stdout_of(client(Some(writer), true, &["put", "k", "v"]), &["put"]), "");
    assert_eq!(stdout_of(client(Some(reader), true, &["get", "k"]), &["get"]), "v\n");
    let refused = client(Some(reader), true, &["put", "k", "x"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("read-only"), "{}", stderr(&refused));
    for token in [None, Some("0123456789abcdef-guessed")] {
        let out = client(token, true, &["get", "k"]);
        assert_eq!(out.status.code(), Some(1), "{token:?} got in");
        assert!(stderr(&out).contains("token"), "{}", stderr(&out));
        assert!(!stderr(&out).contains("guessed"), "the token is never echoed");
    }
    let plain = client(Some(writer), false, &["get", "k"]);
    assert_eq!(plain.status.code(), Some(1), "plain TCP to a TLS server must fail");
    assert!(stderr(&plain).contains("cannot reach"), "{}", stderr(&plain));
}

#[cfg(unix)]
#[test]
fn the_unix_socket_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("sock");
    let db = dir.path().join("db");
    let mut command = program();
    command.arg("serve").arg(&db).arg("--unix").arg(&socket);
    let _server = ServerProcess::start(command, &format!("multilevel: serving {} on ", db.display()));
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode {mode:o}");
}
