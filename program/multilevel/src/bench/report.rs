//! Figures, their anchors and ratios, as text and JSON.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::targets::{Goal, Verdict};

/// One measured figure and what it is compared with.
#[derive(Debug, Clone, Default)]
pub struct Figure {
    /// The workload.
    pub name: String,
    /// Operations (or entries) per second.
    pub per_sec: f64,
    /// MB/s, for scans.
    pub mb_per_sec: Option<f64>,
    /// Latency percentiles p50, p99, p999 in microseconds, when measured per request.
    pub latency_us: Option<[f64; 3]>,
    /// The anchor's name and its figure in the same unit.
    pub anchor: Option<(String, f64)>,
    /// For latency anchors: the anchor's p50 in microseconds.
    pub anchor_p50_us: Option<f64>,
    /// The target this figure is judged by, if any.
    pub goal: Option<Goal>,
}

impl Figure {
    /// This figure over the anchor's (throughput ratio).
    pub fn ratio(&self) -> Option<f64> {
        self.anchor.as_ref().map(|(_, value)| self.per_sec / value)
    }

    /// The p50 latency over the anchor's, in microseconds.
    pub fn p50_delta_us(&self) -> Option<f64> {
        Some(self.latency_us?[0] - self.anchor_p50_us?)
    }

    /// The verdict of this figure's target, if it has one.
    pub fn verdict(&self) -> Option<Verdict> {
        Some(self.goal?.judge(self.per_sec, self.ratio(), self.p50_delta_us()))
    }
}

/// Every figure of a run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The CPUs the run was allowed on (e.g. `0` when pinned, `0-1` when not).
    pub placement: String,
    /// The figures, in the order measured.
    pub figures: Vec<Figure>,
    /// What a reader needs to read some figures right (e.g. how a delay was clamped).
    pub notes: Vec<String>,
    /// Checks a workload made that failed (e.g. a watcher that missed events): the figures
    /// next to them are not to be trusted.
    pub failures: Vec<String>,
}

/// A figure for the table: whole numbers for rates, two decimals for small figures (µs of CPU
/// per request, KiB per connection) that would otherwise print as 0 or 1.
fn figure_value(value: f64) -> String {
    if value.abs() < 100.0 { format!("{value:.2}") } else { format!("{value:.0}") }
}

impl Report {
    pub(crate) fn new(placement: String) -> Self {
        Self { placement, figures: Vec::new(), notes: Vec::new(), failures: Vec::new() }
    }

    /// A table for humans.
    pub fn to_text(&self) -> String {
        let mut out = format!("placement: cpus {}\n", self.placement);
        let _ = writeln!(
            out,
            "{:<46} {:>12} {:>9} {:>9} {:>9}  {:<34} {:>12} {:>8}",
            "workload", "ops/s", "p50 µs", "p99 µs", "p999 µs", "anchor", "anchor", "ratio"
        );
        for f in &self.figures {
            let lat = |i: usize| f.latency_us.map_or("-".to_owned(), |l| format!("{:.1}", l[i]));
            let (anchor, value) = match &f.anchor {
                Some((name, value)) => (name.clone(), figure_value(*value)),
                None => ("-".to_owned(), "-".to_owned()),
            };
            let mut ratio = f.ratio().map_or("-".to_owned(), |r| format!("{r:.2}x"));
            if let (Some(anchor_p50), Some(l)) = (f.anchor_p50_us, f.latency_us) {
                ratio = format!("p50 {:+.1} µs", l[0] - anchor_p50);
            }
            let _ = writeln!(
                out,
                "{:<46} {:>12} {:>9} {:>9} {:>9}  {:<34} {:>12} {:>8}",
                f.name,
                figure_value(f.per_sec),
                lat(0),
                lat(1),
                lat(2),
                anchor,
                value,
                ratio
            );
            if let Some(mb) = f.mb_per_sec {
                let _ = writeln!(out, "{:<46} {:>12.1} MB/s", "", mb);
            }
        }
        if !self.notes.is_empty() {
            let _ = writeln!(out, "\nnotes:");
        }
        for note in &self.notes {
            let _ = writeln!(out, "  {note}");
        }
        if !self.failures.is_empty() {
            let _ = writeln!(out, "\nFAILURES:");
        }
        for failure in &self.failures {
            let _ = writeln!(out, "  {failure}");
        }
        let judged: Vec<(&Figure, Verdict)> = self.figures.iter().filter_map(|f| Some((f, f.verdict()?))).collect();
        if !judged.is_empty() {
            let _ = writeln!(out, "\ntargets:");
        }
        for (f, verdict) in judged {
            let met = match verdict.met {
                Some(true) => "met",
                Some(false) => "SHORT",
                None => "not measured",
            };
            let goal = f.goal.map(|g| g.to_string()).unwrap_or_default();
            let _ = writeln!(out, "  {:<12} {:<46} {:>14}  (target {goal})", met, f.name, verdict.measured);
        }
        out
    }

    /// The figures as one JSON document.
    pub fn to_json(&self) -> String {
        let figures: Vec<serde_json::Value> = self
            .figures
            .iter()
            .map(|f| {
                serde_json::json!({
                    "workload": f.name,
                    "per_sec": f.per_sec,
                    "mb_per_sec": f.mb_per_sec,
                    "p50_us": f.latency_us.map(|l| l[0]),
                    "p99_us": f.latency_us.map(|l| l[1]),
                    "p999_us": f.latency_us.map(|l| l[2]),
                    "anchor": f.anchor.as_ref().map(|a| a.0.clone()),
                    "anchor_value": f.anchor.as_ref().map(|a| a.1),
                    "anchor_p50_us": f.anchor_p50_us,
                    "ratio": f.ratio(),
                    "target": f.goal.map(|g| g.to_string()),
                    "target_met": f.verdict().and_then(|v| v.met),
                })
            })
            .collect();
        serde_json::json!({
            "placement": self.placement,
            "figures": figures,
            "notes": self.notes,
            "failures": self.failures,
        })
        .to_string()
    }
}

/// Latencies in nanoseconds, to 3 significant digits (0.1%), up to [`MAX_LATENCY`] (a longer one
/// counts as `MAX_LATENCY`).
pub(crate) type Latencies = Histogram<u64>;

/// The longest latency a [`Latencies`] tells apart.
const MAX_LATENCY: Duration = Duration::from_secs(60);

/// An empty [`Latencies`].
pub(crate) fn latencies() -> Latencies {
    // Constant, valid bounds (1 <= low, high >= 2 * low, sigfig <= 5): this cannot fail.
    Histogram::new_with_bounds(1, MAX_LATENCY.as_nanos() as u64, 3).expect("valid histogram bounds")
}

/// Records one latency.
pub(crate) fn record(latencies: &mut Latencies, elapsed: Duration) {
    latencies.saturating_record(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
}

/// p50, p99 and p999, in microseconds; `None` if nothing was recorded.
pub(crate) fn percentiles(latencies: &Latencies) -> Option<[f64; 3]> {
    if latencies.is_empty() {
        return None;
    }
    let at = |q: f64| latencies.value_at_quantile(q) as f64 / 1000.0;
    Some([at(0.5), at(0.99), at(0.999)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_known_latencies() {
        let mut l = latencies();
        assert_eq!(percentiles(&l), None);
        for us in 1..=1000u64 {
            record(&mut l, Duration::from_micros(us));
        }
        let [p50, p99, p999] = percentiles(&l).unwrap();
        // Within the histogram's 0.1% precision.
        assert!((p50 - 500.0).abs() <= 0.5 + 1e-9, "{p50}");
        assert!((p99 - 990.0).abs() <= 1.0 + 1e-9, "{p99}");
        assert!((p999 - 999.0).abs() <= 1.0 + 1e-9, "{p999}");
        record(&mut l, Duration::from_secs(3600));
        assert_eq!(l.len(), 1001, "an overlong latency is still counted");
    }
}
