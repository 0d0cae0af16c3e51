//! What a served connection records through the [`metrics`] facade: requests by kind and
//! outcome, their latency, connections, iterators, bytes. Without an installed recorder every
//! handle is a no-op.
//!
//! The handles are registered once per connection and reused, so a request costs a counter
//! increment (and, with [`set_request_timing`] on, a clock read and a histogram sample); only a
//! failed request builds its labels.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ::metrics::{
    Counter, Gauge, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge,
};
use multilevel_proto::store::{StoreRequest, WriteOp};
use multilevel_proto::{ErrorCode, IdMap, OpId, Outcome, StoreError};

/// Requests answered, labelled `kind` and `outcome` (`ok` or the error's code).
pub const REQUESTS: &str = "multilevel_requests_total";
/// Time from handing a request to the backend to its answer, labelled `kind`, in seconds;
/// recorded only while [`set_request_timing`] is on.
pub const REQUEST_DURATION: &str = "multilevel_request_duration_seconds";
/// Connections open now.
pub const CONNECTIONS: &str = "multilevel_connections";
/// Connections accepted since the start.
pub const CONNECTIONS_TOTAL: &str = "multilevel_connections_total";
/// Iterators open now, over all connections.
pub const ITERATORS: &str = "multilevel_iterators";
/// Bytes read from clients.
pub const RECEIVED_BYTES: &str = "multilevel_received_bytes_total";
/// Bytes handed to the transport for clients.
pub const SENT_BYTES: &str = "multilevel_sent_bytes_total";

/// Whether connections opened from now on time their requests.
static TIMING: AtomicBool = AtomicBool::new(false);

/// Turns the timing of requests ([`REQUEST_DURATION`]) on or off for the connections opened
/// from now on. Off by default: it costs a clock read and a histogram sample per request, for
/// nothing when no recorder is installed. A program that installs one turns it on.
pub fn set_request_timing(on: bool) {
    TIMING.store(on, Ordering::Relaxed);
}

/// Gives every metric of this crate its help text (for the exporter); call once, after
/// installing a recorder. Harmless without one.
pub fn describe() {
    describe_counter!(REQUESTS, "Requests answered, by kind and outcome (ok, or the error code)");
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Time from handing a request to the backend to its answer, by kind"
    );
    describe_gauge!(CONNECTIONS, "Client connections open now");
    describe_counter!(CONNECTIONS_TOTAL, "Client connections accepted since the start");
    describe_gauge!(ITERATORS, "Iterators open now, over all connections");
    describe_counter!(RECEIVED_BYTES, Unit::Bytes, "Bytes read from clients");
    describe_counter!(SENT_BYTES, Unit::Bytes, "Bytes written to clients");
}

/// The kinds of request counted apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Get,
    GetMany,
    Put,
    Del,
    Batch,
    Clear,
    Conditional,
    Increment,
    IteratorOpen,
    IteratorNext,
    Stats,
    WatchOpen,
    /// A read of a watch's changes, which waits for a commit: its duration is how long the
    /// feed was quiet, not a cost.
    WatchRead,
}

impl Kind {
    const ALL: [Kind; 13] = [
        Kind::Get,
        Kind::GetMany,
        Kind::Put,
        Kind::Del,
        Kind::Batch,
        Kind::Clear,
        Kind::Conditional,
        Kind::Increment,
        Kind::IteratorOpen,
        Kind::IteratorNext,
        Kind::Stats,
        Kind::WatchOpen,
        Kind::WatchRead,
    ];

    pub(crate) fn of(request: &StoreRequest) -> Kind {
        match request {
            StoreRequest::Get { .. } => Kind::Get,
            StoreRequest::GetMany { .. } => Kind::GetMany,
            StoreRequest::Write(write) => match write.op {
                WriteOp::Put { .. } => Kind::Put,
                WriteOp::Del { .. } => Kind::Del,
                WriteOp::Batch(_) => Kind::Batch,
                WriteOp::Clear { .. } => Kind::Clear,
                WriteOp::Conditional { .. } => Kind::Conditional,
                WriteOp::Increment { .. } => Kind::Increment,
            },
            StoreRequest::OpenIterator { .. } => Kind::IteratorOpen,
            StoreRequest::ReadBatch(_) => Kind::IteratorNext,
            StoreRequest::Stats => Kind::Stats,
            StoreRequest::OpenWatch { .. } => Kind::WatchOpen,
            StoreRequest::ReadChanges(_) => Kind::WatchRead,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Get => "get",
            Kind::GetMany => "get_many",
            Kind::Put => "put",
            Kind::Del => "del",
            Kind::Batch => "batch",
            Kind::Conditional => "conditional",
            Kind::Increment => "increment",
            Kind::Clear => "clear",
            Kind::IteratorOpen => "iterator_open",
            Kind::IteratorNext => "iterator_next",
            Kind::Stats => "stats",
            Kind::WatchOpen => "watch_open",
            Kind::WatchRead => "watch_read",
        }
    }
}

/// The `outcome` label of a failed request.
fn error_label(error: &StoreError) -> &'static str {
    match error.code() {
        ErrorCode::ReadOnly => "read_only",
        ErrorCode::Rejected => "rejected",
        ErrorCode::StorageFull => "storage_full",
        ErrorCode::KeyTooLarge => "key_too_large",
        ErrorCode::TooLarge => "too_large",
        ErrorCode::TooManyIterators => "too_many_iterators",
        ErrorCode::TooManySnapshots => "too_many_snapshots",
        ErrorCode::UnknownIterator => "unknown_iterator",
        ErrorCode::ReplayExpired => "replay_expired",
        ErrorCode::InvalidRequest => "invalid_request",
        ErrorCode::Internal => "internal",
        _ => "other",
    }
}

/// Handles for one kind of request.
struct PerKind {
    ok: Counter,
    duration: Histogram,
}

/// A request handed to the backend and not answered yet.
struct Queued {
    kind: Kind,
    start: Option<Instant>,
    /// The iterator an `OpenIterator` opens.
    iterator: Option<u64>,
}

/// One connection's handles and what it must give back on drop.
pub(crate) struct ConnectionMetrics {
    kinds: [PerKind; Kind::ALL.len()],
    received: Counter,
    sent: Counter,
    connections: Gauge,
    iterators: Gauge,
    /// Requests the backend answers later.
    /// Keyed by the connection's own op ids, which a peer cannot choose.
    queued: IdMap<OpId, Queued>,
    /// Whether requests are timed ([`set_request_timing`] when the connection opened).
    timing: bool,
    /// Iterators opened and not closed, to take off the gauge when the connection ends.
    open_iterators: Vec<u64>,
}

impl ConnectionMetrics {
    /// Registers the handles and counts the connection as open.
    pub(crate) fn new() -> Self {
        let kinds = Kind::ALL.map(|kind| PerKind {
            ok: counter!(REQUESTS, "kind" => kind.name(), "outcome" => "ok"),
            duration: ::metrics::histogram!(REQUEST_DURATION, "kind" => kind.name()),
        });
        let connections = gauge!(CONNECTIONS);
        connections.increment(1.0);
        counter!(CONNECTIONS_TOTAL).increment(1);
        Self {
            kinds,
            received: counter!(RECEIVED_BYTES),
            sent: counter!(SENT_BYTES),
            connections,
            iterators: gauge!(ITERATORS),
            queued: IdMap::default(),
            timing: TIMING.load(Ordering::Relaxed),
            open_iterators: Vec::new(),
        }
    }

    /// When a request handed to the backend now starts, if requests are timed.
    #[inline]
    pub(crate) fn start(&self) -> Option<Instant> {
        if self.timing { Some(Instant::now()) } else { None }
    }

    pub(crate) fn received(&self, bytes: usize) {
        self.received.increment(bytes as u64);
    }

    pub(crate) fn sent(&self, bytes: usize) {
        self.sent.increment(bytes as u64);
    }

    /// Records the answer to a request of `kind` handed to the backend at `start` (from
    /// [`start`](Self::start)).
    pub(crate) fn answered(
        &mut self,
        kind: Kind,
        start: Option<Instant>,
        now: Instant,
        iterator: Option<u64>,
        result: &Result<Outcome, StoreError>,
    ) {
        let per_kind = &self.kinds[kind as usize];
        if let Some(start) = start {
            per_kind.duration.record(now.saturating_duration_since(start));
        }
        match result {
            Ok(_) => {
                per_kind.ok.increment(1);
                if let Some(iterator) = iterator {
                    self.iterator_opened(iterator);
                }
            }
            Err(error) => {
                counter!(REQUESTS, "kind" => kind.name(), "outcome" => error_label(error)).increment(1);
            }
        }
    }

    /// Remembers a request the backend will answer later.
    pub(crate) fn queue(&mut self, op: OpId, kind: Kind, start: Option<Instant>, iterator: Option<u64>) {
        self.queued.insert(op, Queued { kind, start, iterator });
    }

    /// Records the answer to a request the backend answered later.
    pub(crate) fn answered_later(&mut self, op: OpId, now: Instant, result: &Result<Outcome, StoreError>) {
        if let Some(Queued { kind, start, iterator }) = self.queued.remove(&op) {
            self.answered(kind, start, now, iterator, result);
        }
    }

    fn iterator_opened(&mut self, iterator: u64) {
        if !self.open_iterators.contains(&iterator) {
            self.open_iterators.push(iterator);
            self.iterators.increment(1.0);
        }
    }

    pub(crate) fn iterator_closed(&mut self, iterator: u64) {
        if let Some(i) = self.open_iterators.iter().position(|&open| open == iterator) {
            self.open_iterators.swap_remove(i);
            self.iterators.decrement(1.0);
        }
    }
}

impl Drop for ConnectionMetrics {
    fn drop(&mut self) {
        self.connections.decrement(1.0);
        if !self.open_iterators.is_empty() {
            self.iterators.decrement(self.open_iterators.len() as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use metrics_util::{CompositeKey, MetricKind};

    type Values = Vec<(CompositeKey, DebugValue)>;

    /// Every value, read once: a snapshot resets counters and gauges to zero.
    fn snapshot(snapshotter: &metrics_util::debugging::Snapshotter) -> Values {
        snapshotter.snapshot().into_vec().into_iter().map(|(key, _, _, value)| (key, value)).collect()
    }

    /// The value of the metric `name` whose labels are exactly `labels`.
    fn value<'v>(values: &'v Values, kind: MetricKind, name: &str, labels: &[(&str, &str)]) -> Option<&'v DebugValue> {
        values.iter().find_map(|(key, value)| {
            let matches = key.kind() == kind
                && key.key().name() == name
                && key.key().labels().map(|l| (l.key(), l.value())).eq(labels.iter().copied());
            matches.then_some(value)
        })
    }

    #[test]
    fn outcomes_iterators_and_the_connection_gauge() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        ::metrics::with_local_recorder(&recorder, || {
            let mut metrics = ConnectionMetrics::new();
            let now = Instant::now();
            metrics.answered(Kind::Get, None, now, None, &Ok(Outcome::Value(None)));
            metrics.answered(Kind::Put, None, now, None, &Err(StoreError::ReadOnly));
            metrics.queue(OpId(7), Kind::IteratorOpen, Some(now), Some(3));
            metrics.answered_later(OpId(7), Instant::now(), &Ok(Outcome::IteratorOpened));
            metrics.queue(OpId(8), Kind::IteratorOpen, None, Some(4));
            metrics.answered_later(OpId(8), now, &Ok(Outcome::IteratorOpened));
            metrics.iterator_closed(3);
            metrics.iterator_closed(3); // closed twice: counted once
            metrics.received(10);
            metrics.sent(20);

            let values = snapshot(&snapshotter);
            let counter = |labels: &[(&str, &str)]| value(&values, MetricKind::Counter, REQUESTS, labels);
            let gauge = |name: &str| value(&values, MetricKind::Gauge, name, &[]);
            assert_eq!(counter(&[("kind", "get"), ("outcome", "ok")]), Some(&DebugValue::Counter(1)));
            assert_eq!(counter(&[("kind", "put"), ("outcome", "read_only")]), Some(&DebugValue::Counter(1)));
            assert_eq!(counter(&[("kind", "put"), ("outcome", "ok")]), Some(&DebugValue::Counter(0)));
            assert_eq!(counter(&[("kind", "iterator_open"), ("outcome", "ok")]), Some(&DebugValue::Counter(2)));
            assert_eq!(gauge(CONNECTIONS), Some(&DebugValue::Gauge(1.0.into())));
            assert_eq!(gauge(ITERATORS), Some(&DebugValue::Gauge(1.0.into())));
            assert_eq!(value(&values, MetricKind::Counter, SENT_BYTES, &[]), Some(&DebugValue::Counter(20)));
            // Only the timed request has a latency sample.
            let timed = value(&values, MetricKind::Histogram, REQUEST_DURATION, &[("kind", "iterator_open")]);
            assert!(matches!(timed, Some(DebugValue::Histogram(samples)) if samples.len() == 1));

            // The connection's end gives back the connection and the iterator still open (the
            // snapshot above reset the gauges: these are the changes since).
            drop(metrics);
            let values = snapshot(&snapshotter);
            assert_eq!(value(&values, MetricKind::Gauge, CONNECTIONS, &[]), Some(&DebugValue::Gauge((-1.0).into())));
            assert_eq!(value(&values, MetricKind::Gauge, ITERATORS, &[]), Some(&DebugValue::Gauge((-1.0).into())));
        });
    }
}
