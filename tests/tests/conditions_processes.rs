//! Conditional writes across processes: writer processes increment shared counters and race to
//! claim names through a connection-cutting proxy, with retry on, while the server (a child
//! process over one LMDB directory) is SIGKILLed and restarted on the same port. Afterwards
//! each counter equals the increments acknowledged on it, the values they returned are exactly
//! 1..=n, and every name was claimed by exactly one writer, whose id it holds.
//!
//! The server and the writers are this test binary run again (`--ignored --exact NAME`).
//! Knobs: `MULTILEVEL_PROC_WRITERS` (3), `MULTILEVEL_PROC_INCREMENTS` (200 per writer),
//! `MULTILEVEL_PROC_NAMES` (100), `MULTILEVEL_PROC_KILLS` (2), `MULTILEVEL_PROC_SEED` (random).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use multilevel_proto::ClientOptions;
use multilevel_tests::knob;
use multilevel_tests::processes::{
    self, Guard, env, exit_when_the_parent_goes, free_port, report, serve_lmdb_child, tagged,
};
use multilevel_tests::proxy::CuttingProxy;
use rand::{RngExt, SeedableRng};

const COUNTERS: u64 = 4;
/// The children's settings.
const ENV_ADDR: &str = "MULTILEVEL_PROC_CHILD_ADDR";
const ENV_WRITER: &str = "MULTILEVEL_PROC_CHILD_WRITER";
const ENV_WRITERS: &str = "MULTILEVEL_PROC_CHILD_WRITERS";
const ENV_INCREMENTS: &str = "MULTILEVEL_PROC_CHILD_INCREMENTS";
const ENV_NAMES: &str = "MULTILEVEL_PROC_CHILD_NAMES";
/// The whole test fails (and every child is killed) past this.
const DEADLINE: Duration = Duration::from_secs(120);

/// The server child: serves the LMDB directory it is given until killed.
#[test]
#[ignore = "the server process of writer_processes_count_and_claim_exactly_once_across_cuts_and_server_kills"]
fn server_child() {
    serve_lmdb_child();
}

/// A writer child: `$ENV_INCREMENTS` increments spread over the counters and an attempt at
/// every one of `$ENV_NAMES` names (starting at a different name per writer), through
/// `$ENV_ADDR` with retry on; reports every acknowledged result, then `done`.
#[test]
#[ignore = "a writer process of writer_processes_count_and_claim_exactly_once_across_cuts_and_server_kills"]
fn writer_child() {
    exit_when_the_parent_goes();
    let addr: SocketAddr = env(ENV_ADDR).parse().unwrap();
    let id: u64 = env(ENV_WRITER).parse().unwrap();
    let writers: u64 = env(ENV_WRITERS).parse().unwrap();
    let increments: u64 = env(ENV_INCREMENTS).parse().unwrap();
    let names: u64 = env(ENV_NAMES).parse().unwrap();
    // A request outlives any restart here; one that times out would be an unknown outcome, so
    // any error fails the writer (and the test) rather than being counted either way.
    let options = ClientOptions::default().retry(true).request_timeout(Duration::from_secs(60));
    let db = multilevel_blocking::Client::tcp(addr, options);
    let first_name = id * names / writers.max(1);
    for i in 0..increments.max(names) {
        if i < increments {
            let counter = (i + id) % COUNTERS;
            let value =
                db.increment(format!("counter/{counter}"), 1).unwrap_or_else(|e| panic!("writer {id}: increment: {e}"));
            report(format_args!("inc {counter} {value}"));
        }
        if i < names {
            let name = (first_name + i) % names;
            let claim = db
                .put_if_absent(format!("name/{name}"), format!("writer {id}"))
                .unwrap_or_else(|e| panic!("writer {id}: put_if_absent: {e}"));
            match claim {
                Ok(()) => report(format_args!("claim {name}")),
                Err(owner) => assert_ne!(owner, format!("writer {id}"), "writer {id}: name {name} held by itself"),
            }
        }
    }
    report(format_args!("done"));
    db.close();
}

/// Starts the server child over `dir` on `port`.
fn start_server(dir: &Path, port: u16) -> Guard {
    processes::start_server("server_child", dir, port)
}

/// What one writer acknowledged.
#[derive(Debug, Default)]
struct Acked {
    increments: Vec<(u64, i64)>,
    claims: Vec<u64>,
    done: bool,
}

#[test]
fn writer_processes_count_and_claim_exactly_once_across_cuts_and_server_kills() {
    let started = Instant::now();
    let writers = knob("MULTILEVEL_PROC_WRITERS", 3);
    let increments = knob("MULTILEVEL_PROC_INCREMENTS", 200);
    let names = knob("MULTILEVEL_PROC_NAMES", 100);
    let kills = knob("MULTILEVEL_PROC_KILLS", 2);
    let seed = knob("MULTILEVEL_PROC_SEED", rand::random());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    eprintln!("conditions_processes: seed {seed} (MULTILEVEL_PROC_SEED)");

    let dir = tempfile::tempdir().expect("a temp dir");
    let port = free_port();
    let server_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut server = start_server(dir.path(), port);
    // Cuts every 256 B to 4 KiB: a few to some tens of requests per connection.
    let proxy = CuttingProxy::start(server_addr, seed, 8.0, 12.0);

    // Increments acknowledged so far, over all writers: the kills are placed by it.
    let progress = Arc::new(AtomicU64::new(0));
    let mut children = Vec::new();
    let mut readers = Vec::new();
    for id in 0..writers {
        let envs = [
            (ENV_ADDR, proxy.addr.to_string()),
            (ENV_WRITER, id.to_string()),
            (ENV_WRITERS, writers.to_string()),
            (ENV_INCREMENTS, increments.to_string()),
            (ENV_NAMES, names.to_string()),
        ];
        let (child, stdout) = Guard::spawn("writer_child", &envs);
        children.push(child);
        let progress = Arc::clone(&progress);
        let acked = Arc::new(Mutex::new(Acked::default()));
        let into = Arc::clone(&acked);
        readers.push((
            acked,
            thread::spawn(move || {
                for line in stdout.lines() {
                    let line = line.expect("a writer's stdout");
                    let Some(words) = tagged(&line) else { continue };
                    let words: Vec<&str> = words.split_whitespace().collect();
                    let mut acked = into.lock().unwrap();
                    match words[..] {
                        ["inc", counter, value] => {
                            acked.increments.push((counter.parse().unwrap(), value.parse().unwrap()));
                            progress.fetch_add(1, Ordering::Relaxed);
                        }
                        ["claim", name] => acked.claims.push(name.parse().unwrap()),
                        ["done"] => acked.done = true,
                        _ => panic!("a writer reported {line:?}"),
                    }
                }
            }),
        ));
    }

    // Each kill at a random point of its share of the increments, while writers still run.
    let total = writers * increments;
    let mut kill_points = Vec::new();
    for k in 0..kills {
        let (low, high) = (total * (2 * k + 1) / (2 * kills + 1), total * (2 * k + 2) / (2 * kills + 1));
        kill_points.push(rng.random_range(low..high.max(low + 1)));
    }
    let mut killed_at = Vec::new();
    for point in kill_points {
        while progress.load(Ordering::Relaxed) < point {
            assert!(started.elapsed() < DEADLINE, "no progress to {point} increments: stuck");
            // Every report read to its end and still short: the writers failed.
            let reports_ended = readers.iter().all(|(_, reader)| reader.is_finished());
            assert!(
                !reports_ended || progress.load(Ordering::Relaxed) >= point,
                "the writers exited before {point} increments"
            );
            thread::sleep(Duration::from_millis(2));
        }
        let running = children.iter_mut().map(|c| c.child.try_wait()).filter(|s| matches!(s, Ok(None))).count();
        let at = progress.load(Ordering::Relaxed);
        server.kill();
        let down = Instant::now();
        server = start_server(dir.path(), port);
        eprintln!(
            "conditions_processes: SIGKILLed the server after {at} increments, {running} writers running; serving again in {:.0?}",
            down.elapsed()
        );
        killed_at.push((at, running));
    }

    // Every writer finishes, successfully.
    for (id, child) in children.iter_mut().enumerate() {
        let status = loop {
            if let Some(status) = child.child.try_wait().expect("wait for a writer") {
                break status;
            }
            assert!(started.elapsed() < DEADLINE, "writer {id} still running after {DEADLINE:?}");
            thread::sleep(Duration::from_millis(10));
        };
        assert!(status.success(), "writer {id} failed: {status}");
    }
    let mut returned: Vec<Vec<i64>> = vec![Vec::new(); COUNTERS as usize];
    let mut owners: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for (id, (acked, reader)) in readers.into_iter().enumerate() {
        reader.join().expect("a writer's report is readable");
        let acked = acked.lock().unwrap();
        assert!(acked.done, "writer {id} did not report the end");
        assert_eq!(acked.increments.len() as u64, increments, "writer {id}: increments acknowledged");
        for &(counter, value) in &acked.increments {
            returned[counter as usize].push(value);
        }
        for &name in &acked.claims {
            owners.entry(name).or_default().push(id as u64);
        }
    }

    // The final state, read directly from the (restarted) server.
    let direct = multilevel_blocking::Client::tcp(server_addr, ClientOptions::default());
    for (counter, mut values) in returned.into_iter().enumerate() {
        let stored = direct.get(format!("counter/{counter}")).unwrap();
        assert_eq!(stored, Some(Bytes::from(values.len().to_string())), "counter {counter}: acknowledged increments");
        values.sort_unstable();
        let want: Vec<i64> = (1..=values.len() as i64).collect();
        assert_eq!(values, want, "counter {counter}: every increment returned its own value once");
    }
    for name in 0..names {
        let stored = direct.get(format!("name/{name}")).unwrap();
        let owners = owners.get(&name).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(owners.len(), 1, "name {name} claimed by writers {owners:?} (stored {stored:?})");
        assert_eq!(stored, Some(Bytes::from(format!("writer {}", owners[0]))), "name {name}");
    }
    let claimed: usize = owners.values().map(Vec::len).sum();
    assert_eq!(claimed as u64, names, "every name claimed once");
    direct.close();
    server.kill();

    let cuts = proxy.cuts();
    assert_eq!(killed_at.len() as u64, kills, "the server was killed {kills} times");
    for &(at, running) in &killed_at {
        assert!(running > 0 && at < total, "a kill after {at} of {total} increments came after the writers");
    }
    assert!(cuts > 0, "the proxy cut no connection");
    eprintln!(
        "conditions_processes: {writers} writer processes, {total} increments on {COUNTERS} counters and {names} names \
         claimed once each; {} SIGKILLs of the server (after {:?} increments), {cuts} connections cut; {:.1?}",
        killed_at.len(),
        killed_at.iter().map(|k| k.0).collect::<Vec<_>>(),
        started.elapsed()
    );
}
