//! `serve --metrics ADDR`: Prometheus metrics over HTTP at `http://ADDR/metrics`.
//!
//! The libraries record through the `metrics` facade; this installs the Prometheus recorder
//! and its HTTP listener (`metrics-exporter-prometheus`), which only the program depends on.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

use crate::Failure;

/// Bucket bounds of the latency histograms, in seconds: 5 µs to 5 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Bucket bounds of the writes-per-commit histogram (the group size, at most 1024).
const WRITES_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// Where `/metrics` is served, once [`install`] did.
static LISTENING: OnceLock<SocketAddr> = OnceLock::new();

/// Where `/metrics` is served, if it is.
pub(crate) fn listening() -> Option<SocketAddr> {
    LISTENING.get().copied()
}

/// Installs the recorder and starts serving `/metrics` on `addr` (port 0 picks a free port);
/// returns the address it listens on. Call it inside the runtime, before opening the store
/// (the store's writer registers its handles when it starts).
pub(crate) fn install(addr: &str) -> Result<SocketAddr, Failure> {
    let resolved = addr
        .to_socket_addrs()
        .map_err(|err| Failure::usage(format!("bad --metrics address `{addr}`: {err}")))?
        .next()
        .ok_or_else(|| Failure::usage(format!("bad --metrics address `{addr}`: it resolves to nothing")))?;
    // The exporter binds the address itself and does not say which port 0 gave: find out
    // first, so the banner can name it.
    let local = TcpListener::bind(resolved)
        .and_then(|listener| listener.local_addr())
        .map_err(|err| Failure::new(format!("cannot serve metrics on {addr}: {err}")))?;
    let builder = PrometheusBuilder::new()
        .with_http_listener(local)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .and_then(|builder| {
            builder
                .set_buckets_for_metric(Matcher::Full(multilevel_store::metrics::COMMIT_WRITES.into()), WRITES_BUCKETS)
        })
        .map_err(|err| Failure::new(format!("cannot set up metrics: {err}")))?;
    let (recorder, exporter) =
        builder.build().map_err(|err| Failure::new(format!("cannot serve metrics on {local}: {err}")))?;
    metrics::set_global_recorder(recorder)
        .map_err(|err| Failure::new(format!("cannot install the metrics recorder: {err}")))?;
    tokio::spawn(async move {
        if let Err(err) = exporter.await {
            tracing::warn!("the metrics listener stopped: {err:?}");
        }
    });
    multilevel_serve::metrics::describe();
    multilevel_serve::metrics::set_request_timing(true);
    multilevel_store::metrics::describe();
    let _ = LISTENING.set(local);
    Ok(local)
}
