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
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use multilevel_proto::ClientOptions;
use multilevel_store::{Store, StoreOptions};
use multilevel_tests::knob;
use multilevel_tests::proxy::CuttingProxy;
use rand::{RngExt, SeedableRng};

const COUNTERS: u64 = 4;
/// The children's settings.
const ENV_DIR: &str = "MULTILEVEL_PROC_CHILD_DIR";
const ENV_PORT: &str = "MULTILEVEL_PROC_CHILD_PORT";
const ENV_ADDR: &str = "MULTILEVEL_PROC_CHILD_ADDR";
const ENV_WRITER: &str = "MULTILEVEL_PROC_CHILD_WRITER";
const ENV_WRITERS: &str = "MULTILEVEL_PROC_CHILD_WRITERS";
const ENV_INCREMENTS: &str = "MULTILEVEL_PROC_CHILD_INCREMENTS";
const ENV_NAMES: &str = "MULTILEVEL_PROC_CHILD_NAMES";
/// Every line the children report starts with this, wherever the test harness puts it.
const TAG: &str = "proctest: ";
/// The whole test fails (and every child is killed) past this.
const DEADLINE: Duration = Duration::from_secs(120);

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is set by the parent test"))
}

/// A child exits once its stdin closes, so a parent that dies without dropping its guards
/// (abort, SIGKILL) leaves no orphan behind.
fn exit_when_the_parent_goes() {
    thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(3);
    });
}

/// One reported line: the tag, then the words, flushed at once.
fn report(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "\n{TAG}{line}").and_then(|()| out.flush()).expect("stdout");
}

/// The server child: serves the LMDB directory `$ENV_DIR` on `127.0.0.1:$ENV_PORT` until killed.
#[test]
#[ignore = "the server process of writer_processes_count_and_claim_exactly_once_across_cuts_and_server_kills"]
fn server_child() {
    exit_when_the_parent_goes();
    let dir = env(ENV_DIR);
    let port: u16 = env(ENV_PORT).parse().unwrap();
    let store = Store::open(&dir, StoreOptions::default()).expect("the store opens");
    // std sets SO_REUSEADDR on Unix listeners, so connections of the killed server lingering in
    // TIME_WAIT do not block the port; retry a while anyway in case the old socket is not gone.
    let started = Instant::now();
    let listener = loop {
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(listener) => break listener,
            Err(err) if started.elapsed() < Duration::from_secs(5) => {
                eprintln!("server_child: bind 127.0.0.1:{port}: {err}; retrying");
                thread::sleep(Duration::from_millis(50));
            }
            Err(err) => panic!("server_child: bind 127.0.0.1:{port}: {err}"),
        }
    };
    report(format_args!("serving {port}"));
    multilevel_blocking::Server::new(store).serve_tcp(listener).expect("serve");
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

/// A child process killed (SIGKILL) and reaped when dropped, also on a panic.
struct Guard {
    child: Child,
    /// Held open: the child exits when it closes.
    _stdin: Option<ChildStdin>,
}

impl Guard {
    fn spawn(test: &str, envs: &[(&str, String)]) -> (Self, BufReader<std::process::ChildStdout>) {
        let mut command = Command::new(std::env::current_exe().expect("the test binary"));
        command.args(["--ignored", "--exact", test, "--nocapture", "--test-threads", "1"]);
        command.envs(envs.iter().map(|(k, v)| (k, v))).stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = command.spawn().expect("the test binary runs again");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let stdin = child.stdin.take();
        (Self { child, _stdin: stdin }, stdout)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The payload of a tagged line, wherever the harness put the tag.
fn tagged(line: &str) -> Option<&str> {
    line.find(TAG).map(|at| line[at + TAG.len()..].trim())
}

/// Starts the server child and waits for its ready line.
fn start_server(dir: &Path, port: u16) -> Guard {
    let (guard, mut stdout) =
        Guard::spawn("server_child", &[(ENV_DIR, dir.display().to_string()), (ENV_PORT, port.to_string())]);
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

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().unwrap().port()
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
