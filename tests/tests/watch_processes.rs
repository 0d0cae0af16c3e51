//! Watches across processes: writer processes put, delete, batch and clear through a
//! connection-cutting proxy with retry on, while watcher processes (retry on, behind the same
//! proxy) print every event, and the server (a child process over one LMDB directory) is
//! SIGKILLed and restarted on the same port. Afterwards each watcher's events equal exactly the
//! committed history of its range from its start: the history a fresh watch over a direct
//! connection replays once everything is done, and which holds every acknowledged put of the
//! writers exactly once, in each writer's order.
//!
//! The server, the writers and the watchers are this test binary run again
//! (`--ignored --exact NAME`). Knobs: `MULTILEVEL_WATCH_PROC_WRITES` (300 per writer),
//! `MULTILEVEL_WATCH_PROC_KILLS` (2), `MULTILEVEL_WATCH_PROC_SEED` (random).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use multilevel_proto::{Change, ChangeEvent, ClientOptions, KeyRange, WatchOptions};
use multilevel_tests::knob;
use multilevel_tests::processes::{
    Guard, env, exit_when_the_parent_goes, free_port, report, serve_lmdb_child, start_server, tagged,
};
use multilevel_tests::proxy::CuttingProxy;
use rand::{RngExt, SeedableRng};

const WRITERS: u64 = 2;
const ENV_ADDR: &str = "MULTILEVEL_PROC_CHILD_ADDR";
const ENV_WRITER: &str = "MULTILEVEL_PROC_CHILD_WRITER";
const ENV_WRITES: &str = "MULTILEVEL_PROC_CHILD_WRITES";
const ENV_WATCHER: &str = "MULTILEVEL_PROC_CHILD_WATCHER";
const DEADLINE: Duration = Duration::from_secs(150);

/// The watchers: a range, and the key whose put ends the watch (written by the parent last).
fn watcher_range(watcher: u64) -> (KeyRange, &'static str) {
    match watcher {
        0 => (KeyRange::all(), "w1/~end"),
        1 => (KeyRange::prefix(b"w0/"), "w0/~end"),
        _ => (KeyRange::prefix(b"w1/"), "w1/~end"),
    }
}

/// An event as a line: `POSITION INDEX END put KEY VALUE` or `POSITION INDEX END del KEY`.
fn line(event: &ChangeEvent) -> String {
    let head = format!("{} {} {}", event.position, event.index, u8::from(event.commit_end));
    match &event.change {
        Change::Put { key, value } => {
            format!("{head} put {} {}", String::from_utf8_lossy(key), String::from_utf8_lossy(value))
        }
        Change::Del { key } => format!("{head} del {}", String::from_utf8_lossy(key)),
    }
}

#[test]
#[ignore = "the server process of watchers_see_exactly_the_committed_history_across_cuts_and_server_kills"]
fn watch_server_child() {
    serve_lmdb_child();
}

/// A writer child: `$ENV_WRITES` writes under `w{id}/` through `$ENV_ADDR` with retry on: puts,
/// and every few a batch, a delete, a clear of a few keys; reports each acknowledged put.
#[test]
#[ignore = "a writer process of watchers_see_exactly_the_committed_history_across_cuts_and_server_kills"]
fn watch_writer_child() {
    exit_when_the_parent_goes();
    let addr: SocketAddr = env(ENV_ADDR).parse().unwrap();
    let id: u64 = env(ENV_WRITER).parse().unwrap();
    let writes: u64 = env(ENV_WRITES).parse().unwrap();
    let options = ClientOptions::default().retry(true).request_timeout(Duration::from_secs(60));
    let db = multilevel_blocking::Client::tcp(addr, options);
    let key = |i: u64| format!("w{id}/{i:05}");
    for i in 0..writes {
        let done = match i % 10 {
            3 => db.batch().put(key(i), format!("b{i}")).del(key(i - 1)).write(),
            6 => db.del(key(i - 2)),
            9 => db.clear_with(KeyRange::all().gte(key(i - 5)).lt(key(i)), false, None),
            _ => db.put(key(i), format!("p{i}")),
        };
        done.unwrap_or_else(|e| panic!("writer {id}: write {i}: {e}"));
        if i % 10 != 6 && i % 10 != 9 {
            report(format_args!("put {}", key(i)));
        }
    }
    report(format_args!("done"));
    db.close();
}

/// A watcher child: watches its range from the start of the history through `$ENV_ADDR` with
/// retry on, reporting every event, until the put of its end key.
#[test]
#[ignore = "a watcher process of watchers_see_exactly_the_committed_history_across_cuts_and_server_kills"]
fn watch_watcher_child() {
    exit_when_the_parent_goes();
    let addr: SocketAddr = env(ENV_ADDR).parse().unwrap();
    let watcher: u64 = env(ENV_WATCHER).parse().unwrap();
    let (range, end) = watcher_range(watcher);
    let options = ClientOptions::default().retry(true).request_timeout(Duration::from_secs(60));
    let db = multilevel_blocking::Client::tcp(addr, options);
    let watch = db.watch(WatchOptions::new().range(range).after(0)).expect("the watch starts");
    report(format_args!("watching"));
    let state = db.clone();
    thread::spawn(move || {
        loop {
            thread::sleep(Duration::from_secs(1));
            report(format_args!("state {:?}", state.state()));
        }
    });
    for event in watch {
        let event = event.unwrap_or_else(|e| panic!("watcher {watcher}: {e}"));
        report(format_args!("ev {}", line(&event)));
        if event.change.key() == end.as_bytes() {
            break;
        }
    }
    report(format_args!("done"));
    db.close();
}

/// Reads a child's tagged lines into `into`, counting those starting with `count` in `counter`.
fn collect(
    stdout: std::io::BufReader<std::process::ChildStdout>,
    into: Arc<Mutex<Vec<String>>>,
    counter: Arc<AtomicU64>,
    count: &'static str,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for line in stdout.lines() {
            let line = line.expect("a child's stdout");
            let Some(words) = tagged(&line) else { continue };
            if words.starts_with(count) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            into.lock().unwrap().push(words.to_owned());
        }
    })
}

#[test]
fn watchers_see_exactly_the_committed_history_across_cuts_and_server_kills() {
    let started = Instant::now();
    let writes = knob("MULTILEVEL_WATCH_PROC_WRITES", 300);
    let kills = knob("MULTILEVEL_WATCH_PROC_KILLS", 2);
    let seed = knob("MULTILEVEL_WATCH_PROC_SEED", rand::random());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    eprintln!("watch_processes: seed {seed} (MULTILEVEL_WATCH_PROC_SEED)");

    let dir = tempfile::tempdir().expect("a temp dir");
    let port = free_port();
    let server_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut server = start_server("watch_server_child", dir.path(), port);
    let proxy = CuttingProxy::start(server_addr, seed, 8.0, 12.0);

    let mut watchers = Vec::new();
    for watcher in 0..3u64 {
        let envs = [(ENV_ADDR, proxy.addr.to_string()), (ENV_WATCHER, watcher.to_string())];
        let (child, stdout) = Guard::spawn("watch_watcher_child", &envs);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let reader = collect(stdout, Arc::clone(&lines), Arc::new(AtomicU64::new(0)), "ev");
        watchers.push((child, lines, reader));
    }
    let progress = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for id in 0..WRITERS {
        let envs = [(ENV_ADDR, proxy.addr.to_string()), (ENV_WRITER, id.to_string()), (ENV_WRITES, writes.to_string())];
        let (child, stdout) = Guard::spawn("watch_writer_child", &envs);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let reader = collect(stdout, Arc::clone(&lines), Arc::clone(&progress), "put");
        writers.push((child, lines, reader));
    }

    // Kill the server at random points while the writers write.
    let total_puts = WRITERS * writes * 8 / 10;
    let mut killed_at = Vec::new();
    for k in 0..kills {
        let (low, high) = (total_puts * (2 * k + 1) / (2 * kills + 1), total_puts * (2 * k + 2) / (2 * kills + 1));
        let point = rng.random_range(low..high.max(low + 1));
        while progress.load(Ordering::Relaxed) < point {
            assert!(started.elapsed() < DEADLINE, "no progress to {point} puts: stuck");
            assert!(!writers.iter().all(|(_, _, r)| r.is_finished()), "the writers exited before {point} puts");
            thread::sleep(Duration::from_millis(2));
        }
        server.kill();
        killed_at.push(progress.load(Ordering::Relaxed));
        server = start_server("watch_server_child", dir.path(), port);
    }
    for (id, (child, lines, reader)) in writers.iter_mut().enumerate() {
        let status = child.wait_until(started, DEADLINE, &format!("writer {id}"));
        assert!(status.success(), "writer {id} failed: {status}");
        std::mem::replace(reader, thread::spawn(|| {})).join().unwrap();
        assert_eq!(lines.lock().unwrap().last().map(String::as_str), Some("done"), "writer {id} finished");
    }

    // The end keys, then every watcher ends.
    let direct = multilevel_blocking::Client::tcp(server_addr, ClientOptions::default());
    direct.put("w0/~end", "end").unwrap();
    direct.put("w1/~end", "end").unwrap();
    let mut seen: Vec<Vec<String>> = Vec::new();
    for (watcher, (child, lines, reader)) in watchers.iter_mut().enumerate() {
        let ends = Instant::now();
        while child.child.try_wait().expect("wait").is_none() && ends.elapsed() < Duration::from_secs(20) {
            thread::sleep(Duration::from_millis(10));
        }
        if child.child.try_wait().expect("wait").is_none() {
            let lines = lines.lock().unwrap();
            let mut last: Vec<&String> = lines.iter().rev().filter(|l| l.starts_with("ev")).take(3).collect();
            last.extend(lines.iter().rev().take(3));
            panic!("watcher {watcher} stuck; stats {:?}; last lines {last:?}", direct.stats());
        }
        let status = child.wait_until(started, DEADLINE, &format!("watcher {watcher}"));
        assert!(status.success(), "watcher {watcher} failed: {status}");
        std::mem::replace(reader, thread::spawn(|| {})).join().unwrap();
        let lines = lines.lock().unwrap();
        assert_eq!(lines.last().map(String::as_str), Some("done"), "watcher {watcher} finished");
        seen.push(lines.iter().filter_map(|l| l.strip_prefix("ev ")).map(str::to_owned).collect());
    }

    // The committed history, replayed by a fresh watch over a direct connection.
    for (watcher, events) in seen.iter().enumerate() {
        let (range, end) = watcher_range(watcher as u64);
        let mut history = Vec::new();
        for event in direct.watch(WatchOptions::new().range(range).after(0)).unwrap() {
            let event = event.unwrap();
            history.push(line(&event));
            if event.change.key() == end.as_bytes() {
                break;
            }
        }
        assert_eq!(events.len(), history.len(), "watcher {watcher}: as many events as the history");
        assert_eq!(*events, history, "watcher {watcher}: the exact history");
    }
    // Every acknowledged put is in the history of everything exactly once, in each writer's order.
    let mut puts: BTreeMap<String, usize> = BTreeMap::new();
    for (at, event) in seen[0].iter().enumerate() {
        let words: Vec<&str> = event.split(' ').collect();
        if words[3] == "put" {
            assert!(puts.insert(words[4].to_owned(), at).is_none(), "{} put twice", words[4]);
        }
    }
    for (id, (_, lines, _)) in writers.iter().enumerate() {
        let acked: Vec<String> =
            lines.lock().unwrap().iter().filter_map(|l| l.strip_prefix("put ")).map(str::to_owned).collect();
        let positions: Vec<usize> =
            acked.iter().map(|key| *puts.get(key).unwrap_or_else(|| panic!("acknowledged {key} not seen"))).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "writer {id}'s puts out of order");
    }
    direct.close();
    server.kill();
    let cuts = proxy.cuts();
    assert_eq!(killed_at.len() as u64, kills);
    assert!(cuts > 0, "the proxy cut no connection");
    eprintln!(
        "watch_processes: {WRITERS} writers x {writes} writes, 3 watcher processes, {} events seen in all; \
         {kills} SIGKILLs of the server (after {killed_at:?} puts), {cuts} connections cut; {:.1?}",
        seen.iter().map(Vec::len).sum::<usize>(),
        started.elapsed()
    );
}
