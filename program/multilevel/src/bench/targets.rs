//! The throughput issue's targets, each attached to the figure it judges, and the verdicts the
//! report prints for them.

use std::fmt;

/// What a figure must reach.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Goal {
    /// The figure over its anchor at least this.
    RatioAtLeast(f64),
    /// The figure over its anchor at most this (for costs, where less is better).
    RatioAtMost(f64),
    /// The figure itself (per second) at least this.
    AtLeast(f64),
    /// The p50 latency at most this many microseconds above the anchor's p50.
    P50Within(f64),
}

impl fmt::Display for Goal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Goal::RatioAtLeast(r) => write!(f, ">= {r:.2}x"),
            Goal::RatioAtMost(r) => write!(f, "<= {r:.2}x"),
            Goal::AtLeast(v) => write!(f, ">= {v:.0}/s"),
            Goal::P50Within(us) => write!(f, "p50 within {us:.0} µs"),
        }
    }
}

/// A goal's verdict on one figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// What was measured, in the goal's terms (`0.30x`, `3650000/s`, `p50 +6.5 µs`).
    pub measured: String,
    /// Whether the goal is met; `None` when its anchor was not measured (e.g. no Redis).
    pub met: Option<bool>,
}

impl Goal {
    /// Judges a figure: its throughput, ratio to its anchor, and p50 distance to the anchor's.
    pub fn judge(&self, per_sec: f64, ratio: Option<f64>, p50_delta_us: Option<f64>) -> Verdict {
        let ratio_verdict = |ok: fn(f64, f64) -> bool, bound: f64| match ratio {
            Some(r) => Verdict { measured: format!("{r:.2}x"), met: Some(ok(r, bound)) },
            None => Verdict { measured: "no anchor".into(), met: None },
        };
        match *self {
            Goal::RatioAtLeast(bound) => ratio_verdict(|r, b| r >= b, bound),
            Goal::RatioAtMost(bound) => ratio_verdict(|r, b| r <= b, bound),
            Goal::AtLeast(bound) => Verdict { measured: format!("{per_sec:.0}/s"), met: Some(per_sec >= bound) },
            Goal::P50Within(us) => match p50_delta_us {
                Some(d) => Verdict { measured: format!("p50 {d:+.1} µs"), met: Some(d <= us) },
                None => Verdict { measured: "no anchor".into(), met: None },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(Goal::RatioAtLeast(1.0).judge(5.0, Some(0.3), None).met, Some(false));
        assert_eq!(Goal::RatioAtLeast(0.6).judge(5.0, Some(0.61), None).met, Some(true));
        assert_eq!(Goal::RatioAtMost(1.0).judge(5.0, Some(1.2), None).met, Some(false));
        assert_eq!(
            Goal::AtLeast(8e6).judge(3.65e6, None, None),
            Verdict { measured: "3650000/s".into(), met: Some(false) }
        );
        assert_eq!(Goal::P50Within(5.0).judge(1.0, None, Some(4.2)).met, Some(true));
        assert_eq!(Goal::RatioAtLeast(1.0).judge(5.0, None, None).met, None);
    }
}
