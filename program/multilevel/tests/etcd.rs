//! `multilevel serve --etcd`: server processes on one real 3-member etcd cluster (started by
//! the test on loopback), client commands through them with `--addr a,b` failover, and a
//! server SIGKILLed under a running import and under a running scan: the commands carry on
//! through the other server, every entry comes out once, and no write is applied twice (each
//! key's etcd version counts its writes). Then the etcd leader is SIGKILLed: writes go on.
//!
//! Needs the `etcd` feature (`cargo test -p multilevel --features etcd`) and an `etcd` binary;
//! without one it prints a notice and passes, unless `CI` is set.

#![cfg(feature = "etcd")]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use multilevel_etcd::testing::EtcdCluster;
use support::{DEADLINE, ServerProcess, finish, jsonl, program, run};

mod support;

/// The namespace the servers share in the cluster.
const NAMESPACE: &str = "clitest";

/// Starts `multilevel serve --etcd ENDPOINTS --namespace clitest --listen 127.0.0.1:0` plus
/// `extra`.
fn serve_etcd(endpoints: &str, extra: &[&str]) -> ServerProcess {
    let mut command = program();
    command.args(["serve", "--etcd", endpoints, "--namespace", NAMESPACE, "--listen", "127.0.0.1:0"]).args(extra);
    ServerProcess::start(command, &format!("multilevel: serving etcd {endpoints} (namespace {NAMESPACE}) on "))
}

/// Runs a client command against `addrs` (comma-separated) with `stdin`.
fn client(addrs: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut command = program();
    command.args(args).args(["--addr", addrs, "--timeout", "30s"]);
    run(command, stdin)
}

/// The stdout of a client command that must succeed.
fn ok(addrs: &str, args: &[&str]) -> String {
    let output = client(addrs, args, None);
    assert!(output.status.success(), "{args:?} via {addrs}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// Every user key of the namespace in etcd with its etcd version (how many times it was
/// written since created), read straight from the cluster.
fn versions(endpoints: &[String]) -> Vec<(Vec<u8>, i64)> {
    let endpoints = endpoints.to_vec();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let mut etcd = etcd_client::Client::connect(endpoints, None).await.unwrap();
        let mut prefix = NAMESPACE.as_bytes().to_vec();
        prefix.push(0); // user keys: namespace 0x00 key
        let options = etcd_client::GetOptions::new().with_prefix();
        let answer = etcd.get(prefix.clone(), Some(options)).await.unwrap();
        answer.kvs().iter().map(|kv| (kv.key()[prefix.len()..].to_vec(), kv.version())).collect()
    })
}

#[test]
fn two_servers_on_one_cluster_with_failover() {
    let Some(mut cluster) = EtcdCluster::start() else { return };
    let endpoints = cluster.endpoints();
    let joined = endpoints.join(",");
    let mut a = serve_etcd(&joined, &[]);
    let mut b = serve_etcd(&joined, &[]);
    let c = serve_etcd(&joined, &[]);
    let both = format!("{},{}", a.addr, b.addr);

    // One database through either server.
    ok(&a.addr, &["put", "greeting", "hello"]);
    assert_eq!(ok(&b.addr, &["get", "greeting"]), "hello");
    ok(&both, &["put", "--sublevel", "users", "ada", "admin"]);
    assert_eq!(ok(&c.addr, &["get", "!users!ada"]), "admin");
    assert_eq!(ok(&format!("{},{}", c.addr, a.addr), &["scan", "--sublevel", "users"]), "ada\tadmin\n");
    ok(&both, &["clear", "--all"]);

    // A read-only server on the same cluster refuses writes and serves reads.
    let readonly = serve_etcd(&joined, &["--readonly"]);
    ok(&both, &["put", "k", "v"]);
    assert_eq!(ok(&readonly.addr, &["get", "k"]), "v");
    let refused = client(&readonly.addr, &["put", "k", "x"], None);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr),
        "multilevel: write refused: the database is served read-only\n"
    );
    drop(readonly);
    ok(&both, &["del", "k"]);

    // An import through a,b, with a SIGKILLed while its batches are in flight. Every key is
    // written twice (round 1, then round 2), so each must end at round 2 with etcd version 2:
    // a batch applied twice would show as version 3.
    const KEYS: usize = 3000;
    let key = |i: usize| format!("k{i:05}");
    let round = |r: usize| jsonl((0..KEYS).map(|i| (key(i), format!("round-{r}-{i}"))));
    let mut import = program()
        .args(["import", "--batch-size", "50", "--addr", &both, "--timeout", "30s"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = import.stdin.take().unwrap();
    input.write_all(round(1).as_bytes()).unwrap();
    input.flush().unwrap();
    // Once the import has begun writing (through a), kill a.
    let start = Instant::now();
    while client(&b.addr, &["get", &key(0)], None).stdout != b"round-1-0" {
        assert!(start.elapsed() < DEADLINE, "the import never wrote through a");
        thread::sleep(Duration::from_millis(5));
    }
    a.kill();
    let killed_at = Instant::now();
    let last = client(&b.addr, &["get", &key(KEYS - 1)], None).stdout;
    eprintln!(
        "when a was killed, the last key of round 1 was {}",
        if last.is_empty() { "not yet written" } else { "written" }
    );
    input.write_all(round(2).as_bytes()).unwrap();
    drop(input);
    let imported = finish(import);
    assert!(imported.status.success(), "the import failed: {}", String::from_utf8_lossy(&imported.stderr));
    assert_eq!(String::from_utf8_lossy(&imported.stderr), format!("imported {} entries\n", 2 * KEYS));
    eprintln!("import of {} entries finished {:?} after a was killed", 2 * KEYS, killed_at.elapsed());
    let expected: String = (0..KEYS).map(|i| format!("{}\tround-2-{i}\n", key(i))).collect();
    assert_eq!(ok(&both, &["scan", "--prefix", "k"]), expected, "every key at its last value");
    let versions = versions(&endpoints);
    assert_eq!(versions.len(), KEYS);
    let twice: Vec<_> = versions.iter().filter(|(_, version)| *version != 2).collect();
    assert!(twice.is_empty(), "keys not written exactly twice: {:?}", &twice[..twice.len().min(5)]);

    // A put loop keeps working with a dead: each command connects to b.
    for i in 0..20 {
        ok(&both, &["put", &format!("loop/{i:02}"), &i.to_string()]);
    }
    assert_eq!(ok(&b.addr, &["count", "--prefix", "loop/"]), "20\n");

    // A scan through b,c, with b SIGKILLed while the scan waits for its reader: it resumes on
    // c exactly after the last entry it had, every entry once, in order. A key written after
    // the scan began, past where it stands, shows that the rest came from a new iterator on c.
    let value = "v".repeat(200);
    let big = jsonl((0..20_000).map(|i| (format!("s{i:06}"), value.clone())));
    let imported = client(&c.addr, &["import", "--batch-size", "100"], Some(big.as_bytes()));
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
    let mut scan = program()
        .args(["scan", "--prefix", "s", "--addr", &format!("{},{}", b.addr, c.addr), "--timeout", "30s"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(scan.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert_eq!(first, format!("s000000\t{value}\n"));
    ok(&c.addr, &["put", "s999999", "late"]);
    thread::sleep(Duration::from_millis(300)); // the scan fills the pipe and waits
    b.kill();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let scanned = finish(scan);
    assert!(scanned.status.success(), "the scan failed: {}", String::from_utf8_lossy(&scanned.stderr));
    let mut expected: String = (0..20_000).map(|i| format!("s{i:06}\t{value}\n")).collect();
    expected.push_str("s999999\tlate\n");
    let got = first + &rest;
    assert!(got.ends_with("s999999\tlate\n"), "the scan did not continue on c after b was killed");
    assert_eq!(got.lines().count(), 20_001, "entries scanned");
    assert!(got == expected, "the scan skipped or repeated an entry");

    // The etcd leader SIGKILLed: the next write waits for a new leader and succeeds. With
    // several addresses the command carries a session, so the server may retry its write when
    // etcd's answer is lost with the leader (a one-shot command with one address has none: its
    // write then fails, saying it may or may not have been applied).
    let leader = cluster.leader().expect("the cluster has a leader");
    cluster.kill(leader);
    let start = Instant::now();
    ok(&format!("{},{}", c.addr, b.addr), &["put", "after-leader", "x"]);
    eprintln!("a put with the etcd leader killed took {:?}", start.elapsed());
    assert_eq!(ok(&c.addr, &["get", "after-leader"]), "x");

    // SIGTERM: a graceful stop, status 0.
    let mut c = c;
    let status = c.terminate();
    assert!(status.success(), "serve --etcd exited with {status} after SIGTERM");
}

#[test]
fn bench_on_etcd_compares_with_raw_calls() {
    let Some(cluster) = EtcdCluster::start() else { return };
    let endpoints = cluster.endpoints();
    let mut child = program()
        .args(["bench", "--quick", "--json", "--etcd", &endpoints.join(",")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take();
    let output = finish(child);
    assert!(output.status.success(), "bench --etcd failed: {}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let figures = report["figures"].as_array().unwrap();
    assert!(figures.len() >= 6, "{report}");
    for figure in figures {
        assert!(figure["workload"].as_str().unwrap().starts_with("etcd: "), "{figure}");
        assert!(figure["anchor"].as_str().unwrap().starts_with("raw etcd-client "), "{figure}");
        for field in ["per_sec", "anchor_value", "ratio"] {
            assert!(figure[field].as_f64().is_some_and(|v| v > 0.0), "{field} in {figure}");
        }
        eprintln!("{}: {:.2}x", figure["workload"], figure["ratio"].as_f64().unwrap());
    }
    // Both sides' keys are gone.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let left = runtime.block_on(async {
        let mut etcd = etcd_client::Client::connect(endpoints, None).await.unwrap();
        let options = etcd_client::GetOptions::new().with_prefix().with_count_only();
        etcd.get("multilevel-bench-", Some(options)).await.unwrap().count()
    });
    assert_eq!(left, 0, "the bench left keys behind");
}
