//! Figures, their anchors and ratios, as text and JSON.

use std::fmt::Write as _;

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
}

impl Figure {
    /// This figure over the anchor's (throughput ratio).
    pub fn ratio(&self) -> Option<f64> {
        self.anchor.as_ref().map(|(_, value)| self.per_sec / value)
    }
}

/// Every figure of a run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The CPUs the run was allowed on (e.g. `0` when pinned, `0-1` when not).
    pub placement: String,
    /// The figures, in the order measured.
    pub figures: Vec<Figure>,
}

impl Report {
    pub(crate) fn new(placement: String) -> Self {
        Self { placement, figures: Vec::new() }
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
                Some((name, value)) => (name.clone(), format!("{value:.0}")),
                None => ("-".to_owned(), "-".to_owned()),
            };
            let mut ratio = f.ratio().map_or("-".to_owned(), |r| format!("{r:.2}x"));
            if let (Some(anchor_p50), Some(l)) = (f.anchor_p50_us, f.latency_us) {
                ratio = format!("p50 {:+.1} µs", l[0] - anchor_p50);
            }
            let _ = writeln!(
                out,
                "{:<46} {:>12.0} {:>9} {:>9} {:>9}  {:<34} {:>12} {:>8}",
                f.name,
                f.per_sec,
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
                })
            })
            .collect();
        serde_json::json!({ "placement": self.placement, "figures": figures }).to_string()
    }
}

/// p50, p99 and p999 of latencies in nanoseconds, in microseconds.
pub(crate) fn percentiles(latencies_ns: &mut [u64]) -> Option<[f64; 3]> {
    if latencies_ns.is_empty() {
        return None;
    }
    latencies_ns.sort_unstable();
    let at = |q: f64| {
        let i = ((latencies_ns.len() as f64 - 1.0) * q).round() as usize;
        latencies_ns[i] as f64 / 1000.0
    };
    Some([at(0.5), at(0.99), at(0.999)])
}
