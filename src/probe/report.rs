//! The probe's results: latency histograms (hdrhistogram) per phase, region,
//! edge and answer kind, and their output as a table, JSON or CSV.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::request::{Kind, Sample};
use super::workload::Target;

/// Largest latency recorded, in microseconds (longer ones are clamped).
const MAX_MICROS: u64 = 600_000_000;

/// One line of the report: a region, an edge and an answer kind. Times are
/// in milliseconds: `p50_ms`.. `max_ms` to the end of the body, `ttfb_*`
/// to the response head.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// Region the requests came from.
    pub region: String,
    /// Edge measured.
    pub edge: String,
    /// Answer kind: hit, miss, revalidated, stale, error, other.
    pub kind: &'static str,
    /// Sample count.
    pub count: u64,
    /// Median total time.
    pub p50_ms: f64,
    /// 90th percentile of total time.
    pub p90_ms: f64,
    /// 99th percentile of total time.
    pub p99_ms: f64,
    /// Longest total time.
    pub max_ms: f64,
    /// Median time to first byte.
    pub ttfb_p50_ms: f64,
    /// 90th percentile of time to first byte.
    pub ttfb_p90_ms: f64,
    /// 99th percentile of time to first byte.
    pub ttfb_p99_ms: f64,
    /// Longest time to first byte.
    pub ttfb_max_ms: f64,
    /// Whether the steering DNS answered this edge for the region.
    pub steered: bool,
    /// Configured round trip between the region and the edge.
    pub rtt_ms: u32,
    /// Scenario phase (`before`, `during`, `after`), when a scenario ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}

struct Histograms {
    total: Histogram<u64>,
    ttfb: Histogram<u64>,
}

/// Collects samples.
#[derive(Default)]
pub struct Report {
    /// (phase index, target index, kind) to histograms.
    cells: BTreeMap<(usize, usize, Kind), Histograms>,
    phases: Vec<Option<String>>,
    targets: Vec<Target>,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_MICROS)
}

fn ms(h: &Histogram<u64>, q: Option<f64>) -> f64 {
    let us = match q {
        Some(q) => h.value_at_quantile(q),
        None => h.max(),
    };
    us as f64 / 1000.0
}

impl Report {
    /// A report over `targets`, for `phases` (`[None]` without a scenario).
    pub fn new(targets: Vec<Target>, phases: Vec<Option<String>>) -> Report {
        Report {
            cells: BTreeMap::new(),
            phases,
            targets,
        }
    }

    /// Adds the samples of target `target` in phase `phase`.
    pub fn add(&mut self, phase: usize, target: usize, samples: &[Sample]) {
        for s in samples {
            let cell = self
                .cells
                .entry((phase, target, s.kind))
                .or_insert_with(|| {
                    let new = || {
                        Histogram::new_with_bounds(1, MAX_MICROS, 3)
                            .unwrap_or_else(|_| unreachable!("valid histogram bounds"))
                    };
                    Histograms {
                        total: new(),
                        ttfb: new(),
                    }
                });
            // Values are clamped into the bounds, so recording cannot fail.
            let _ = cell.total.record(micros(s.total));
            let _ = cell.ttfb.record(micros(s.ttfb));
        }
    }

    /// One record per phase, region, edge and kind seen, in that order.
    pub fn records(&self) -> Vec<Record> {
        let mut out = Vec::new();
        for ((phase, target, kind), h) in &self.cells {
            let Some(t) = self.targets.get(*target) else {
                continue;
            };
            out.push(Record {
                region: t.region.clone(),
                edge: t.edge.clone(),
                kind: kind.as_str(),
                count: h.total.len(),
                p50_ms: ms(&h.total, Some(0.5)),
                p90_ms: ms(&h.total, Some(0.9)),
                p99_ms: ms(&h.total, Some(0.99)),
                max_ms: ms(&h.total, None),
                ttfb_p50_ms: ms(&h.ttfb, Some(0.5)),
                ttfb_p90_ms: ms(&h.ttfb, Some(0.9)),
                ttfb_p99_ms: ms(&h.ttfb, Some(0.99)),
                ttfb_max_ms: ms(&h.ttfb, None),
                steered: t.steered,
                rtt_ms: t.rtt_ms,
                phase: self.phases.get(*phase).cloned().flatten(),
            });
        }
        out
    }
}

/// The records as an aligned table.
pub fn table(records: &[Record]) -> String {
    let phases = records.iter().any(|r| r.phase.is_some());
    let mut out = String::new();
    let _ = write!(out, "{:<10} {:<18} {:>4} ", "REGION", "EDGE", "RTT");
    if phases {
        let _ = write!(out, "{:<7} ", "PHASE");
    }
    let _ = writeln!(
        out,
        "{:<12} {:>5} {:>9} {:>9} {:>9} {:>9} {:>10}",
        "KIND", "COUNT", "P50 ms", "P90 ms", "P99 ms", "MAX ms", "TTFB p50"
    );
    for r in records {
        let edge = if r.steered {
            format!("{}*", r.edge)
        } else {
            r.edge.clone()
        };
        let _ = write!(out, "{:<10} {:<18} {:>4} ", r.region, edge, r.rtt_ms);
        if phases {
            let _ = write!(out, "{:<7} ", r.phase.as_deref().unwrap_or("-"));
        }
        let _ = writeln!(
            out,
            "{:<12} {:>5} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>10.1}",
            r.kind, r.count, r.p50_ms, r.p90_ms, r.p99_ms, r.max_ms, r.ttfb_p50_ms
        );
    }
    let _ = writeln!(
        out,
        "(* the edge the steering DNS answered; RTT is the configured round trip; times to the end of the body)"
    );
    out
}

/// The records as CSV, with a header line.
pub fn csv(records: &[Record]) -> String {
    let mut out = String::from(
        "region,edge,kind,count,p50_ms,p90_ms,p99_ms,max_ms,ttfb_p50_ms,ttfb_p90_ms,ttfb_p99_ms,ttfb_max_ms,steered,rtt_ms,phase\n",
    );
    for r in records {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.region,
            r.edge,
            r.kind,
            r.count,
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.max_ms,
            r.ttfb_p50_ms,
            r.ttfb_p90_ms,
            r.ttfb_p99_ms,
            r.ttfb_max_ms,
            r.steered,
            r.rtt_ms,
            r.phase.as_deref().unwrap_or("")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            region: "eu-west".into(),
            edge: "edge-eu-west-1".into(),
            steered: true,
            link: "127.0.0.1:1".parse().unwrap(),
            client: "127.0.2.100".parse().unwrap(),
            rtt_ms: 2,
        }
    }

    #[test]
    fn aggregates_per_kind() {
        let mut report = Report::new(vec![target()], vec![None]);
        let hit = |ms| Sample {
            kind: Kind::Hit,
            ttfb: Duration::from_millis(ms),
            total: Duration::from_millis(ms + 1),
        };
        report.add(0, 0, &[hit(1), hit(2), hit(3), hit(100)]);
        report.add(
            0,
            0,
            &[Sample {
                kind: Kind::Error,
                ttfb: Duration::from_secs(1),
                total: Duration::from_secs(1),
            }],
        );
        let records = report.records();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].kind, "hit");
        assert_eq!(records[0].count, 4);
        assert!((records[0].p50_ms - 3.0).abs() < 0.1, "{records:?}");
        assert!((records[0].max_ms - 101.0).abs() < 0.2, "{records:?}");
        let json = serde_json::to_value(&records[1]).unwrap();
        for field in [
            "region", "edge", "kind", "count", "p50_ms", "p90_ms", "p99_ms", "max_ms",
        ] {
            assert!(json.get(field).is_some(), "{field}");
        }
        assert!(json.get("phase").is_none());
        assert!(
            csv(&records)
                .lines()
                .nth(1)
                .unwrap()
                .starts_with("eu-west,edge-eu-west-1,hit,4,")
        );
        assert!(table(&records).contains("edge-eu-west-1*"));
    }
}
