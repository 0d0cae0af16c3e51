//! `multilevel bench --etcd`: the workloads on an etcd cluster, through a `multilevel serve
//! --etcd` child, each next to raw `etcd-client` calls of the same shape in the same run, so
//! the ratio is what the multilevel hop (client, protocol, server, backend) costs on top of
//! etcd itself.
//!
//! Both sides write under their own prefix (a namespace for the server, a key prefix for the
//! raw calls, unique to the run) and remove it at the end. The raw side uses one
//! `etcd-client` connection, as the server's backend does; its clients are tasks sharing it.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_client::{GetOptions, Txn, TxnOp};
use futures_util::StreamExt;
use multilevel_proto::{BatchOp, ClientOptions, IterOptions, KeyRange};
use multilevel_tokio::Client;

use super::anchors::{ChildGuard, start_tcp_server};
use super::report::{Figure, Latencies, latencies, percentiles, record};
use super::{BenchConfig, Report, key};

/// Entries per batch: etcd allows 128 operations per transaction, one of them the session
/// record a retrying client's write also carries.
const BATCH: u64 = 100;

fn io_err(err: impl std::fmt::Display) -> io::Error {
    io::Error::other(err.to_string())
}

fn per_sec(ops: u64, elapsed: Duration) -> f64 {
    ops as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// Runs `lanes` concurrent loops over `0..ops` (lane `l` does `l`, `l + lanes`...), timing
/// each call of `call`; returns the elapsed time and the latencies.
async fn lanes<F, Fut>(lanes: usize, ops: u64, call: F) -> io::Result<(Duration, Latencies)>
where
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = io::Result<()>> + Send,
{
    let all = Arc::new(Mutex::new(latencies()));
    let start = Instant::now();
    let tasks: Vec<_> = (0..lanes as u64)
        .map(|lane| {
            let (call, all) = (call.clone(), Arc::clone(&all));
            tokio::spawn(async move {
                let mut mine = latencies();
                let mut i = lane;
                while i < ops {
                    let t = Instant::now();
                    call(i).await?;
                    record(&mut mine, t.elapsed());
                    i += lanes as u64;
                }
                all.lock().unwrap_or_else(PoisonError::into_inner).add(mine).map_err(io_err)
            })
        })
        .collect();
    for task in tasks {
        task.await.map_err(io_err)??;
    }
    let elapsed = start.elapsed();
    let all = std::mem::replace(&mut *all.lock().unwrap_or_else(PoisonError::into_inner), latencies());
    Ok((elapsed, all))
}

/// A figure of ours next to the raw one: throughput ratio and both latencies.
fn compare(name: &str, ours: (Duration, Latencies), raw_name: &str, raw: (Duration, Latencies)) -> Figure {
    let raw_rate = per_sec(raw.1.len(), raw.0);
    Figure {
        name: format!("etcd: {name}"),
        per_sec: per_sec(ours.1.len(), ours.0),
        latency_us: percentiles(&ours.1),
        anchor: Some((format!("raw etcd-client {raw_name}"), raw_rate)),
        ..Figure::default()
    }
}

/// Starts `exe serve --etcd ENDPOINTS --namespace NAMESPACE --listen 127.0.0.1:0`.
fn start_server(config: &BenchConfig, endpoints: &[String], namespace: &str) -> io::Result<(ChildGuard, SocketAddr)> {
    let mut command = std::process::Command::new(&config.server_exe);
    command.args(["serve", "--etcd", &endpoints.join(","), "--namespace", namespace, "--listen", "127.0.0.1:0"]);
    start_tcp_server(command)
}

async fn connect(addr: SocketAddr) -> io::Result<Client> {
    let client = Client::tcp(addr, ClientOptions::default());
    if !client.connected().await {
        return Err(io::Error::other("the bench server closed"));
    }
    Ok(client)
}

/// Runs the etcd workloads against the cluster at `endpoints`.
pub async fn run_etcd(config: &BenchConfig, endpoints: &[String]) -> io::Result<Report> {
    let tag = format!("multilevel-bench-{}-{:08x}", std::process::id(), rand::random::<u32>());
    let raw_prefix = format!("{tag}-raw/");
    let etcd = etcd_client::Client::connect(endpoints, None)
        .await
        .map_err(|err| io::Error::other(format!("cannot connect to etcd at {}: {err}", endpoints.join(","))))?;
    let mut report = Report::new(super::anchors::placement());
    let result = workloads(config, endpoints, &tag, &raw_prefix, &etcd, &mut report).await;
    // Remove what both sides wrote, whatever happened.
    let mut cleanup = etcd.clone();
    for prefix in [raw_prefix.into_bytes(), tag.into_bytes()] {
        let _ = cleanup.delete(prefix, Some(etcd_client::DeleteOptions::new().with_prefix())).await;
    }
    result.map(|()| report)
}

async fn workloads(
    config: &BenchConfig,
    endpoints: &[String],
    namespace: &str,
    raw_prefix: &str,
    etcd: &etcd_client::Client,
    report: &mut Report,
) -> io::Result<()> {
    let value = Bytes::from(vec![b'v'; config.value_size]);
    let keys = config.keys.min(20_000);
    let sequential = config.ops.min(2_000);
    let raw_key = {
        let prefix = raw_prefix.as_bytes().to_vec();
        move |i: u64| [prefix.as_slice(), &key(i)].concat()
    };
    let (_server, addr) = start_server(config, endpoints, namespace)?;
    let one = connect(addr).await?;
    let many: Vec<Client> = futures_util::future::try_join_all((0..config.clients).map(|_| connect(addr))).await?;

    // The data set, in batches of 100 puts: one etcd transaction each.
    let batches = keys.div_ceil(BATCH);
    let (db, v) = (one.clone(), value.clone());
    let ours = lanes(1, batches, move |b| {
        let (db, v) = (db.clone(), v.clone());
        async move {
            let ops = (b * BATCH..((b + 1) * BATCH).min(keys))
                .map(|i| BatchOp::Put { key: key(i).into(), value: v.clone() })
                .collect();
            db.batch(ops).await.map_err(io_err)
        }
    })
    .await?;
    let (raw, rk, v) = (etcd.clone(), raw_key.clone(), value.clone());
    let theirs = lanes(1, batches, move |b| {
        let (mut raw, rk, v) = (raw.clone(), rk.clone(), v.clone());
        async move {
            let ops: Vec<TxnOp> =
                (b * BATCH..((b + 1) * BATCH).min(keys)).map(|i| TxnOp::put(rk(i), v.to_vec(), None)).collect();
            raw.txn(Txn::new().and_then(ops)).await.map(drop).map_err(io_err)
        }
    })
    .await?;
    report.figures.push(compare("batches of 100 puts (batches/s)", ours, "txn of 100 puts", theirs));

    // Sequential gets and puts, one in flight.
    let db = one.clone();
    let ours = lanes(1, sequential, move |i| {
        let db = db.clone();
        async move { db.get(key(i % keys)).await.map(drop).map_err(io_err) }
    })
    .await?;
    let (raw, rk) = (etcd.clone(), raw_key.clone());
    let theirs = lanes(1, sequential, move |i| {
        let (mut raw, rk) = (raw.clone(), rk.clone());
        async move { raw.get(rk(i % keys), None).await.map(drop).map_err(io_err) }
    })
    .await?;
    report.figures.push(compare("sequential get, 1 in flight", ours, "get", theirs));

    let (db, v) = (one.clone(), value.clone());
    let ours = lanes(1, sequential, move |i| {
        let (db, v) = (db.clone(), v.clone());
        async move { db.put(key(keys + i), v).await.map_err(io_err) }
    })
    .await?;
    let (raw, rk, v) = (etcd.clone(), raw_key.clone(), value.clone());
    let theirs = lanes(1, sequential, move |i| {
        let (mut raw, rk, v) = (raw.clone(), rk.clone(), v.clone());
        async move { raw.put(rk(keys + i), v.to_vec(), None).await.map(drop).map_err(io_err) }
    })
    .await?;
    report.figures.push(compare("sequential put, 1 in flight", ours, "put", theirs));

    // Many clients, one put in flight each; and gets pipelined. The raw side: as many tasks on
    // one etcd-client connection.
    let clients = many.len();
    let (dbs, v) = (Arc::new(many.clone()), value.clone());
    let ours = lanes(clients, config.ops.min(10_000), move |i| {
        let (db, v) = (dbs[i as usize % clients].clone(), v.clone());
        async move { db.put(key(2 * keys + i), v).await.map_err(io_err) }
    })
    .await?;
    let (raw, rk, v) = (etcd.clone(), raw_key.clone(), value.clone());
    let theirs = lanes(clients, config.ops.min(10_000), move |i| {
        let (mut raw, rk, v) = (raw.clone(), rk.clone(), v.clone());
        async move { raw.put(rk(2 * keys + i), v.to_vec(), None).await.map(drop).map_err(io_err) }
    })
    .await?;
    report.figures.push(compare(
        &format!("{clients} clients, 1 put in flight each"),
        ours,
        "put, as many tasks",
        theirs,
    ));

    let in_flight = clients * config.depth;
    let dbs = Arc::new(many.clone());
    let ours = lanes(in_flight, config.ops, move |i| {
        let db = dbs[i as usize % clients].clone();
        async move { db.get(key(i % keys)).await.map(drop).map_err(io_err) }
    })
    .await?;
    let (raw, rk) = (etcd.clone(), raw_key.clone());
    let theirs = lanes(in_flight, config.ops, move |i| {
        let (mut raw, rk) = (raw.clone(), rk.clone());
        async move { raw.get(rk(i % keys), None).await.map(drop).map_err(io_err) }
    })
    .await?;
    report.figures.push(compare(
        &format!("pipelined get, {clients} clients x {}", config.depth),
        ours,
        "get, as many tasks",
        theirs,
    ));

    // A range scan of the data set: our iterator against ranges of 1000 at one revision.
    let start = Instant::now();
    let range = KeyRange::all().gte(key(0)).lt(key(keys));
    let mut it = one.iter(IterOptions { range, ..IterOptions::default() }).map_err(io_err)?;
    let mut ours_entries = 0u64;
    while let Some(entry) = it.next().await {
        entry.map_err(io_err)?;
        ours_entries += 1;
    }
    let ours_elapsed = start.elapsed();
    let start = Instant::now();
    let mut raw = etcd.clone();
    let (mut from, end, mut revision, mut raw_entries) = (raw_key(0), raw_key(keys), 0i64, 0u64);
    loop {
        let mut options = GetOptions::new().with_range(end.clone()).with_limit(1000);
        if revision > 0 {
            options = options.with_revision(revision);
        }
        let answer = raw.get(from.clone(), Some(options)).await.map_err(io_err)?;
        if revision == 0 {
            revision = answer.header().map_or(0, |h| h.revision());
        }
        raw_entries += answer.kvs().len() as u64;
        match answer.kvs().last() {
            Some(last) if answer.more() => from = [last.key(), b"\0"].concat(),
            _ => break,
        }
    }
    let raw_elapsed = start.elapsed();
    if ours_entries != raw_entries || ours_entries != keys {
        return Err(io::Error::other(format!(
            "the scans disagree: {ours_entries} entries through multilevel, {raw_entries} raw, {keys} written"
        )));
    }
    report.figures.push(Figure {
        name: "etcd: range iteration (entries/s)".into(),
        per_sec: per_sec(ours_entries, ours_elapsed),
        anchor: Some(("raw etcd-client ranges of 1000".into(), per_sec(raw_entries, raw_elapsed))),
        ..Figure::default()
    });
    Ok(())
}
