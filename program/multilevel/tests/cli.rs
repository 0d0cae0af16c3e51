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
        command.arg("serve").arg(&db).args(["--listen", "127.0.0.1:0"]);
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

    /// Runs a client command against this server over TCP and returns its output; the
    /// connection options go after `args` (the command and its arguments).
    fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None)
    }

    fn run_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut command = program();
        command.args(args).args(["--addr", &self.addr, "--timeout", "20s"]);
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
    assert_eq!(server.ok(&["get", "hello"]), "world", "raw bytes when stdout is not a terminal");
    assert_eq!(server.ok(&["get", "hello", "--raw"]), "world");
    assert_eq!(server.ok(&["get", "hello", "--format", "raw"]), "world");
    assert_eq!(server.ok(&["get", "hello", "--format", "text"]), "world\n");
    assert_eq!(server.ok(&["get", "hello", "--format", "hex"]), "776f726c64\n");
    assert_eq!(server.ok(&["get", "--format", "json", "hello"]), "{\"key\":\"hello\",\"value\":\"world\"}\n");
    assert_eq!(server.ok(&["put", "grüße", "tab\there"]), "");
    assert_eq!(server.ok(&["get", "grüße", "--format", "text"]), "tab\\there\n");
    assert_eq!(server.ok(&["get", "grüße"]), "tab\there");

    // Bytes that are not UTF-8, given as hex.
    assert_eq!(server.ok(&["put", "--hex", "00ff", "80ff41"]), "");
    assert_eq!(server.ok(&["get", "--hex", "00ff", "--format", "text"]), "\\x80\\xffA\n");
    assert_eq!(server.ok(&["get", "--hex", "00FF", "--format", "hex"]), "80ff41\n");
    assert_eq!(
        server.ok(&["get", "--hex", "00ff", "--format", "json"]),
        "{\"key\":{\"hex\":\"00ff\"},\"value\":{\"hex\":\"80ff41\"}}\n"
    );
    let bad = server.run(&["get", "--hex", "xyz"]);
    assert_eq!(bad.status.code(), Some(2), "bad hex is a command-line mistake");
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
    assert_eq!(server.ok(&["scan", "--hex", "--gte", "63", "--lte", "64", "--keys-only"]), "c\nd\n");
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
    command.args(["get", "x", "--addr", &addr, "--timeout", "30s"]);
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
    command.arg("serve").arg(&file).args(["--listen", "127.0.0.1:0"]);
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
    assert_eq!(server.ok(&["get", "k"]), "v");
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
        command.args(args).arg("--unix").arg(&socket).args(["--timeout", "20s"]);
        run(command, None)
    };
    let put = unix(&["put", "over", "unix"]);
    assert!(put.status.success(), "{}", stderr(&put));
    let get = unix(&["get", "over"]);
    assert!(get.status.success(), "{}", stderr(&get));
    assert_eq!(get.stdout, b"unix");

    // A second server refuses to take over a live socket.
    let mut second = program();
    second.arg("serve").arg(dir.path().join("db2")).arg("--unix").arg(&socket);
    let refused = run(second, None);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("another server is listening on this socket"), "{}", stderr(&refused));
    // Nor a file that is not a socket: it is left as it was.
    let precious = dir.path().join("precious");
    std::fs::write(&precious, "keep").unwrap();
    let mut third = program();
    third.arg("serve").arg(dir.path().join("db3")).arg("--unix").arg(&precious);
    let refused = run(third, None);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("a regular file is there, not a socket"), "{}", stderr(&refused));
    assert_eq!(std::fs::read(&precious).unwrap(), b"keep");

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
        .args(["--listen", "127.0.0.1:0", "--tls-cert", &pem("server.pem"), "--tls-key", &pem("server.key")]);
    let server = ServerProcess::start(command, &format!("multilevel: serving {} on ", db.display()));
    let client = |token: Option<&str>, tls: bool, args: &[&str]| {
        let mut command = program();
        command.env_remove("MULTILEVEL_TOKEN").args(args).args(["--addr", &server.addr, "--timeout", "5s"]);
        if let Some(token) = token {
            command.env("MULTILEVEL_TOKEN", token);
        }
        if tls {
            command.args(["--tls-ca", &pem("ca.pem"), "--tls-name", "localhost"]);
        }
        run(command, None)
    };
    assert_eq!(stdout_of(client(Some(writer), true, &["put", "k", "v"]), &["put"]), "");
    assert_eq!(stdout_of(client(Some(reader), true, &["get", "k"]), &["get"]), "v");
    // A read-only token is not a read-only database.
    let refused = client(Some(reader), true, &["put", "k", "x"]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        stderr(&refused),
        "multilevel: write refused: this connection's token is read-only: it may read but not write\n"
    );
    let wrong = client(Some("0123456789abcdef-guessed"), true, &["get", "k"]);
    assert_eq!(wrong.status.code(), Some(1), "a wrong token got in");
    assert_eq!(stderr(&wrong), format!("multilevel: the token was refused by {}\n", server.addr));
    let none = client(None, true, &["get", "k"]);
    assert_eq!(none.status.code(), Some(1), "no token got in");
    assert!(stderr(&none).contains("requires a token"), "{}", stderr(&none));
    assert!(!stderr(&none).contains("cannot reach"), "{}", stderr(&none));
    for out in [&wrong, &none] {
        assert!(!stderr(out).contains("guessed"), "the token is never echoed");
    }
    let plain = client(Some(writer), false, &["get", "k"]);
    assert_eq!(plain.status.code(), Some(1), "plain TCP to a TLS server must fail");
    let message = stderr(&plain);
    assert!(message.contains("is not a multilevel server") && message.contains("--tls-ca"), "{message}");
    assert!(!message.contains("cannot reach"), "something answered: {message}");
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

/// `len` bytes of deterministic noise (xorshift): every byte value, lots of invalid UTF-8.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

#[test]
fn get_gives_back_exactly_the_bytes_put_stored() {
    let server = ServerProcess::tcp();
    let mut value = noise(1000, 0x9e37_79b9_7f4a_7c15);
    value.extend_from_slice(b"\n\xff\x00\x1b[2J\\"); // a trailing newline, a NUL, an escape...
    let put = server.run_with_stdin(&["put", "blob"], Some(&value));
    assert!(put.status.success(), "{}", stderr(&put));

    // To a pipe.
    let got = server.run(&["get", "blob"]);
    assert!(got.status.success(), "{}", stderr(&got));
    assert_eq!(got.stdout, value, "`get` to a pipe prints the raw bytes");

    // To a file, as in `multilevel get blob > file`.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out");
    let mut command = program();
    command.args(["get", "blob", "--addr", &server.addr]).stdout(std::fs::File::create(&path).unwrap());
    let status = command.stdin(Stdio::null()).stderr(Stdio::null()).status().unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read(&path).unwrap(), value, "`get > file` gives back the file `put < file` stored");

    // `--raw` and `--format raw` say the same whatever stdout is; text is escaped, one line.
    assert_eq!(server.run(&["get", "blob", "--raw"]).stdout, value);
    let text = server.ok(&["get", "blob", "--format", "text"]);
    assert_eq!(text.lines().count(), 1, "{text:?}");
    assert!(text.ends_with("\\n\\xff\\x00\\x1b[2J\\\\\n"), "{text:?}");
    assert!(!text.contains('\x1b'));
}

#[test]
fn text_output_escapes_control_bytes() {
    let server = ServerProcess::tcp();
    // Key `a<TAB>b`; value `x<NUL>y<LF>z<CR><ESC>]0;owned<BEL><DEL> back\slash <CSI (C1)>`.
    let key = hex_of(b"a\tb");
    let value = hex_of("x\0y\nz\r\x1b]0;owned\x07\x7f back\\slash \u{9b}".as_bytes());
    assert_eq!(server.ok(&["put", "--hex", &key, &value]), "");
    let escaped = r"x\x00y\nz\r\x1b]0;owned\x07\x7f back\\slash \xc2\x9b";
    assert_eq!(server.ok(&["scan"]), format!("a\\tb\t{escaped}\n"), "one line, one tab: key<TAB>value");
    assert_eq!(server.ok(&["scan", "--keys-only"]), "a\\tb\n");
    assert_eq!(server.ok(&["get", "--hex", &key, "--format", "text"]), format!("{escaped}\n"));
    assert_eq!(server.ok(&["mget", "--hex", &key]), format!("a\\tb\t{escaped}\n"));
    // JSON escapes them too (DEL and C1 as \u escapes, which serde_json alone leaves raw).
    let json = server.ok(&["scan", "--format", "json"]);
    assert_eq!(
        json,
        "{\"key\":\"a\\tb\",\"value\":\"x\\u0000y\\nz\\r\\u001b]0;owned\\u0007\\u007f back\\\\slash \\u009b\"}\n"
    );
    // A missing key is named escaped too.
    let missing = server.run(&["get", "--hex", &hex_of(b"\x1b[31m")]);
    assert_eq!(stderr(&missing), "multilevel: not found: 1b5b33316d\n", "--hex names the key in hex");
    let missing = server.run(&["get", "\x1b[31m"]);
    assert_eq!(stderr(&missing), "multilevel: not found: \\x1b[31m\n");
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A TCP port where nothing listens.
fn refused_addr() -> String {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    free.local_addr().unwrap().to_string()
}

#[test]
fn command_line_mistakes_exit_with_status_2() {
    let nobody = refused_addr();
    let mistake = |args: &[&str], env: Option<(&str, &str)>, says: &str| {
        let mut command = program();
        command.args(args);
        if let Some((name, value)) = env {
            command.env(name, value);
        }
        let output = run(command, None);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
        assert!(stderr(&output).contains(says), "{args:?}: {}", stderr(&output));
        assert_eq!(output.stdout, b"");
    };
    mistake(&["get", "k", "--addr", "nonsense"], None, "`nonsense` is not an address");
    mistake(&["get", "k", "--addr", "127.0.0.1"], None, "expected HOST:PORT");
    mistake(&["get", "k", "--addr", "127.0.0.1:99999"], None, "is not an address");
    mistake(&["get", "k"], Some(("MULTILEVEL_ADDR", "nonsense")), "`nonsense` is not an address");
    mistake(&["serve", "--listen", "nonsense"], None, "`nonsense` is not an address");
    mistake(&["serve", "--map-size", "lots"], None, "`lots` is not a size");
    // --etcd serves a cluster: no directory, no LMDB options; --namespace needs it.
    mistake(&["serve", "--etcd", "http://127.0.0.1:1", "--map-size", "1GiB"], None, "cannot be used with");
    mistake(&["serve", "--etcd", "http://127.0.0.1:1", "--no-sync"], None, "cannot be used with");
    mistake(&["serve", "some/dir", "--etcd", "http://127.0.0.1:1"], None, "cannot be used with");
    mistake(&["serve", "--namespace", "app"], None, "--etcd");
    #[cfg(not(feature = "etcd"))]
    mistake(&["serve", "--etcd", "http://127.0.0.1:1"], None, "built without etcd support");
    mistake(&["serve", "--map-size", "12parsecs"], None, "unknown size unit `parsecs`");
    // Bad hex is found before connecting (nothing listens at `nobody`).
    mistake(&["get", "--hex", "zz", "--addr", &nobody], None, "KEY `zz` is not hex");
    mistake(&["put", "--hex", "00", "zz", "--addr", &nobody], None, "VALUE `zz` is not hex");
    mistake(&["scan", "--hex", "--prefix", "0", "--addr", &nobody], None, "--prefix `0` is not hex");
    mistake(&["mget", "--hex", "00", "0g", "--addr", &nobody], None, "KEY `0g` is not hex");
    mistake(&["get", "k", "--timeout", "soon"], None, "`soon` is not a duration");
    mistake(&["get", "k", "--timeout", "0s"], None, "more than zero");
    mistake(&["get", "k", "--format", "yaml"], None, "invalid value 'yaml'");
    mistake(&["scan", "--format", "raw"], None, "invalid value 'raw'");
    mistake(&["clear", "--addr", &nobody], None, "--all");
    mistake(&["clear", "--all", "--prefix", "a"], None, "cannot be used with");
    mistake(&["mget"], None, "required");
    mistake(&["frobnicate"], None, "unrecognized subcommand");
    mistake(&["--addr", &nobody, "get", "k", "--listen", "127.0.0.1:0"], None, "--listen");
}

#[test]
fn durations_are_humantime() {
    let server = ServerProcess::tcp();
    server.ok(&["put", "k", "v"]);
    // Options before the command name apply to it, as they did when they were global.
    let output = program().args(["--addr", &server.addr, "--timeout", "1h30m", "get", "k"]).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout, b"v");
    for timeout in ["1h30m", "2m 30s", "1500ms", "1.5s", "10", "0.5"] {
        let output = program().args(["get", "k", "--addr", &server.addr, "--timeout", timeout]).output().unwrap();
        assert!(output.status.success(), "--timeout {timeout}: {}", stderr(&output));
        assert_eq!(output.stdout, b"v");
    }
}

/// A TCP listener that answers each connection with `answer` (if any) and then closes it,
/// after `linger`; for servers that are not multilevel servers.
fn impostor(answer: Option<&'static [u8]>, linger: Duration) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            thread::spawn(move || {
                if let Some(answer) = answer {
                    let _ = stream.write_all(answer);
                }
                thread::sleep(linger);
            });
        }
    });
    addr
}

#[test]
fn connection_errors_say_what_answered() {
    // Something answered, and it is not a multilevel server.
    let http = impostor(Some(b"HTTP/1.1 400 Bad Request\r\n\r\n"), Duration::ZERO);
    let output = program().args(["get", "k", "--addr", &http, "--timeout", "20s"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with(&format!("multilevel: {http} is not a multilevel server")),
        "{}",
        stderr(&output)
    );
    assert!(!stderr(&output).contains("cannot reach"), "{}", stderr(&output));
    assert_eq!(stderr(&output).lines().count(), 1);

    // Something that accepts the connection and says nothing.
    let silent = impostor(None, Duration::from_secs(30));
    let output = program().args(["get", "k", "--addr", &silent, "--timeout", "1s"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!("multilevel: {silent} accepted the connection but did not complete a multilevel handshake within 1s\n")
    );

    // Nothing answered.
    let nobody = refused_addr();
    let output = program().args(["get", "k", "--addr", &nobody]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).starts_with(&format!("multilevel: cannot reach {nobody}: ")), "{}", stderr(&output));
    let output = program().args(["get", "k", "--addr", "no-such-host.invalid:7481"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).starts_with("multilevel: cannot reach no-such-host.invalid:7481: "), "{}", stderr(&output));
}

#[cfg(unix)]
#[test]
fn a_readonly_database_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let start = |readonly: bool| {
        let mut command = program();
        command.arg("serve").arg(&db).args(["--listen", "127.0.0.1:0"]);
        if readonly {
            command.arg("--readonly");
        }
        ServerProcess::start(command, &format!("multilevel: serving {} on ", db.display()))
    };
    let mut writable = start(false);
    writable.ok(&["put", "k", "v"]);
    assert!(writable.terminate().success());
    let readonly = start(true);
    assert_eq!(readonly.ok(&["get", "k"]), "v");
    let refused = readonly.run(&["put", "k", "x"]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(stderr(&refused), "multilevel: write refused: the database is served read-only\n");
    drop(readonly);

    // With a token that may write, the refusal is still the database's, and says so.
    let writer = "0123456789abcdef-writer";
    let mut command = program();
    command.env("MULTILEVEL_TOKENS", format!("read-write {writer}\n")).arg("serve").arg(&db);
    command.args(["--listen", "127.0.0.1:0", "--readonly"]);
    let readonly = ServerProcess::start(command, &format!("multilevel: serving {} on ", db.display()));
    let mut put = program();
    put.env("MULTILEVEL_TOKEN", writer).args(["put", "k", "x", "--addr", &readonly.addr, "--timeout", "20s"]);
    let refused = run(put, None);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(stderr(&refused), "multilevel: write refused: the database is served read-only\n");
}

#[test]
fn a_value_over_the_limit_says_so() {
    let server = ServerProcess::tcp();
    let big = vec![b'x'; 17 << 20];
    let output = server.run_with_stdin(&["put", "big"], Some(&big));
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    let max: usize = message
        .strip_prefix("multilevel: value too large (max ")
        .and_then(|rest| rest.split_once(" bytes)"))
        .and_then(|(max, _)| max.parse().ok())
        .unwrap_or_else(|| panic!("{message}"));
    assert!(max > 16_000_000 && max < 16 << 20, "{message}");
    // The largest value it names does fit.
    let output = server.run_with_stdin(&["put", "big"], Some(&big[..max]));
    assert!(output.status.success(), "a value of {max} bytes: {}", stderr(&output));
    let output = server.run_with_stdin(&["put", "big"], Some(&big[..max + 1]));
    assert!(stderr(&output).starts_with("multilevel: value too large"), "{}", stderr(&output));
}

#[test]
fn serve_never_listens_on_the_clients_address() {
    // MULTILEVEL_ADDR names a port already taken: `serve` must not try it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    for with_flag in [false, true] {
        let mut command = program();
        command.env("MULTILEVEL_ADDR", &taken_addr).arg("serve").arg(&db);
        if with_flag {
            command.args(["--listen", "127.0.0.1:0"]);
        } else {
            command.env("MULTILEVEL_LISTEN", "127.0.0.1:0");
        }
        let server = ServerProcess::start(command, &format!("multilevel: serving {} on ", db.display()));
        assert_ne!(server.addr, taken_addr);
        assert!(server.addr.starts_with("127.0.0.1:"), "{}", server.addr);
        // Clients still read MULTILEVEL_ADDR.
        let mut client = program();
        client.env("MULTILEVEL_ADDR", &server.addr).args(["put", "k", "v"]);
        let output = run(client, None);
        assert!(output.status.success(), "{}", stderr(&output));
    }
    // And `serve --help` says where it listens.
    let help = String::from_utf8(program().args(["serve", "--help"]).output().unwrap().stdout).unwrap();
    assert!(help.contains("--listen") && help.contains("MULTILEVEL_LISTEN"), "{help}");
    assert!(!help.contains("[env: MULTILEVEL_ADDR"), "{help}");
}

#[test]
fn export_replaces_the_file_only_when_complete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dump.jsonl");
    let previous = "{\"key\":\"old\",\"value\":\"dump\"}\n";
    std::fs::write(&path, previous).unwrap();
    let path_arg = path.display().to_string();

    // A server that cannot be reached.
    let nobody = refused_addr();
    let output = program().args(["export", &path_arg, "--addr", &nobody]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), previous);

    // A server that stops answering in the middle of the export.
    let server = ServerProcess::tcp();
    let mut lines = String::new();
    let value = "v".repeat(2000);
    for i in 0..20_000 {
        lines.push_str(&format!("{{\"key\":\"k{i:06}\",\"value\":\"{value}\"}}\n"));
    }
    let imported = server.run_with_stdin(&["import"], Some(lines.as_bytes()));
    assert!(imported.status.success(), "{}", stderr(&imported));
    // Freeze the server as soon as the export has begun writing its temporary file. On a
    // machine slow enough for the export to finish first, try again.
    let pid = server.child.id().to_string();
    let mut attempts = 0;
    let message = loop {
        attempts += 1;
        std::fs::write(&path, previous).unwrap();
        let mut export = program()
            .args(["export", &path_arg, "--addr", &server.addr, "--timeout", "2s"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let begun = loop {
            let temp = std::fs::read_dir(dir.path()).unwrap().filter_map(Result::ok).any(|entry| {
                entry.file_name().to_string_lossy().starts_with(".dump.jsonl.")
                    && entry.metadata().is_ok_and(|m| m.len() > 0)
            });
            if temp || start.elapsed() > Duration::from_secs(30) || export.try_wait().unwrap().is_some() {
                break temp;
            }
            thread::sleep(Duration::from_millis(1));
        };
        assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
        let status = wait_within(&mut export, DEADLINE);
        assert!(Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
        let status = status.expect("the export gives up within its timeout");
        let mut message = String::new();
        export.stderr.take().unwrap().read_to_string(&mut message).unwrap();
        if status.success() && attempts < 3 {
            continue; // it finished before the freeze
        }
        assert!(begun, "the export never wrote a temporary file beside the dump: {message}");
        assert_eq!(status.code(), Some(1), "the export should have failed: {message}");
        break message;
    };
    assert!(message.contains("did not answer within 2s"), "{message}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), previous, "the previous dump is intact");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().filter_map(Result::ok).map(|e| e.file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("dump.jsonl")], "no temporary file is left behind");

    // A complete export replaces it.
    let output = program().args(["export", &path_arg, "--addr", &server.addr, "--prefix", "k01999"]).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let dump = std::fs::read_to_string(&path).unwrap();
    assert_eq!(dump.lines().count(), 10, "k019990..k019999");
    assert!(dump.starts_with("{\"key\":\"k019990\""), "{}", &dump[..40]);

    // Through a symbolic link: the file it points at is replaced, the link stays a link.
    #[cfg(unix)]
    {
        let link = dir.path().join("latest.jsonl");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let link_arg = link.display().to_string();
        let output =
            program().args(["export", &link_arg, "--addr", &server.addr, "--prefix", "k00001"]).output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 10, "k000010..k000019");
    }
    // Something that is not a regular file is written in place.
    let output =
        program().args(["export", "/dev/stdout", "--addr", &server.addr, "--prefix", "k00000"]).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(String::from_utf8(output.stdout).unwrap().lines().count(), 10);
    // A directory is refused before anything is read.
    let output =
        program().args(["export", &dir.path().display().to_string(), "--addr", &server.addr]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("it is a directory"), "{}", stderr(&output));
}

#[test]
fn prefix_count_mget_and_clear() {
    let server = ServerProcess::tcp();
    let mut lines = String::new();
    for key in ["a", "user/1", "user/2", "user/3", "user0", "users", "z"] {
        lines.push_str(&format!("{{\"key\":\"{key}\",\"value\":\"={key}\"}}\n"));
    }
    // Keys at the 0xff edge.
    for key in ["ff", "ff00", "ffff", "ffff01", "fe", "feff"] {
        lines.push_str(&format!("{{\"key\":{{\"hex\":\"{key}\"}},\"value\":\"x\"}}\n"));
    }
    assert!(server.run_with_stdin(&["import"], Some(lines.as_bytes())).status.success());

    assert_eq!(server.ok(&["scan", "--prefix", "user/", "--keys-only"]), "user/1\nuser/2\nuser/3\n");
    assert_eq!(
        server.ok(&["scan", "--prefix", "user/", "--gt", "user/1", "--reverse"]),
        "user/3\t=user/3\nuser/2\t=user/2\n"
    );
    assert_eq!(server.ok(&["scan", "--prefix", "user"]).lines().count(), 5);
    assert_eq!(server.ok(&["scan", "--prefix", "nobody"]), "");
    assert_eq!(
        server.ok(&["scan", "--hex", "--prefix", "ff", "--keys-only", "--format", "hex"]),
        "ff\nff00\nffff\nffff01\n"
    );
    assert_eq!(server.ok(&["scan", "--hex", "--prefix", "ffff", "--keys-only", "--format", "hex"]), "ffff\nffff01\n");
    assert_eq!(server.ok(&["scan", "--hex", "--prefix", "fe", "--keys-only", "--format", "hex"]), "fe\nfeff\n");
    assert_eq!(
        server.ok(&["export", "--prefix", "user/", "--limit", "1"]),
        "{\"key\":\"user/1\",\"value\":\"=user/1\"}\n"
    );

    assert_eq!(server.ok(&["count"]), "13\n");
    assert_eq!(server.ok(&["count", "--prefix", "user/"]), "3\n");
    assert_eq!(server.ok(&["count", "--hex", "--prefix", "ff"]), "4\n");
    assert_eq!(server.ok(&["count", "--gte", "b", "--lt", "v"]), "5\n");
    assert_eq!(server.ok(&["count", "--prefix", "nobody"]), "0\n");

    // mget: a line per key asked, in order; a missing key alone on its line, and status 1.
    assert_eq!(server.ok(&["mget", "a", "z"]), "a\t=a\nz\t=z\n");
    let some_missing = server.run(&["mget", "z", "nope", "a", "gone"]);
    assert_eq!(some_missing.status.code(), Some(1));
    assert_eq!(String::from_utf8(some_missing.stdout.clone()).unwrap(), "z\t=z\nnope\na\t=a\ngone\n");
    assert_eq!(stderr(&some_missing), "multilevel: not found: nope, gone\n");
    let json = server.run(&["mget", "a", "nope", "--format", "json"]);
    assert_eq!(json.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(json.stdout).unwrap(),
        "{\"key\":\"a\",\"value\":\"=a\"}\n{\"key\":\"nope\",\"value\":null}\n"
    );
    assert_eq!(server.ok(&["mget", "--hex", "ff", "--format", "hex"]), "ff\t78\n");

    // clear: a prefix, a range with a limit, and everything only with --all.
    assert_eq!(server.ok(&["clear", "--prefix", "user/"]), "");
    assert_eq!(server.ok(&["count", "--prefix", "user"]), "2\n");
    assert_eq!(server.ok(&["clear", "--hex", "--prefix", "ffff"]), "");
    assert_eq!(server.ok(&["scan", "--hex", "--gte", "fe", "--keys-only", "--format", "hex"]), "fe\nfeff\nff\nff00\n");
    assert_eq!(server.ok(&["clear", "--gte", "u", "--lt", "zz", "--limit", "1", "--reverse"]), "");
    assert_eq!(server.ok(&["scan", "--keys-only", "--lt", "\u{7f}"]), "a\nuser0\nusers\n");
    assert_eq!(server.ok(&["clear", "--all"]), "");
    assert_eq!(server.ok(&["count"]), "0\n");
}

#[test]
fn each_command_shows_only_its_own_options() {
    let help = |args: &[&str]| String::from_utf8(program().args(args).output().unwrap().stdout).unwrap();
    let serve = help(&["serve", "--help"]);
    for client_only in ["--hex", "--tls-ca", "--token-file", "--format", "--timeout", "[env: MULTILEVEL_ADDR"] {
        assert!(!serve.contains(client_only), "serve --help shows {client_only}:\n{serve}");
    }
    assert!(serve.contains("--tls-cert") && serve.contains("--readonly"), "{serve}");
    let get = help(&["get", "--help"]);
    for serve_only in ["--listen", "--readonly", "--tls-cert", "--map-size", "--tokens-file", "--protocol"] {
        assert!(!get.contains(serve_only), "get --help shows {serve_only}:\n{get}");
    }
    assert!(get.contains("--addr") && get.contains("--raw") && get.contains("--hex"), "{get}");
    assert!(get.lines().count() <= 30, "get --help is {} lines:\n{get}", get.lines().count());
    let stats = help(&["stats", "--help"]);
    assert!(!stats.contains("--hex") && stats.contains("--addr"), "{stats}");
    let top = help(&["--help"]);
    for hidden in ["--tls-cert <PEM>", "--listen <HOST:PORT>", "--readonly  "] {
        assert!(!top.contains(hidden), "`multilevel --help` lists serve's {hidden}:\n{top}");
    }
    assert!(top.contains("mget") && top.contains("count") && top.contains("clear"), "{top}");
}

/// `get` to a terminal prints escaped text and a newline (run under util-linux `script`, which
/// gives it a pseudo-terminal; skipped where `script` is missing).
#[cfg(target_os = "linux")]
#[test]
fn get_to_a_terminal_prints_escaped_text() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` to run the program on a pseudo-terminal");
        return;
    }
    let server = ServerProcess::tcp();
    let put = server.run_with_stdin(&["put", "k"], Some(b"a\tb\x1b[31m"));
    assert!(put.status.success(), "{}", stderr(&put));
    let line = format!("'{BIN}' get k --addr {}", server.addr);
    let mut command = Command::new("script");
    command.args(["-qec", &line, "/dev/null"]).env_remove("MULTILEVEL_ADDR");
    let output = run(command, None);
    assert!(output.status.success(), "{}", stderr(&output));
    // The terminal turns the newline into CR LF.
    assert_eq!(String::from_utf8_lossy(&output.stdout), "a\\tb\\x1b[31m\r\n");
}

#[test]
fn sublevels_hold_their_own_keys() {
    let server = ServerProcess::tcp();
    server.ok(&["put", "ada", "top"]);
    // A put through --sublevel is stored under the abstract-level key, and read back by its own.
    server.ok(&["put", "--sublevel", "users", "ada", "admin"]);
    assert_eq!(server.ok(&["get", "!users!ada"]), "admin");
    assert_eq!(server.ok(&["get", "ada", "--sublevel", "users"]), "admin");
    assert_eq!(server.ok(&["get", "ada"]), "top", "the parent's own key is another");
    server.ok(&["put", "!users!bob", "x"]); // written raw, seen in the sublevel
    server.ok(&["put", "--sublevel", "posts", "1", "hello"]);

    // A scan of a sublevel lists only its keys, without the prefix; ranges stay inside it.
    assert_eq!(server.ok(&["scan", "--sublevel", "users"]), "ada\tadmin\nbob\tx\n");
    assert_eq!(server.ok(&["scan", "--sublevel", "users", "--reverse", "--keys-only"]), "bob\nada\n");
    assert_eq!(server.ok(&["scan", "--sublevel", "users", "--gt", "ada"]), "bob\tx\n");
    assert_eq!(server.ok(&["count", "--sublevel", "users"]), "2\n");
    assert_eq!(server.ok(&["count", "--sublevel", "nobody"]), "0\n");
    assert_eq!(server.ok(&["mget", "--sublevel", "users", "bob", "ada"]), "bob\tx\nada\tadmin\n");
    assert_eq!(
        server.ok(&["export", "--sublevel", "posts"]),
        "{\"key\":\"1\",\"value\":\"hello\"}\n",
        "export gives the sublevel's keys, ready to import into another"
    );
    assert_eq!(
        server.ok(&["scan", "--keys-only"]),
        "!posts!1\n!users!ada\n!users!bob\nada\n",
        "the parent sees its sublevels' entries under their stored keys"
    );

    // Nested: --sublevel a --sublevel b is !a!!b!key.
    server.ok(&["put", "--sublevel", "a", "--sublevel", "b", "k", "deep"]);
    assert_eq!(server.ok(&["get", "!a!!b!k"]), "deep");
    assert_eq!(server.ok(&["scan", "--sublevel", "a"]), "!b!k\tdeep\n");
    assert_eq!(server.ok(&["scan", "--sublevel", "a", "--sublevel", "b"]), "k\tdeep\n");
    // Options before the command name still apply (and nest in order).
    let output =
        program().args(["--sublevel", "a", "--sublevel", "b", "get", "k", "--addr", &server.addr]).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout, b"deep");

    // import, del and clear stay inside the sublevel too.
    let imported = server.run_with_stdin(
        &["import", "--sublevel", "users"],
        Some(b"{\"key\":\"cy\",\"value\":\"1\"}\n{\"key\":\"dee\",\"value\":\"2\"}\n"),
    );
    assert!(imported.status.success(), "{}", stderr(&imported));
    assert_eq!(server.ok(&["get", "!users!dee"]), "2");
    server.ok(&["del", "--sublevel", "users", "bob"]);
    assert_eq!(server.ok(&["scan", "--sublevel", "users", "--keys-only"]), "ada\ncy\ndee\n");
    server.ok(&["clear", "--sublevel", "users", "--all"]);
    assert_eq!(server.ok(&["count", "--sublevel", "users"]), "0\n");
    assert_eq!(server.ok(&["scan", "--keys-only"]), "!a!!b!k\n!posts!1\nada\n", "nothing else was cleared");
    let missing = server.run(&["get", "--sublevel", "users", "ada"]);
    assert_eq!(stderr(&missing), "multilevel: not found: ada\n", "the key as given");
}

#[test]
fn several_addresses_fail_over() {
    let server = ServerProcess::tcp();
    let dead = refused_addr();
    // The first address is dead, the second alive: the command works.
    let both = format!("{dead},{}", server.addr);
    for (how, flag) in [("flag", true), ("environment", false)] {
        let mut command = program();
        command.args(["put", "k", how, "--timeout", "20s"]);
        if flag {
            command.args(["--addr", &both]);
        } else {
            command.env("MULTILEVEL_ADDR", &both);
        }
        let output = run(command, None);
        assert!(output.status.success(), "{how}: {}", stderr(&output));
        let output = program().args(["get", "k", "--addr", &both]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout), how);
    }
    // Repeated --addr flags add up.
    let output = program().args(["get", "k", "--addr", &dead, "--addr", &server.addr]).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    // Every address dead: one line naming them.
    let other = refused_addr();
    let output = program().args(["get", "k", "--addr", &format!("{dead},{other}")]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).starts_with(&format!("multilevel: cannot reach {dead},{other}: ")), "{}", stderr(&output));
    assert_eq!(stderr(&output).lines().count(), 1);
    // A malformed address among them is a command-line mistake.
    let output = program().args(["get", "k", "--addr", &format!("{},nonsense", server.addr)]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

#[test]
fn tls_to_a_plain_server_names_the_tls_handshake() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let server = ServerProcess::tcp();
    let ca = dir.path().join("ca.pem").display().to_string();
    let dead = refused_addr();
    // Also when the plain server is the second address tried: the TLS failure is named with it.
    for addrs in [server.addr.clone(), format!("{dead},{}", server.addr)] {
        let output = program()
            .args(["get", "k", "--addr", &addrs, "--timeout", "20s", "--tls-ca", &ca, "--tls-name", "localhost"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1));
        assert!(
            stderr(&output).starts_with(&format!("multilevel: the TLS handshake with {} failed: ", server.addr)),
            "{addrs}: {}",
            stderr(&output)
        );
        assert_eq!(stderr(&output).lines().count(), 1);
    }
}
