//! The watch workloads (issue 14): how long after a put's acknowledgement a watcher of its key
//! sees the event, and what watchers of the written range cost pipelined writers.
//!
//! Both run against their own `serve --no-sync` child, like the no-sync put workloads: with
//! durable commits a sequential put waits for an fsync, which says nothing about watches. The
//! writers and the watchers are tokio clients in this process, each on its own connection.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use multilevel_proto::{KeyRange, WatchOptions};
use multilevel_tokio::{Client, Watch};

use super::anchors::{cpu_time, start_server};
use super::report::{Figure, latencies, percentiles, record};
use super::targets::Goal;
use super::workloads::{connect, figure, io_err, load, per_sec};
use super::{BenchConfig, Report};

/// The watchers of the fan-out workload, as in the target.
const WATCHERS: usize = 50;

/// At most this many writer clients in the fan-out workload (each with `depth` in flight).
const WRITERS: usize = 8;

/// A watcher that receives nothing for this long has missed events (or the server stalled).
const IDLE: Duration = Duration::from_secs(5);

/// The prefix of the event latency workload's keys.
const LATENCY_PREFIX: &[u8] = b"e";

/// The prefix of the fan-out workload's keys.
const FAN_OUT_PREFIX: &[u8] = b"f";

/// Key `i` under `prefix`: 16 bytes with a one-byte prefix, like the other workloads' keys.
fn watch_key(prefix: &[u8], i: u64) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(format!("{i:015}").as_bytes());
    key
}

/// The `i` of a key made by [`watch_key`] with a one-byte prefix.
fn key_index(key: &[u8]) -> Option<usize> {
    std::str::from_utf8(key.get(1..)?).ok()?.parse().ok()
}

/// Opens a watch of `prefix` on `client` from now on, and waits until the server has opened it
/// (a request sent after it on the same connection is answered after it).
async fn open_watch(client: &Client, prefix: &[u8]) -> io::Result<Watch> {
    let watch = client.watch(WatchOptions::new().range(KeyRange::prefix(prefix))).map_err(io_err)?;
    client.get(b"watch-sync").await.map_err(io_err)?;
    Ok(watch)
}

/// Runs both watch workloads on a fresh no-sync server in `dir`.
pub(super) async fn run_all(config: &BenchConfig, dir: &Path, report: &mut Report) -> io::Result<()> {
    let (server, addr) = start_server(&config.server_exe, &dir.join("watch"), true)?;
    let value = Bytes::from(vec![b'v'; config.value_size]);
    event_latency(addr, config.ops.min(20_000), &value, report).await?;
    let writers = config.clients.clamp(1, WRITERS);
    let puts = (config.ops * 2).min(50_000);
    fan_out(addr, server.0.id(), writers, config.depth.max(1), puts, &value, report).await
}

/// One writer puts `puts` keys one at a time; one watcher of their range records when each
/// event arrives. The delay of an event is from the writer's receipt of the put's ack to the
/// watcher's receipt of the event (both `Instant`s of this process); an event that arrives
/// before the ack counts as 0.
async fn event_latency(addr: SocketAddr, puts: u64, value: &Bytes, report: &mut Report) -> io::Result<()> {
    let writer = connect(addr).await?;
    let watcher = connect(addr).await?;
    let mut watch = open_watch(&watcher, LATENCY_PREFIX).await?;
    let expected = usize::try_from(puts).unwrap_or(usize::MAX);
    let receiver = tokio::spawn(async move {
        let mut seen = Vec::with_capacity(expected);
        while seen.len() < expected {
            match tokio::time::timeout(IDLE, watch.next()).await {
                Ok(Some(Ok(event))) => seen.push((event.change.key().clone(), Instant::now())),
                Ok(Some(Err(err))) => return (seen, Some(err.to_string())),
                Ok(None) => return (seen, Some("the watch ended".to_owned())),
                Err(_) => return (seen, Some(format!("nothing for {IDLE:?}"))),
            }
        }
        (seen, None)
    });

    let mut sends = Vec::with_capacity(expected);
    let mut acks = Vec::with_capacity(expected);
    let mut ack_latencies = latencies();
    let start = Instant::now();
    for i in 0..puts {
        let sent = Instant::now();
        writer.put(watch_key(LATENCY_PREFIX, i), value.clone()).await.map_err(io_err)?;
        let ack = Instant::now();
        record(&mut ack_latencies, ack - sent);
        sends.push(sent);
        acks.push(ack);
    }
    let elapsed = start.elapsed();
    let (seen, error) = receiver.await.map_err(io_err)?;

    let (mut delays, mut from_send) = (latencies(), latencies());
    let mut early = 0u64;
    for (key, received) in &seen {
        let Some((sent, ack)) = key_index(key).and_then(|i| Some((sends.get(i)?, acks.get(i)?))) else {
            report.failures.push(format!("watch event latency: an event for an unexpected key {key:?}"));
            continue;
        };
        let delay = received.checked_duration_since(*ack).unwrap_or_else(|| {
            early += 1;
            Duration::ZERO
        });
        record(&mut delays, delay);
        record(&mut from_send, received.saturating_duration_since(*sent));
    }
    if seen.len() != expected {
        let why = error.unwrap_or_default();
        report
            .failures
            .push(format!("watch event latency: the watcher received {} of {puts} events ({why})", seen.len()));
    }
    report.notes.push(format!(
        "watch event latency: {early} of {} events reached the watcher before the writer saw the put's ack \
         (server answers the write and wakes the watch together); counted as 0 µs",
        seen.len()
    ));

    let put = figure("watched sequential put, no-sync, 1 in flight", elapsed, ack_latencies);
    let (put_rate, put_p50) = (put.per_sec, put.latency_us.map(|l| l[0]));
    report.figures.push(put);
    // The same events timed from the put's send, next to the ack's round trip: unlike the
    // delay after the ack, this shows by how much an event beats the ack.
    report.figures.push(Figure {
        name: "watch event after the put was sent (µs)".into(),
        per_sec: per_sec(from_send.len(), elapsed),
        latency_us: percentiles(&from_send),
        anchor: Some(("its put's round trip, same loop (puts/s)".into(), put_rate)),
        anchor_p50_us: put_p50,
        ..Figure::default()
    });
    report.figures.push(Figure {
        name: "watch event after the put's ack (delay µs)".into(),
        per_sec: per_sec(delays.len(), elapsed),
        latency_us: percentiles(&delays),
        // The delay is measured from the ack: the anchor (the ack itself) is at 0 µs.
        anchor: Some(("its put's ack, same loop (puts/s)".into(), put_rate)),
        anchor_p50_us: Some(0.0),
        goal: Some(Goal::P50Within(20.0)),
        ..Figure::default()
    });
    Ok(())
}

/// What one watcher of the fan-out workload received.
struct Received {
    /// Events received.
    events: u64,
    /// When the last one arrived.
    last: Option<Instant>,
    /// Why it stopped early, if it did.
    error: Option<String>,
}

/// Counts the events of `watch` until `expected` arrived, an error, or [`IDLE`] with none.
async fn count_events(mut watch: Watch, expected: u64) -> Received {
    let mut received = Received { events: 0, last: None, error: None };
    while received.events < expected {
        match tokio::time::timeout(IDLE, watch.next()).await {
            Ok(Some(Ok(_))) => {
                received.events += 1;
                received.last = Some(Instant::now());
            }
            Ok(Some(Err(err))) => received.error = Some(err.to_string()),
            Ok(None) => received.error = Some("the watch ended".to_owned()),
            Err(_) => received.error = Some(format!("nothing for {IDLE:?}")),
        }
        if received.error.is_some() {
            break;
        }
    }
    received
}

/// `writers` clients with `depth` puts in flight each put `puts` keys, with no watcher, then
/// with one, then with [`WATCHERS`] (each on its own connection, each watching every key
/// written, values included). Every watcher must receive every event. The server's and this
/// process's CPU time over each phase go to the notes: they say which side the watchers load.
async fn fan_out(
    addr: SocketAddr,
    server_pid: u32,
    writers: usize,
    depth: usize,
    puts: u64,
    value: &Bytes,
    report: &mut Report,
) -> io::Result<()> {
    let clients: Vec<Client> = futures_util::future::try_join_all((0..writers).map(|_| connect(addr))).await?;
    let shape = format!("{writers} x {depth}");
    let mut alone = None;
    for (phase, watchers) in [0usize, 1, WATCHERS].into_iter().enumerate() {
        let watcher_clients: Vec<Client> =
            futures_util::future::try_join_all((0..watchers).map(|_| connect(addr))).await?;
        let mut tasks = Vec::with_capacity(watchers);
        for client in &watcher_clients {
            let watch = open_watch(client, FAN_OUT_PREFIX).await?;
            tasks.push(tokio::spawn(count_events(watch, puts)));
        }

        let (v, offset) = (value.clone(), phase as u64 * puts);
        let put = move |client: Client, i: u64| {
            let v = v.clone();
            async move { client.put(watch_key(FAN_OUT_PREFIX, offset + i), v).await }
        };
        let cpu_before = (cpu_time(server_pid), cpu_time(std::process::id()));
        let start = Instant::now();
        let (elapsed, lat) = load(&clients, depth, puts, put).await?;
        let (mut events, mut last) = (0u64, start);
        for (w, task) in tasks.into_iter().enumerate() {
            let received = task.await.map_err(io_err)?;
            events += received.events;
            last = last.max(received.last.unwrap_or(start));
            if received.events != puts {
                let why = received.error.unwrap_or_default();
                report.failures.push(format!(
                    "watch fan-out: watcher {w} of {watchers} received {} of {puts} events ({why})",
                    received.events
                ));
            }
        }

        let plural = if watchers == 1 { "" } else { "s" };
        let wall = last.max(start + elapsed).saturating_duration_since(start);
        let cpu = |pid: u32, before: Option<Duration>| {
            let used = cpu_time(pid).zip(before).map(|(after, before)| after.saturating_sub(before));
            used.map_or("unknown".to_owned(), |used| format!("{:.2} s", used.as_secs_f64()))
        };
        report.notes.push(format!(
            "watch fan-out, {watchers} watcher{plural}: {:.2} s of writes and deliveries; CPU: server {}, bench process \
             (writers and watchers) {}",
            wall.as_secs_f64(),
            cpu(server_pid, cpu_before.0),
            cpu(std::process::id(), cpu_before.1),
        ));
        let name = match watchers {
            0 => format!("watched range: put, no-sync, {shape}, no watcher"),
            n => format!("watched range: put, no-sync, {shape}, {n} watcher{plural}"),
        };
        let mut f = figure(&name, elapsed, lat);
        let rate = f.per_sec;
        match alone {
            None => alone = Some(rate),
            Some(alone_rate) => {
                f.anchor = Some(("the same writers, no watcher (puts/s)".into(), alone_rate));
                if watchers == WATCHERS {
                    // The target: 50 watchers cost the writers under 20%.
                    f.goal = Some(Goal::RatioAtLeast(0.8));
                }
            }
        }
        report.figures.push(f);
        if watchers > 0 {
            report.figures.push(Figure {
                name: format!("events/s delivered to {watchers} watcher{plural}, all"),
                per_sec: per_sec(events, last.saturating_duration_since(start)),
                anchor: Some((format!("{watchers} x the writers' puts/s"), watchers as f64 * rate)),
                ..Figure::default()
            });
        }
        drop(watcher_clients);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let key = watch_key(FAN_OUT_PREFIX, 1234);
        assert_eq!(key.len(), 16);
        assert_eq!(key_index(&key), Some(1234));
        assert_eq!(key_index(b"e"), None);
    }
}
