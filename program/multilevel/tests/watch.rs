//! `multilevel watch` end to end against a `multilevel serve` child: every kind of write as a
//! line in each format, `--from` replaying the history, `--limit`, keys only, a sublevel, a
//! position the server no longer keeps, and a watch that carries on exactly across a server
//! SIGKILL and restart on the same port.

#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use support::{DEADLINE, ServerProcess, program, stderr};

mod support;

/// Starts `multilevel watch ARGS` against `server`, its stdout lines sent to the receiver.
fn watch(server: &ServerProcess, args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut command = program();
    command.arg("watch").args(args).args(["--addr", &server.addr, "--timeout", "20s"]);
    let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

fn lines(rx: &mpsc::Receiver<String>, n: usize) -> Vec<String> {
    (0..n).map(|i| rx.recv_timeout(DEADLINE).unwrap_or_else(|_| panic!("only {i} of {n} lines came"))).collect()
}

/// Waits until the watch has started on the server: a put it must see, then its line.
fn started(server: &ServerProcess, rx: &mpsc::Receiver<String>, key: &str) {
    for _ in 0..200 {
        server.ok(&["put", key, "sync"]);
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            assert!(line.contains(key), "{line}");
            while rx.recv_timeout(Duration::from_millis(100)).is_ok() {}
            return;
        }
    }
    panic!("the watch never started");
}

#[test]
fn every_kind_of_write_prints_a_line_as_it_is_committed() {
    let server = ServerProcess::tcp();
    let (mut text, text_rx) = watch(&server, &[]);
    started(&server, &text_rx, "sync");
    let (mut json, json_rx) = watch(&server, &["--format", "json", "--prefix", "f/"]);
    started(&server, &json_rx, "f/sync");
    while text_rx.recv_timeout(Duration::from_millis(300)).is_ok() {} // the text watch saw f/sync too
    server.ok(&["put", "f/a", "1"]);
    server.ok(&["incr", "f/n", "3"]);
    server.ok(&["del", "f/a"]);
    server.ok(&["del", "f/absent"]);
    server.ok(&["clear", "--prefix", "f/"]);
    let text_lines = lines(&text_rx, 5);
    let positions: Vec<u64> = text_lines.iter().map(|l| l.split('\t').next().unwrap().parse().unwrap()).collect();
    let p = positions[0];
    assert_eq!(
        text_lines,
        vec![
            format!("{p}\tput\tf/a\t1"),
            format!("{}\tput\tf/n\t3", p + 1),
            format!("{}\tdel\tf/a", p + 2),
            format!("{}\tdel\tf/n", p + 3),
            format!("{}\tdel\tf/sync", p + 3),
        ]
    );
    assert_eq!(
        lines(&json_rx, 5),
        vec![
            format!(
                "{{\"position\":{p},\"index\":0,\"op\":\"put\",\"key\":\"f/a\",\"value\":\"1\",\"commit_end\":true}}"
            ),
            format!(
                "{{\"position\":{},\"index\":0,\"op\":\"put\",\"key\":\"f/n\",\"value\":\"3\",\"commit_end\":true}}",
                p + 1
            ),
            format!("{{\"position\":{},\"index\":0,\"op\":\"del\",\"key\":\"f/a\",\"commit_end\":true}}", p + 2),
            format!("{{\"position\":{},\"index\":0,\"op\":\"del\",\"key\":\"f/n\",\"commit_end\":false}}", p + 3),
            format!("{{\"position\":{},\"index\":1,\"op\":\"del\",\"key\":\"f/sync\",\"commit_end\":true}}", p + 3),
        ]
    );
    let _ = text.kill();
    let _ = json.kill();
}

#[test]
fn from_replays_the_history_and_limit_stops_after_n_changes() {
    let server = ServerProcess::tcp();
    for i in 0..5 {
        server.ok(&["put", &format!("k{i}"), &format!("v{i}")]);
    }
    let out = server.ok(&["watch", "--from", "2", "--limit", "3", "--keys-only", "--format", "hex"]);
    assert_eq!(out, "3\tput\t6b32\n4\tput\t6b33\n5\tput\t6b34\n");
    server.ok(&["put", "--sublevel", "s", "a", "in the sublevel"]);
    let out = server.ok(&["watch", "--from", "0", "--limit", "1", "--sublevel", "s"]);
    assert_eq!(out, "6\tput\ta\tin the sublevel\n", "the sublevel's key, without its prefix");
}

#[test]
fn a_position_no_longer_kept_fails_naming_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut command = program();
    command.arg("serve").arg(&db).args(["--listen", "127.0.0.1:0", "--history-commits", "2"]);
    let server = ServerProcess::start(command, &format!("multilevel: serving {} on ", db.display()));
    for i in 0..5 {
        server.ok(&["put", &format!("k{i}"), "v"]);
    }
    let output = server.run(&["watch", "--from", "1"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains("before position 4 is no longer kept"), "{message}");
    assert_eq!(server.ok(&["watch", "--from", "3", "--limit", "2"]), "4\tput\tk3\tv\n5\tput\tk4\tv\n");
}

#[test]
fn a_watch_carries_on_exactly_across_a_server_kill_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let serve = |listen: &str| {
        let mut command = program();
        command.arg("serve").arg(&db).args(["--listen", listen]);
        ServerProcess::start(command, &format!("multilevel: serving {} on ", db.display()))
    };
    let mut server = serve("127.0.0.1:0");
    let addr = server.addr.clone();
    let (mut child, rx) = watch(&server, &[]);
    started(&server, &rx, "sync");
    for i in 0..3 {
        server.ok(&["put", &format!("before{i}"), "v"]);
    }
    assert_eq!(lines(&rx, 3).len(), 3);
    server.kill();
    // Written while the watch is disconnected: it must see them once it is back.
    let mut server = serve(&addr);
    for i in 0..3 {
        server.ok(&["put", &format!("after{i}"), "v"]);
    }
    let after: Vec<String> = lines(&rx, 3).iter().map(|l| l.split('\t').nth(2).unwrap().to_owned()).collect();
    assert_eq!(after, ["after0", "after1", "after2"]);
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "nothing repeated");
    assert!(child.try_wait().unwrap().is_none(), "the watch is still running");
    let _ = child.kill();
    server.kill();
}
