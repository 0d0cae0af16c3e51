//! `--retry` end to end: a `multilevel serve` child on a temp LMDB directory is SIGKILLed in the
//! middle of a long `export`, `import` or `scan` and started again on the same port; the
//! command (retrying by default) reconnects and finishes with status 0, every entry once and
//! in order. With `--no-retry` the same cut fails the command, saying so, with status 1; and a
//! server that never comes back fails a retrying command after `--timeout`.

#![cfg(unix)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::{DEADLINE, ServerProcess, finish, program, signal, stderr, wait_within};
use tempfile::TempDir;

mod support;

/// Entries in the database; with [`VALUE_LEN`], 20 MB: far more than an iterator's window and
/// the pipes hold, so a transfer cut anywhere past its first entries still has most to go.
const ENTRIES: usize = 20_000;
/// Bytes in each value.
const VALUE_LEN: usize = 1000;
/// How long the server stays down before it is started again.
const DOWN_FOR: Duration = Duration::from_millis(300);

/// The key of entry `i`.
fn key(i: usize) -> String {
    format!("k{i:06}")
}

/// The value of entry `i` in round `round`: distinct per entry and per round.
fn value(i: usize, round: usize) -> String {
    let head = format!("r{round}-{i}-");
    format!("{head}{}", "v".repeat(VALUE_LEN - head.len()))
}

/// One JSON line.
fn line(key: &str, value: &str) -> String {
    format!("{{\"key\":\"{key}\",\"value\":\"{value}\"}}\n")
}

/// The export of the database filled by [`Database::filled`].
fn expected_export() -> String {
    (0..ENTRIES).map(|i| line(&key(i), &value(i, 1))).collect()
}

/// A database directory served by one `multilevel serve` child at a time, always on the same
/// loopback port.
struct Database {
    server: ServerProcess,
    path: PathBuf,
    /// Holds the database (and the tests' dump files).
    dir: TempDir,
}

impl Database {
    /// An empty database, served on a free port.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let server = Self::serve(&path, "127.0.0.1:0");
        Self { server, path, dir }
    }

    /// A database holding [`ENTRIES`] entries, round 1.
    fn filled() -> Self {
        let db = Self::new();
        let input: String = (0..ENTRIES).map(|i| line(&key(i), &value(i, 1))).collect();
        let imported = db.server.run_with_stdin(&["import"], Some(input.as_bytes()));
        assert!(imported.status.success(), "{}", stderr(&imported));
        db
    }

    /// `multilevel serve PATH --listen LISTEN`, up to its banner.
    fn serve(path: &Path, listen: &str) -> ServerProcess {
        let mut command = program();
        command.arg("serve").arg(path).args(["--listen", listen]);
        ServerProcess::start(command, &format!("multilevel: serving {} on ", path.display()))
    }

    /// Where the server listens, `127.0.0.1:PORT`, the same across restarts.
    fn addr(&self) -> String {
        self.server.addr.clone()
    }

    /// SIGKILLs the server; returns its pid.
    fn kill(&mut self) -> u32 {
        let pid = self.server.child.id();
        self.server.kill();
        pid
    }

    /// Starts a new server on the same directory and port; returns its pid, which must differ
    /// from `killed`.
    fn restart(&mut self, killed: u32) -> u32 {
        let addr = self.addr();
        self.server = Self::serve(&self.path, &addr);
        assert_eq!(self.server.addr, addr, "the new server listens where the old one did");
        let pid = self.server.child.id();
        assert_ne!(pid, killed, "a new server process");
        pid
    }

    /// A client command against the server; it must succeed. Returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        self.server.ok(args)
    }
}

/// A client command against `addr`, stdout and stderr piped, spawned.
fn spawn(addr: &str, args: &[&str], stdin: Stdio) -> Child {
    program()
        .args(args)
        .args(["--addr", addr, "--timeout", "20s"])
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until a temporary file beside `path` (`.NAME.*.tmp`, where `export` writes) holds
/// data, or `export` exits; returns the lines in it, or `None` if the export ended first.
fn export_begun(path: &Path, export: &mut Child) -> Option<usize> {
    let dir = path.parent().unwrap();
    let prefix = format!(".{}.", path.file_name().unwrap().to_string_lossy());
    let start = Instant::now();
    loop {
        let temp = std::fs::read_dir(dir).unwrap().filter_map(Result::ok).find(|entry| {
            entry.file_name().to_string_lossy().starts_with(&prefix) && entry.metadata().is_ok_and(|m| m.len() > 0)
        });
        if let Some(temp) = temp {
            signal(export, "STOP");
            let written = std::fs::read(temp.path()).unwrap_or_default();
            return Some(written.iter().filter(|&&b| b == b'\n').count());
        }
        if export.try_wait().unwrap().is_some() {
            return None;
        }
        assert!(start.elapsed() < DEADLINE, "the export never began writing");
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn an_export_survives_a_server_restart() {
    let mut db = Database::filled();
    let out = db.dir.path().join("dump.jsonl");
    let out_arg = out.display().to_string();
    // Stop the export as soon as it has written something; on a machine slow enough for it
    // to finish first, try again.
    let (mut export, written) = {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut export = spawn(&db.addr(), &["export", &out_arg], Stdio::null());
            match export_begun(&out, &mut export) {
                Some(written) => break (export, written),
                None => assert!(attempts < 3, "the export finished before it could be stopped, 3 times"),
            }
            let _ = std::fs::remove_file(&out);
        }
    };
    assert!(!out.exists() && written < ENTRIES, "the export is mid-way ({written} lines written)");
    let killed = db.kill();
    signal(&export, "CONT");
    thread::sleep(DOWN_FOR);
    assert!(export.try_wait().unwrap().is_none(), "the export waits for the server");
    db.restart(killed);
    let exported = finish(export);
    assert!(exported.status.success(), "the export failed: {}", stderr(&exported));
    assert_eq!(stderr(&exported), format!("exported {ENTRIES} entries\n"));
    let file = std::fs::read_to_string(&out).unwrap();
    eprintln!("{written} lines were written when the server was killed");
    let after = db.ok(&["export"]);
    assert!(file == after, "the export differs from a dump taken afterwards");
    assert!(file == expected_export(), "an entry was lost, repeated or changed");
}

#[test]
fn an_import_survives_a_server_restart() {
    let mut db = Database::new();
    // Round 1 writes every key; round 2 rewrites every tenth key. A batch of round 1 applied
    // again after round 2 (a replay applied twice) would show as a round-1 value.
    let round_1: String = (0..ENTRIES).map(|i| line(&key(i), &value(i, 1))).collect();
    let round_2: String = (0..ENTRIES).step_by(10).map(|i| line(&key(i), &value(i, 2))).collect();
    let mut import = spawn(&db.addr(), &["import", "--batch-size", "100"], Stdio::piped());
    let mut input = import.stdin.take().unwrap();
    let writer = thread::spawn(move || input.write_all(round_1.as_bytes()).map(|()| input));
    // Once the import has begun writing, stop it with batches in flight, and kill the server.
    let start = Instant::now();
    while db.server.run(&["get", &key(0)]).stdout.is_empty() {
        assert!(start.elapsed() < DEADLINE, "the import never wrote");
        thread::sleep(Duration::from_millis(2));
    }
    signal(&import, "STOP");
    let at_kill = db.server.run(&["count"]);
    let killed = db.kill();
    signal(&import, "CONT");
    thread::sleep(DOWN_FOR);
    db.restart(killed);
    let mut input = writer.join().unwrap().expect("the import reads its input");
    input.write_all(round_2.as_bytes()).unwrap();
    drop(input);
    let imported = finish(import);
    assert!(imported.status.success(), "the import failed: {}", stderr(&imported));
    let written = ENTRIES + ENTRIES / 10;
    assert_eq!(stderr(&imported), format!("imported {written} entries\n"));
    let at_kill = String::from_utf8_lossy(&at_kill.stdout).trim().to_owned();
    eprintln!("{at_kill} of {ENTRIES} keys were written when the server was killed");
    assert_ne!(at_kill, ENTRIES.to_string(), "the server was killed mid-import");
    let want: String =
        (0..ENTRIES).map(|i| format!("{}\t{}\n", key(i), value(i, if i % 10 == 0 { 2 } else { 1 }))).collect();
    let got = db.ok(&["scan"]);
    assert_eq!(got.lines().count(), ENTRIES, "every key once");
    assert!(got == want, "a key is missing, repeated or holds the wrong value");
}

/// Reads the first line of `child`'s stdout, leaving the rest in the pipe (which then fills, so
/// the command waits in the middle of its output).
fn first_line(child: &mut Child) -> (String, BufReader<std::process::ChildStdout>) {
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    (first, stdout)
}

#[test]
fn a_scan_survives_a_server_restart() {
    let mut db = Database::filled();
    let mut scan = spawn(&db.addr(), &["scan"], Stdio::null());
    let (first, mut stdout) = first_line(&mut scan);
    assert_eq!(first, format!("{}\t{}\n", key(0), value(0, 1)));
    thread::sleep(Duration::from_millis(300)); // the scan fills the pipe and waits
    let killed = db.kill();
    thread::sleep(DOWN_FOR);
    db.restart(killed);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let scanned = finish(scan);
    assert!(scanned.status.success(), "the scan failed: {}", stderr(&scanned));
    let got = first + &rest;
    let want: String = (0..ENTRIES).map(|i| format!("{}\t{}\n", key(i), value(i, 1))).collect();
    assert_eq!(got.lines().count(), ENTRIES, "entries scanned");
    assert!(got == want, "the scan skipped or repeated an entry");
}

#[test]
fn without_retry_a_cut_transfer_fails() {
    let mut db = Database::filled();
    let addr = db.addr();
    let lost =
        format!("multilevel: lost the connection to {addr} (with --retry the command reconnects and carries on)\n");

    // A scan: the server killed while it waits for its reader.
    let mut scan = spawn(&addr, &["scan", "--no-retry"], Stdio::null());
    let (_, mut stdout) = first_line(&mut scan);
    thread::sleep(Duration::from_millis(300));
    let killed = db.kill();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let scanned = finish(scan);
    assert_eq!(scanned.status.code(), Some(1), "{}", stderr(&scanned));
    assert_eq!(stderr(&scanned), lost);
    assert!(rest.lines().count() + 1 < ENTRIES, "the scan stopped short");
    db.restart(killed);

    // An export to a file: it fails, and leaves no file behind.
    let out = db.dir.path().join("dump.jsonl");
    let mut export = spawn(&addr, &["export", &out.display().to_string(), "--no-retry"], Stdio::null());
    export_begun(&out, &mut export).expect("the export finished before it could be stopped");
    let killed = db.kill();
    signal(&export, "CONT");
    let status = wait_within(&mut export, DEADLINE).expect("the export gives up");
    let mut message = String::new();
    export.stderr.take().unwrap().read_to_string(&mut message).unwrap();
    assert_eq!(status.code(), Some(1), "{message}");
    assert_eq!(message, lost);
    assert!(!out.exists(), "a failed export leaves no file");
    db.restart(killed);
    assert_eq!(db.ok(&["count"]), format!("{ENTRIES}\n"), "the database is intact");
}

#[test]
fn a_server_that_stays_away_fails_a_retrying_transfer_after_the_timeout() {
    let mut db = Database::filled();
    let addr = db.addr();
    let mut scan = program()
        .args(["scan", "--addr", &addr, "--timeout", "2s"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (_, mut stdout) = first_line(&mut scan);
    thread::sleep(Duration::from_millis(300));
    db.kill();
    let killed_at = Instant::now();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let scanned = finish(scan);
    let took = killed_at.elapsed();
    assert_eq!(scanned.status.code(), Some(1), "{}", stderr(&scanned));
    assert_eq!(
        stderr(&scanned),
        format!("multilevel: {addr} did not answer within 2s: the connection was lost and could not be made again\n")
    );
    assert!(took < Duration::from_secs(15), "the scan gave up {took:?} after the server died");
}
