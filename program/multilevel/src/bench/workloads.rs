//! The workloads, run against a server child through the tokio client, next to their anchors.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use multilevel_proto::{BatchOp, ClientOptions, IterOptions};
use multilevel_store::anchor::{Measurement, RawHeed};

use super::anchors::{Redis, cpu_time, ping_pong, start_server, tcp_stream};
use super::report::{Figure, Latencies, latencies, percentiles, record};
use super::targets::Goal;
use super::{BenchConfig, Report, key};
use multilevel_tokio::Client;

/// Whole scans of the data set in the range iteration workload.
const SCAN_PASSES: u64 = 10;

/// A client error (or any other) as an io error, as the bench returns them.
pub(super) fn io_err(err: impl std::fmt::Display) -> io::Error {
    io::Error::other(err.to_string())
}

/// `ops` over `elapsed`, per second.
pub(super) fn per_sec(ops: u64, elapsed: std::time::Duration) -> f64 {
    ops as f64 / elapsed.as_secs_f64().max(1e-9)
}

fn heed_rate(m: &Measurement) -> f64 {
    per_sec(m.ops, m.elapsed)
}

/// A tokio client of the bench server at `addr`, once connected.
pub(super) async fn connect(addr: SocketAddr) -> io::Result<Client> {
    let client = Client::tcp(addr, ClientOptions::default());
    if !client.connected().await {
        return Err(io::Error::other("the bench server closed"));
    }
    Ok(client)
}

/// Runs `clients` clients with `depth` requests in flight each, `ops` requests in all; `make`
/// builds request `i`. Returns the elapsed time and the requests' latencies.
///
/// Each client is driven by one task that keeps its `depth` requests in flight (as
/// `redis-benchmark -P` drives each connection from one event loop), rather than by `depth`
/// tasks of one request each.
pub(super) async fn load<F, Fut>(
    clients: &[Client],
    depth: usize,
    ops: u64,
    make: F,
) -> io::Result<(std::time::Duration, Latencies)>
where
    F: Fn(Client, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), multilevel_tokio::Error>> + Send,
{
    let lanes = (clients.len() * depth) as u64;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (c, client) in clients.iter().enumerate() {
        let client = client.clone();
        let make = make.clone();
        let count = clients.len() as u64;
        tasks.push(tokio::spawn(async move {
            // One histogram per client, shared by its lanes (they run on this one task).
            let client_latencies = Mutex::new(latencies());
            let lane_loops = (0..depth as u64).map(|d| {
                let (client, make, client_latencies) = (client.clone(), make.clone(), &client_latencies);
                async move {
                    let mut i = d * count + c as u64;
                    while i < ops {
                        let t = Instant::now();
                        make(client.clone(), i).await?;
                        record(&mut client_latencies.lock().unwrap_or_else(PoisonError::into_inner), t.elapsed());
                        i += lanes;
                    }
                    Ok::<_, multilevel_tokio::Error>(())
                }
            });
            for lane in futures_util::future::join_all(lane_loops).await {
                lane?;
            }
            Ok::<_, multilevel_tokio::Error>(client_latencies.into_inner().unwrap_or_else(PoisonError::into_inner))
        }));
    }
    let mut all = latencies();
    for task in tasks {
        all.add(task.await.map_err(io_err)?.map_err(io_err)?).map_err(io_err)?;
    }
    Ok((start.elapsed(), all))
}

/// A figure of `latencies.len()` requests over `elapsed`, with their latency percentiles.
pub(super) fn figure(name: &str, elapsed: std::time::Duration, latencies: Latencies) -> Figure {
    Figure {
        name: name.to_owned(),
        per_sec: per_sec(latencies.len(), elapsed),
        latency_us: percentiles(&latencies),
        ..Figure::default()
    }
}

pub(super) async fn run_all(config: &BenchConfig, dir: &Path, report: &mut Report) -> io::Result<()> {
    let value = Bytes::from(vec![b'v'; config.value_size]);
    let keys = config.keys;
    let ops = config.ops;

    // Anchors from raw heed, durable and not, in this process.
    let heed = RawHeed::open(&dir.join("heed-durable"), false).map_err(io_err)?;
    heed.fill(keys, key, &value)?;
    let heed_get = heed.gets(ops, |i| key(i % keys))?;
    let heed_put_1 = heed.puts(ops.min(2_000), 1, |i| key(keys + i), &value)?;
    let heed_put_1000 = heed.puts(ops * 2, 1000, |i| key(2 * keys + i), &value)?;
    let heed_scan = heed.scan()?;
    let redis = if config.redis { Redis::start() } else { None };
    let request_len = 1 + 1 + 1 + 17; // tag, id, key length, key
    let response_len = 1 + 1 + 1 + 1 + config.value_size;
    let echo = ping_pong(ops.min(20_000), request_len, response_len)?;
    let echo_p50 = percentiles(&echo).map(|p| p[0]);

    let (_durable, addr) = start_server(&config.server_exe, &dir.join("durable"), false)?;
    let (_nosync, nosync_addr) = start_server(&config.server_exe, &dir.join("nosync"), true)?;
    let one = vec![connect(addr).await?];
    let many: Vec<Client> = futures_util::future::try_join_all((0..config.clients).map(|_| connect(addr))).await?;
    let many_nosync: Vec<Client> =
        futures_util::future::try_join_all((0..config.clients).map(|_| connect(nosync_addr))).await?;

    // The data set, in batches of 1000: also the batch workload.
    let start = Instant::now();
    let mut batch_latencies = latencies();
    for chunk in (0..keys).collect::<Vec<_>>().chunks(1000) {
        let ops = chunk.iter().map(|i| BatchOp::Put { key: key(*i).into(), value: value.clone() }).collect();
        let t = Instant::now();
        one[0].batch(ops).await.map_err(io_err)?;
        record(&mut batch_latencies, t.elapsed());
    }
    let mut f = Figure { name: "batches of 1000 puts, durable (entries/s)".into(), ..Figure::default() };
    f.per_sec = per_sec(keys, start.elapsed());
    f.latency_us = percentiles(&batch_latencies);
    f.anchor = Some(("raw heed, 1000 puts per txn, durable".into(), heed_rate(&heed_put_1000)));
    report.figures.push(f);

    let get = |client: Client, i: u64| async move { client.get(key(i % 1_000_000)).await.map(drop) };
    let (elapsed, lat) = load(&one, 1, ops.min(20_000), move |c, i| get(c, i % keys)).await?;
    let mut f = figure("sequential get, 1 in flight", elapsed, lat);
    f.anchor_p50_us = echo_p50;
    f.goal = Some(Goal::P50Within(5.0));
    f.anchor = Some(("loopback ping-pong, same sizes (round trips/s)".into(), 1e6 / echo_p50.unwrap_or(1.0)));
    report.figures.push(f);
    let mut f = report.figures.last().cloned().unwrap_or_default();
    f.name = "sequential get vs raw heed get".into();
    f.anchor = Some(("raw heed get, 1 read txn each".into(), heed_rate(&heed_get)));
    f.anchor_p50_us = None;
    f.goal = None;
    report.figures.push(f);

    #[cfg(unix)]
    {
        let socket = dir.join("multilevel.sock");
        let _unix = super::anchors::start_unix_server(&config.server_exe, &dir.join("unix"), &socket)?;
        let client = Client::unix(&socket, ClientOptions::default());
        if !client.connected().await {
            return Err(io::Error::other("the bench Unix server closed"));
        }
        client.put(key(0), &value).await.map_err(io_err)?;
        let (elapsed, lat) = load(std::slice::from_ref(&client), 1, ops.min(20_000), move |c, _| get(c, 0)).await?;
        let echo = super::anchors::unix_ping_pong(ops.min(20_000), request_len, response_len)?;
        let echo_p50 = percentiles(&echo).map(|p| p[0]);
        let mut f = figure("sequential get over a Unix socket, 1 in flight", elapsed, lat);
        f.anchor_p50_us = echo_p50;
        f.goal = Some(Goal::P50Within(5.0));
        f.anchor = Some(("Unix ping-pong, same sizes (round trips/s)".into(), 1e6 / echo_p50.unwrap_or(1.0)));
        report.figures.push(f);
    }

    let v = value.clone();
    let put = move |client: Client, i: u64| {
        let v = v.clone();
        async move { client.put(key(10 * keys + i), v).await }
    };
    let (elapsed, lat) = load(&one, 1, ops.min(2_000), put.clone()).await?;
    let mut f = figure("sequential put, durable, 1 in flight", elapsed, lat);
    f.anchor = Some(("raw heed, 1 put per txn, durable".into(), heed_rate(&heed_put_1)));
    report.figures.push(f);

    let (elapsed, lat) = load(&many, 1, ops.min(20_000), put.clone()).await?;
    let mut f = figure(&format!("{} clients, 1 durable put in flight each", config.clients), elapsed, lat);
    f.anchor = Some(("raw heed, 1 put per txn, durable".into(), heed_rate(&heed_put_1)));
    f.goal = Some(Goal::RatioAtLeast(20.0));
    report.figures.push(f);

    let (elapsed, lat) = load(&many, 1, ops, move |c, i| get(c, i % keys)).await?;
    let mut f = figure(&format!("{} clients, 1 get in flight each", config.clients), elapsed, lat);
    if let Some(r) = &redis
        && let Some((rps, _)) = r.bench("get", ops, config.clients, 1, config.value_size, keys)
    {
        f.anchor = Some((format!("redis -c {} get", config.clients), rps));
    }
    report.figures.push(f);

    // The server's CPU time over the same load separates its cost from the client's.
    let server_pid = _durable.0.id();
    let cpu_before = cpu_time(server_pid);
    let (elapsed, lat) = load(&many, config.depth, ops * 5, move |c, i| get(c, i % keys)).await?;
    let ours_cpu = cpu_time(server_pid).zip(cpu_before).map(|(after, before)| after.saturating_sub(before));
    let mut f = figure(&format!("pipelined get, {} clients x {}", config.clients, config.depth), elapsed, lat);
    f.goal = Some(Goal::RatioAtLeast(1.0));
    let mut redis_cpu = None;
    if let Some(r) = &redis {
        let before = cpu_time(r.pid());
        if let Some((rps, _)) = r.bench("get", ops * 5, config.clients, config.depth, config.value_size, keys) {
            f.anchor = Some((format!("redis -c {} -P {} get", config.clients, config.depth), rps));
            redis_cpu = cpu_time(r.pid()).zip(before).map(|(after, before)| after.saturating_sub(before));
        }
    }
    report.figures.push(f);
    let per_get_us = |cpu: std::time::Duration| cpu.as_secs_f64() * 1e6 / (ops * 5) as f64;
    report.figures.push(Figure {
        name: "server CPU per pipelined get (µs, lower is better)".into(),
        per_sec: ours_cpu.map_or(f64::NAN, per_get_us),
        anchor: redis_cpu.map(|cpu| ("redis-server CPU per get (µs)".into(), per_get_us(cpu))),
        goal: Some(Goal::RatioAtMost(1.0)),
        ..Figure::default()
    });

    let (elapsed, lat) = load(&many_nosync, config.depth, ops * 5, put.clone()).await?;
    let mut f = figure(&format!("pipelined put, no-sync, {} clients x {}", config.clients, config.depth), elapsed, lat);
    if let Some(r) = &redis
        && let Some((rps, _)) = r.bench("set", ops * 5, config.clients, config.depth, config.value_size, keys)
    {
        f.anchor = Some((format!("redis -c {} -P {} set", config.clients, config.depth), rps));
    }
    f.goal = Some(Goal::RatioAtLeast(1.0));
    report.figures.push(f);
    let (elapsed, lat) = load(&many, config.depth, ops * 2, put.clone()).await?;
    let mut f = figure(&format!("pipelined put, durable, {} clients x {}", config.clients, config.depth), elapsed, lat);
    f.anchor = Some(("raw heed, 1000 puts per txn, durable".into(), heed_rate(&heed_put_1000)));
    f.goal = Some(Goal::RatioAtLeast(0.6));
    report.figures.push(f);

    let v = value.clone();
    let mixed = move |client: Client, i: u64| {
        let v = v.clone();
        async move {
            if i.is_multiple_of(5) {
                client.put(key(20 * keys + i), v).await
            } else {
                client.get(key(i % keys)).await.map(drop)
            }
        }
    };
    let (elapsed, lat) = load(&many, 1, ops, mixed).await?;
    report.figures.push(figure(&format!("mixed 80% get / 20% durable put, {} clients", config.clients), elapsed, lat));

    // Memory per idle connection, read off the durable server's RSS.
    let server_pid = _durable.0.id();
    let before = super::anchors::rss_kib(server_pid).unwrap_or(0);
    let idle_count = (config.clients * 20).max(100);
    let idle: Vec<Client> = futures_util::future::try_join_all((0..idle_count).map(|_| connect(addr))).await?;
    let after = super::anchors::rss_kib(server_pid).unwrap_or(0);
    let per_connection_kib = after.saturating_sub(before) as f64 / idle_count as f64;
    report.figures.push(Figure {
        name: format!("server RSS per idle connection, KiB ({idle_count} connections)"),
        per_sec: per_connection_kib,
        anchor: Some(("target: under 64 KiB".into(), 64.0)),
        ..Figure::default()
    });
    drop(idle);
    // Let the server finish closing the idle connections before timing the scan: on one CPU
    // their goodbyes would otherwise be served in the middle of it.
    let open = 1 + config.clients;
    for _ in 0..500 {
        let stats = one[0].stats().await.map_err(io_err)?;
        if stats.iter().any(|(name, n)| name == "connections" && *n <= open as u64) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    // Ten whole scans of the data set, one iterator after the other: a single pass of 100,000
    // entries lasts about 20 ms, mostly the first batches' ramp-up.
    let scan_range = multilevel_proto::KeyRange::all().gte(key(0)).lt(key(keys));
    let start = Instant::now();
    let (mut entries, mut bytes) = (0u64, 0u64);
    for _ in 0..SCAN_PASSES {
        let options = IterOptions { range: scan_range.clone(), ..IterOptions::default() };
        let mut it = one[0].iter(options).map_err(io_err)?;
        while let Some(entry) = it.next().await {
            let entry = entry.map_err(io_err)?;
            entries += 1;
            bytes += (entry.key.len() + entry.value.len()) as u64;
        }
    }
    let elapsed = start.elapsed();
    let mut f =
        Figure { name: format!("range iteration over TCP, {SCAN_PASSES} passes (entries/s)"), ..Figure::default() };
    f.per_sec = per_sec(entries, elapsed);
    f.mb_per_sec = Some(bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9));
    let heed_entries = heed_scan.ops.min(keys);
    f.anchor = Some((format!("raw heed scan ({heed_entries}+ entries)"), heed_rate(&heed_scan)));
    f.goal = Some(Goal::AtLeast(8e6));
    let scan_mb = f.mb_per_sec.unwrap_or(0.0);
    report.figures.push(f);
    // As many bytes as the scans read, at least 64 MB: long enough to time, short in quick runs.
    let stream_mb = tcp_stream(bytes.max(64 << 20))?;
    report.figures.push(Figure {
        name: "range iteration bandwidth (MB/s)".into(),
        per_sec: scan_mb,
        anchor: Some(("one loopback TCP stream, 64 KiB writes (MB/s)".into(), stream_mb)),
        goal: Some(Goal::RatioAtLeast(0.5)),
        ..Figure::default()
    });
    Ok(())
}
