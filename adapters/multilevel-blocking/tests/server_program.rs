//! The `multilevel-blocking-server` program: `--unix` replaces only a stale socket, `--readonly`
//! needs an existing database, and its flags are those of `multilevel serve` where they overlap.
//! Every child is bounded in time and killed if it outlives its test.

#![cfg(unix)]

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use multilevel_blocking::{Client, ClientOptions, UnixBindError, bind_unix_replacing_stale};

/// Long enough for a cold start under load; a server that does not exit by then is serving.
const WAIT: Duration = Duration::from_secs(20);

fn server() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_multilevel-blocking-server"));
    command.env("RUST_LOG", "warn").env_remove("MULTILEVEL_ADDR").env_remove("MULTILEVEL_LISTEN").stdin(Stdio::null());
    command
}

/// A running child, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `command` to its end, within [`WAIT`]; returns (exit code, stdout, stderr). A child
/// still running then is killed and the test fails: it should have refused and exited.
fn run_to_exit(command: &mut Command) -> (Option<i32>, String, String) {
    let mut child = Running(command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap());
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            let mut out = String::new();
            let mut err = String::new();
            child.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
            child.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            return (status.code(), out, err);
        }
        assert!(Instant::now() < deadline, "the server did not exit within {WAIT:?}: it is serving");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Starts a server that should serve; returns it once its banner is out, and the banner.
fn start(command: &mut Command) -> (Running, String) {
    let mut child = Running(command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap());
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(WAIT).expect("no banner: the server did not start");
    assert!(line.starts_with("multilevel: serving "), "bad banner {line:?}");
    (child, line.trim_end().to_owned())
}

/// A socket file nobody listens on, as a killed server leaves.
fn stale_socket(path: &Path) {
    drop(UnixListener::bind(path).unwrap());
    assert!(UnixStream::connect(path).is_err());
}

#[test]
fn a_regular_file_at_the_socket_path_is_refused_and_left_intact() {
    let dir = tempfile::tempdir().unwrap();
    let precious = dir.path().join("precious");
    let content: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    std::fs::write(&precious, &content).unwrap();
    let (code, _, err) = run_to_exit(server().arg(dir.path().join("db")).arg("--unix").arg(&precious));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("a regular file is there, not a socket; refusing to replace it"), "{err}");
    assert!(err.contains(&precious.display().to_string()), "the error names the path: {err}");
    assert_eq!(std::fs::read(&precious).unwrap(), content, "the file is byte-identical");
}

#[test]
fn a_directory_at_the_socket_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("keep"), b"x").unwrap();
    let (code, _, err) = run_to_exit(server().arg(dir.path().join("db")).arg("--unix").arg(&sub));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("a directory is there, not a socket"), "{err}");
    assert_eq!(std::fs::read(sub.join("keep")).unwrap(), b"x");
}

#[test]
fn a_live_socket_is_refused_and_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("live.sock");
    let live = UnixListener::bind(&socket).unwrap();
    let (code, _, err) = run_to_exit(server().arg(dir.path().join("db")).arg("--unix").arg(&socket));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("another server is listening on this socket"), "{err}");
    // The first listener still owns the path.
    let _client = UnixStream::connect(&socket).unwrap();
    live.accept().unwrap();
}

#[test]
fn a_stale_socket_is_replaced_and_served_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("stale.sock");
    stale_socket(&socket);
    let (_server, banner) = start(server().arg(dir.path().join("db")).arg("--unix").arg(&socket));
    assert!(banner.ends_with(&format!(" on unix:{}", socket.display())), "{banner}");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "owner-only socket");
    let db = Client::unix(&socket, ClientOptions::default().request_timeout(WAIT));
    db.put("k", "v").unwrap();
    assert_eq!(db.get("k").unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn readonly_on_a_missing_path_fails_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("mistyped");
    let (code, _, err) = run_to_exit(server().arg(&missing).arg("--readonly").args(["--addr", "127.0.0.1:0"]));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("no database at {}: a read-only store needs an existing one", missing.display())),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing was created");
}

#[test]
fn readonly_serves_an_existing_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let (_server, banner) = start(server().arg(&path).args(["--addr", "127.0.0.1:0", "--map-size", "64MiB"]));
        let db = Client::tcp(addr_of(&banner), ClientOptions::default().request_timeout(WAIT));
        db.put("k", "v").unwrap();
    }
    let (_server, banner) = start(server().arg(&path).args(["--readonly", "--addr", "127.0.0.1:0"]));
    let db = Client::tcp(addr_of(&banner), ClientOptions::default().request_timeout(WAIT));
    assert_eq!(db.get("k").unwrap().as_deref(), Some(&b"v"[..]));
    assert!(db.put("k", "w").is_err(), "writes are refused");
}

fn addr_of(banner: &str) -> std::net::SocketAddr {
    banner.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn the_flags_match_multilevel_serve() {
    let (code, out, err) = run_to_exit(server().arg("--help"));
    assert_eq!(code, Some(0), "{err}");
    for flag in ["[PATH]", "[default: multilevel-data]", "--listen <HOST:PORT>", "[default: 127.0.0.1:7481]"] {
        assert!(out.contains(flag), "--help lacks {flag}: {out}");
    }
    for flag in ["--unix <PATH>", "--readonly", "--no-sync", "--map-size <SIZE>"] {
        assert!(out.contains(flag), "--help lacks {flag}: {out}");
    }
    assert!(out.contains("[env: MULTILEVEL_LISTEN="), "--help lacks $MULTILEVEL_LISTEN: {out}");
    assert!(!out.contains("MULTILEVEL_ADDR="), "--help offers the clients' variable: {out}");
    let (code, _, err) = run_to_exit(server().args(["--map-size", "lots"]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("`lots` is not a size"), "{err}");
}

#[test]
fn the_library_function_refuses_what_the_program_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"keep").unwrap();
    let err = bind_unix_replacing_stale(&file).unwrap_err();
    assert!(matches!(err, UnixBindError::NotASocket { what: "a regular file", .. }), "{err:?}");
    assert_eq!(err.path(), file);
    assert_eq!(std::io::Error::from(err).kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(&file).unwrap(), b"keep");

    let link = dir.path().join("link");
    let stale = dir.path().join("stale.sock");
    stale_socket(&stale);
    std::os::unix::fs::symlink(&stale, &link).unwrap();
    let err = bind_unix_replacing_stale(&link).unwrap_err();
    assert!(matches!(err, UnixBindError::NotASocket { what: "a symbolic link", .. }), "{err:?}");

    let listener = bind_unix_replacing_stale(&stale).unwrap();
    let err = bind_unix_replacing_stale(&stale).unwrap_err();
    assert!(matches!(err, UnixBindError::InUse { .. }), "{err:?}");
    drop(listener);
    let _again = bind_unix_replacing_stale(&stale).unwrap();

    let err = bind_unix_replacing_stale(dir.path().join("no/such/dir/sock")).unwrap_err();
    assert!(matches!(err, UnixBindError::Bind { .. }), "{err:?}");
}

#[test]
fn listens_where_listen_says_and_never_on_the_clients_address() {
    // MULTILEVEL_ADDR names a port already taken: the server must never try it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let ways: [(&str, &[&str], Option<&str>); 4] = [
        ("--listen", &["--listen", "127.0.0.1:0"], None),
        ("--addr, the alias", &["--addr", "127.0.0.1:0"], None),
        ("$MULTILEVEL_LISTEN", &[], Some("127.0.0.1:0")),
        ("--listen over $MULTILEVEL_LISTEN", &["--listen", "127.0.0.1:0"], Some(taken_addr.as_str())),
    ];
    for (way, args, env) in ways {
        let mut command = server();
        command.env("MULTILEVEL_ADDR", &taken_addr).arg(&path).args(args);
        if let Some(listen) = env {
            command.env("MULTILEVEL_LISTEN", listen);
        }
        let (_server, banner) = start(&mut command);
        let addr = addr_of(&banner);
        assert_ne!(addr.to_string(), taken_addr, "{way}: bound the clients' address");
        assert!(addr.ip().is_loopback() && addr.port() != 0, "{way}: {banner}");
        let db = Client::tcp(addr, ClientOptions::default().request_timeout(WAIT));
        db.put("k", way).unwrap();
        assert_eq!(db.get("k").unwrap().as_deref(), Some(way.as_bytes()), "{way}");
    }
    // $MULTILEVEL_LISTEN naming the taken port is tried (and fails), so it is what is read.
    let (code, _, err) =
        run_to_exit(server().env("MULTILEVEL_ADDR", &taken_addr).env("MULTILEVEL_LISTEN", &taken_addr).arg(&path));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("cannot listen on {taken_addr}")), "$MULTILEVEL_LISTEN is read: {err}");
}
