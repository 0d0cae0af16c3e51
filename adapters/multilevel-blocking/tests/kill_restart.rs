//! The server process is killed (SIGKILL) and restarted on the same LMDB file while clients
//! with retry on write and iterate. Afterwards every acknowledged write is there, no write was
//! applied twice, and every iterator yielded exactly its range.
//!
//! Rounds default to 5; set `MULTILEVEL_KILL_ROUNDS` for a longer run.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use multilevel_blocking::{Client, ClientOptions, IterOptions, KeyRange};

const WRITERS: u64 = 3;
const TOKENS: u64 = 1_000;
const STATIC_KEYS: u32 = 3_000;

fn start_server(dir: &Path, addr: &str) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_multilevel-blocking-server"))
        .arg(dir)
        .args(["--addr", addr])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("the server binary starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    // "multilevel: serving <path> on <addr>"
    let addr = line.trim().rsplit(' ').next().unwrap().parse().unwrap_or_else(|_| panic!("bad banner {line:?}"));
    (child, addr)
}

fn token(t: u64, i: u64) -> String {
    format!("token/{t}/{i:05}")
}

#[test]
fn sigkill_and_restart_lose_nothing_and_apply_nothing_twice() {
    let rounds: u32 = std::env::var("MULTILEVEL_KILL_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(5);
    // A hung client would hang CI: fail loudly instead.
    thread::spawn(move || {
        thread::sleep(Duration::from_secs(60 + 30 * u64::from(rounds)));
        eprintln!("kill_restart: watchdog fired, something hangs");
        std::process::abort();
    });

    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = start_server(dir.path(), "127.0.0.1:0");
    let options = || ClientOptions::default().retry(true);

    // Fixed data to iterate over, and tokens that clears remove one at a time: a clear of one
    // key is not idempotent, so a clear applied twice removes two tokens.
    let setup = Client::tcp(addr, options());
    for chunk in (0..STATIC_KEYS).collect::<Vec<_>>().chunks(500) {
        let mut batch = setup.batch();
        for i in chunk {
            batch = batch.put(format!("static/{i:05}"), format!("value {i}"));
        }
        batch.write().unwrap();
    }
    for t in 0..WRITERS {
        let mut batch = setup.batch();
        for i in 0..TOKENS {
            batch = batch.put(token(t, i), "");
        }
        batch.write().unwrap();
    }
    drop(setup);

    let stop = Arc::new(AtomicBool::new(false));
    let acked_writes = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for t in 0..WRITERS {
        let (stop, acked_writes) = (Arc::clone(&stop), Arc::clone(&acked_writes));
        writers.push(thread::spawn(move || {
            let db = Client::tcp(addr, ClientOptions::default().retry(true));
            let (mut batches, mut clears) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                // Each batch adds a new unique key and moves this writer's cursor.
                db.batch()
                    .put(format!("w/{t}/{batches:06}"), "x")
                    .put(format!("cursor/{t}"), batches.to_string())
                    .write()
                    .unwrap();
                batches += 1;
                if batches % 4 == 0 && clears < TOKENS {
                    let range = KeyRange::all().gte(format!("token/{t}/")).lt(format!("token/{t}0"));
                    db.clear_with(range, false, Some(1)).unwrap();
                    clears += 1;
                }
                acked_writes.fetch_add(1, Ordering::Relaxed);
            }
            (batches, clears)
        }));
    }
    let mut iterators = Vec::new();
    for reverse in [false, true] {
        let stop = Arc::clone(&stop);
        iterators.push(thread::spawn(move || {
            let db = Client::tcp(addr, ClientOptions::default().retry(true));
            let mut expected: Vec<Bytes> = (0..STATIC_KEYS).map(|i| Bytes::from(format!("static/{i:05}"))).collect();
            if reverse {
                expected.reverse();
            }
            let mut passes = 0;
            while !stop.load(Ordering::Relaxed) || passes == 0 {
                let range = KeyRange::all().gte("static/").lt("static0");
                let got: Vec<Bytes> = db
                    .iter(IterOptions { range, reverse, values: false, ..IterOptions::default() })
                    .unwrap()
                    .map(|e| e.unwrap().key)
                    .collect();
                assert_eq!(got.len(), expected.len(), "an iterator gained or lost entries");
                assert!(got == expected, "an iterator's output differs from its range");
                passes += 1;
            }
            passes
        }));
    }

    let started = Instant::now();
    for round in 0..rounds {
        thread::sleep(Duration::from_millis(150 + u64::from(round * 37 % 200)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let (restarted, _) = start_server(dir.path(), &addr.to_string());
        child = restarted;
    }
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let results: Vec<(u64, u64)> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let passes: Vec<u32> = iterators.into_iter().map(|i| i.join().unwrap()).collect();

    let db = Client::tcp(addr, options());
    for (t, (batches, clears)) in results.iter().enumerate() {
        let written: Vec<Bytes> = db
            .iter(IterOptions {
                range: KeyRange::all().gte(format!("w/{t}/")).lt(format!("w/{t}0")),
                values: false,
                ..IterOptions::default()
            })
            .unwrap()
            .map(|e| e.unwrap().key)
            .collect();
        assert_eq!(written.len() as u64, *batches, "writer {t}: acknowledged batches missing");
        let cursor = db.get(format!("cursor/{t}")).unwrap().unwrap();
        assert_eq!(cursor, (batches - 1).to_string(), "writer {t}: an old batch was applied again");
        let tokens = db
            .iter(IterOptions {
                range: KeyRange::all().gte(format!("token/{t}/")).lt(format!("token/{t}0")),
                ..IterOptions::default()
            })
            .unwrap()
            .count() as u64;
        assert_eq!(tokens, TOKENS - clears, "writer {t}: a clear was lost or applied twice");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let batches: u64 = results.iter().map(|r| r.0).sum();
    let clears: u64 = results.iter().map(|r| r.1).sum();
    eprintln!(
        "kill_restart: {rounds} SIGKILLs in {:.1?}; {batches} batches and {clears} clears acknowledged and checked; \
         iterator passes {passes:?} over {STATIC_KEYS} keys each, all exact",
        started.elapsed()
    );
}
