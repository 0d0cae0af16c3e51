//! A profiling load: a server on a fresh LMDB database (no-sync) and its clients in one
//! process, on one tokio worker thread, over loopback TCP. It runs one workload and prints its
//! rate, so `perf record` or `valgrind --tool=callgrind` see only that workload's path.
//!
//! `cargo run --release -p multilevel-tokio --example pipelined_load -- get 300000`
//!
//! Workloads: `get` and `put` (50 clients x 64 requests in flight, each driven from one task as
//! `multilevel bench` does), `put1` (50 clients x 1 put in flight), `seq` (one get at a time), `scan` (whole scans of the 100,000 entries, one iterator at a time, until the count is read).
//! Keys are 16 bytes, values 100 bytes. A third argument, an address (`HOST:PORT` or `unix:PATH`),
//! drives that server instead of one in this process (e.g. `multilevel serve` under `perf record`).

use std::time::Instant;

use futures_util::StreamExt;
use multilevel_proto::{ClientOptions, IterOptions};
use multilevel_store::{Store, StoreOptions};
use multilevel_tokio::{Client, Server};

const CLIENTS: u64 = 50;
const DEPTH: u64 = 64;
const KEYS: u64 = 100_000;

fn key(i: u64) -> Vec<u8> {
    format!("key{i:013}").into_bytes()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let workload = args.next().unwrap_or_else(|| "get".into());
    let ops: u64 = args.next().map_or(Ok(300_000), |n| n.parse())?;
    let server = args.next();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run(&workload, ops, server))
}

async fn run(workload: &str, ops: u64, server: Option<String>) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let connect = |server: &str| match server.strip_prefix("unix:") {
        Some(path) => Ok(Client::unix(path, ClientOptions::default())),
        None => server.parse::<std::net::SocketAddr>().map(|addr| Client::tcp(addr, ClientOptions::default())),
    };
    let clients = match server {
        Some(server) => (0..CLIENTS).map(|_| connect(&server)).collect::<Result<Vec<_>, _>>()?,
        None => {
            let addr = start_server(dir.path()).await?;
            (0..CLIENTS).map(|_| Client::tcp(addr, ClientOptions::default())).collect()
        }
    };
    let value = vec![b'v'; 100];
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(1000) {
        let ops =
            chunk.iter().map(|&i| multilevel_proto::BatchOp::Put { key: key(i).into(), value: value.clone().into() });
        clients[0].batch(ops.collect()).await?;
    }

    let start = Instant::now();
    let done = match workload {
        "scan" => {
            // Whole scans until at least `ops` entries are read.
            let mut n = 0;
            while n < ops {
                let mut it = clients[0].iter(IterOptions::default())?;
                while let Some(entry) = it.next().await {
                    entry?;
                    n += 1;
                }
            }
            n
        }
        "seq" => {
            // One get at a time from one client: the round trip's latency.
            for i in 0..ops {
                clients[0].get(key(i % KEYS)).await?;
            }
            ops
        }
        "get" | "put" | "put1" => {
            let put = workload != "get";
            // `put1`: one request in flight per client, as a durable server's group commit sees it.
            let depth = if workload == "put1" { 1 } else { DEPTH };
            let tasks = clients.iter().enumerate().map(|(c, client)| {
                let (client, value) = (client.clone(), value.clone());
                tokio::spawn(async move {
                    let lanes = (0..depth).map(|lane| {
                        let (client, value) = (client.clone(), value.clone());
                        async move {
                            let mut i = lane * CLIENTS + c as u64;
                            while i < ops {
                                if put {
                                    client.put(key(KEYS + i), value.clone()).await?;
                                } else {
                                    client.get(key(i % KEYS)).await?;
                                }
                                i += CLIENTS * depth;
                            }
                            Ok::<_, multilevel_tokio::Error>(())
                        }
                    });
                    futures_util::future::try_join_all(lanes).await.map(drop)
                })
            });
            for task in futures_util::future::join_all(tasks).await {
                task??;
            }
            ops
        }
        other => return Err(format!("unknown workload {other:?}: get, put or scan").into()),
    };
    let elapsed = start.elapsed();
    let mut line = format!("{workload}: {done} in {elapsed:.2?}, {:.0}/s", done as f64 / elapsed.as_secs_f64());
    for (name, value) in clients[0].stats().await? {
        if name == "writes" || name == "commits" {
            line += &format!(", {name} {value}");
        }
    }
    println!("{line}");
    Ok(())
}

/// A server on a fresh no-sync store in `dir`, on this runtime; returns its address.
async fn start_server(dir: &std::path::Path) -> Result<std::net::SocketAddr, Box<dyn std::error::Error>> {
    // A 1 GiB map (it grows if needed) so that valgrind, which refuses the default 64 GiB, can run it.
    let store = Store::open(dir, StoreOptions::default().no_sync(true).map_size(1 << 30))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = Server::new(store);
    tokio::spawn(async move { server.serve_tcp(listener).await });
    Ok(addr)
}
