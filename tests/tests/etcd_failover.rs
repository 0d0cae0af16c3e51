//! No single point of failure: two multilevel servers on one real 3-member etcd cluster,
//! retrying clients given both addresses. While writers (one-key clears, which are not
//! idempotent, and batches) and iterators (forward, reverse, limited) run, the etcd leader is
//! SIGKILLed, then one multilevel server stops, then the killed member restarts and rejoins.
//! Afterwards every acknowledged write is there, none applied twice, and every iteration was
//! exact. `MULTILEVEL_ETCD_FAILOVER_SECS` sets the length of each phase (default 2).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use multilevel_etcd::testing::EtcdCluster;
use multilevel_etcd::{EtcdBackend, EtcdOptions};
use multilevel_proto::{BatchOp, ClientOptions, IterOptions, KeyRange};
use multilevel_tests::adapters::{Adapter, AnyClient, BackendServer, runtime};
use multilevel_tests::knob;

const TOKENS: u64 = 3000;
const FIXED: u32 = 600;

fn client(addrs: &[std::net::SocketAddr]) -> AnyClient {
    let _guard = runtime().enter();
    AnyClient::Tokio(multilevel_tokio::Client::tcp_any(addrs.to_vec(), ClientOptions::default().retry(true)))
}

fn fixed(i: u32) -> Bytes {
    Bytes::from(format!("fixed/{i:04}"))
}

/// The longest a single operation of any worker took: how long clients were stalled.
#[derive(Default)]
struct Stall(AtomicU64);

impl Stall {
    fn time<T>(&self, op: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = op();
        self.0.fetch_max(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        out
    }

    fn take(&self) -> u64 {
        self.0.swap(0, Ordering::Relaxed)
    }
}

#[test]
fn clients_lose_nothing_while_etcd_members_and_servers_fail() {
    let Some(mut cluster) = EtcdCluster::start() else { return };
    let phase = Duration::from_secs(knob("MULTILEVEL_ETCD_FAILOVER_SECS", 2));
    let backend = || EtcdBackend::connect(&cluster.endpoints(), EtcdOptions::default()).expect("the cluster");
    let first = BackendServer::start(Adapter::Tokio, backend());
    let second = BackendServer::start(Adapter::Tokio, backend());
    let addrs = [first.addr, second.addr];
    let mut first = Some(first);

    let setup = client(&addrs);
    for chunk in (0..TOKENS).collect::<Vec<_>>().chunks(100) {
        let ops = chunk.iter().map(|i| BatchOp::Put { key: format!("token/{i:04}").into(), value: Bytes::new() });
        setup.batch(ops.collect()).unwrap();
    }
    for chunk in (0..FIXED).collect::<Vec<_>>().chunks(100) {
        setup.batch(chunk.iter().map(|&i| BatchOp::Put { key: fixed(i), value: Bytes::from("v") }).collect()).unwrap();
    }

    let stop = Arc::new(AtomicBool::new(false));
    let stall = Arc::new(Stall::default());
    let clears = Arc::new(AtomicU64::new(0));
    let batches = Arc::new(AtomicU64::new(0));
    let entries = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    {
        let (db, stop, stall, clears) = (client(&addrs), stop.clone(), stall.clone(), clears.clone());
        workers.push(std::thread::spawn(move || {
            let range = KeyRange::all().gte("token/").lt("token0");
            while !stop.load(Ordering::Relaxed) && clears.load(Ordering::Relaxed) < TOKENS {
                stall.time(|| db.clear_with(range.clone(), false, Some(1))).expect("a one-key clear");
                clears.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    {
        let (db, stop, stall, batches) = (client(&addrs), stop.clone(), stall.clone(), batches.clone());
        workers.push(std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let ops = vec![
                    BatchOp::Put { key: format!("w/{i:06}/a").into(), value: Bytes::from("x") },
                    BatchOp::Put { key: format!("w/{i:06}/b").into(), value: Bytes::from("y") },
                ];
                stall.time(|| db.batch(ops)).expect("a batch");
                batches.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    for shape in 0..3 {
        let (db, stop, stall, entries) = (client(&addrs), stop.clone(), stall.clone(), entries.clone());
        workers.push(std::thread::spawn(move || {
            let all: Vec<Bytes> = (0..FIXED).map(fixed).collect();
            let range = KeyRange::all().gte("fixed/").lt("fixed0");
            let (options, want) = match shape {
                0 => (IterOptions { range, ..IterOptions::default() }, all),
                1 => (IterOptions { range, reverse: true, ..IterOptions::default() }, all.into_iter().rev().collect()),
                _ => (IterOptions { range, reverse: true, limit: Some(250), ..IterOptions::default() }, {
                    all.into_iter().rev().take(250).collect()
                }),
            };
            let mut rounds = 0;
            while !stop.load(Ordering::Relaxed) {
                let got = stall.time(|| db.scan(options.clone(), None)).expect("an iteration");
                let keys: Vec<Bytes> = got.into_iter().map(|e| e.key).collect();
                assert!(keys == want, "iteration {rounds} of shape {shape} is not exact");
                entries.fetch_add(keys.len() as u64, Ordering::Relaxed);
                rounds += 1;
            }
        }));
    }

    std::thread::sleep(phase);
    stall.take();
    let leader = cluster.leader().expect("a leader");
    cluster.kill(leader);
    std::thread::sleep(phase);
    let leader_stall = stall.take();
    drop(first.take()); // one multilevel server goes away
    std::thread::sleep(phase);
    let server_stall = stall.take();
    cluster.restart(leader);
    std::thread::sleep(phase);
    let rejoin_stall = stall.take();
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().expect("a worker failed");
    }

    let check = client(&[second.addr]);
    let tokens =
        check.scan(IterOptions { range: KeyRange::all().gte("token/").lt("token0"), ..Default::default() }, None);
    let cleared = clears.load(Ordering::Relaxed);
    assert_eq!(tokens.unwrap().len() as u64, TOKENS - cleared, "each acknowledged one-key clear removed one token");
    let written = check.scan(IterOptions { range: KeyRange::all().gte("w/").lt("w0"), ..Default::default() }, None);
    let batched = batches.load(Ordering::Relaxed);
    assert_eq!(written.unwrap().len() as u64, 2 * batched, "every acknowledged batch is there, whole");
    println!(
        "etcd failover: {cleared} one-key clears and {batched} batches acknowledged and checked, {} entries \
         iterated exactly; longest stall: {leader_stall} ms after the leader SIGKILL, {server_stall} ms after a \
         server stopped, {rejoin_stall} ms while the member rejoined",
        entries.load(Ordering::Relaxed)
    );
}
