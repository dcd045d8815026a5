//! Raw rounds, their per-target medians, and ratios to nginx and to the
//! bare hyper + moka baseline.

use std::collections::BTreeMap;

use serde::Serialize;

use super::wrk::WrkResult;
use crate::bench::client::fmt_us;

/// One wrk run against one target.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// Round number, from 1.
    pub round: u32,
    /// Workload name (`1k`, `16k`, `256k`, `many`).
    pub workload: String,
    /// Target name.
    pub target: String,
    /// wrk's figures.
    pub wrk: WrkResult,
    /// Server CPU time (user + system, whole process tree) during the run.
    pub cpu_secs: f64,
    /// The system (kernel) part of `cpu_secs`.
    pub system_cpu_secs: f64,
    /// Requests per CPU-second of the server.
    pub requests_per_cpu_sec: f64,
    /// Requests the origin received during the run (0 for pure hits).
    pub origin_requests: u64,
}

/// Medians over the rounds for one workload and target.
#[derive(Debug, Clone, Serialize)]
pub struct SummaryRow {
    /// Workload name.
    pub workload: String,
    /// Target name.
    pub target: String,
    /// Rounds measured.
    pub rounds: usize,
    /// Median requests per second.
    pub rps: f64,
    /// Median of the rounds' p50 latency, microseconds.
    pub p50_us: f64,
    /// Median of the rounds' p99 latency, microseconds.
    pub p99_us: f64,
    /// Median requests per server CPU-second.
    pub requests_per_cpu_sec: f64,
    /// Median server CPU time per request, microseconds.
    pub cpu_us_per_request: f64,
    /// Median of the kernel's part of it, microseconds.
    pub kernel_us_per_request: f64,
    /// Median share of that CPU time spent in the kernel (0 to 1).
    pub kernel_share: f64,
    /// Peak resident memory of the server over the whole benchmark, KiB.
    pub peak_rss_kib: u64,
    /// Errors (socket errors and non-2xx/3xx) over all rounds.
    pub errors: u64,
    /// Origin requests during the measured runs.
    pub origin_requests: u64,
    /// rps / nginx's rps.
    pub rps_vs_nginx: Option<f64>,
    /// requests per CPU-second / nginx's.
    pub cpu_efficiency_vs_nginx: Option<f64>,
    /// p99 / nginx's p99 (below 1 is better).
    pub p99_vs_nginx: Option<f64>,
    /// rps / the bare baseline's rps: what the caching rules cost.
    pub rps_vs_bare: Option<f64>,
    /// nginx's CPU time per request / this target's kernel time per
    /// request: the CPU efficiency against nginx this target would reach if
    /// its own (user-space) work per request cost nothing: the ceiling of
    /// its "CPU eff." ratio while it makes the same socket calls. (The
    /// kernel's part is the socket calls and, on loopback, the TCP work of
    /// both ends of each packet the server sends.)
    pub kernel_bound_vs_nginx: Option<f64>,
}

impl RunRecord {
    /// Server CPU time per request, microseconds (0 without requests).
    pub fn cpu_us_per_request(&self) -> f64 {
        self.per_request_us(self.cpu_secs)
    }

    /// The kernel's part of it.
    pub fn kernel_us_per_request(&self) -> f64 {
        self.per_request_us(self.system_cpu_secs)
    }

    fn per_request_us(&self, secs: f64) -> f64 {
        if self.wrk.requests > 0 {
            secs * 1e6 / self.wrk.requests as f64
        } else {
            0.0
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Medians per (workload, target), in the given orders, with ratios to the
/// nginx row of the same workload.
pub fn summarize(
    runs: &[RunRecord],
    workloads: &[String],
    targets: &[&str],
    peak_rss: &BTreeMap<String, u64>,
) -> Vec<SummaryRow> {
    let mut rows = Vec::new();
    for w in workloads {
        let mut group = Vec::new();
        for t in targets {
            let rs: Vec<&RunRecord> = runs
                .iter()
                .filter(|r| &r.workload == w && r.target == *t)
                .collect();
            if rs.is_empty() {
                continue;
            }
            let m = |f: fn(&RunRecord) -> f64| median(rs.iter().map(|r| f(r)).collect());
            group.push(SummaryRow {
                workload: w.clone(),
                target: t.to_string(),
                rounds: rs.len(),
                rps: m(|r| r.wrk.rps),
                p50_us: m(|r| r.wrk.p50_us),
                p99_us: m(|r| r.wrk.p99_us),
                requests_per_cpu_sec: m(|r| r.requests_per_cpu_sec),
                cpu_us_per_request: m(RunRecord::cpu_us_per_request),
                kernel_us_per_request: m(RunRecord::kernel_us_per_request),
                kernel_share: m(|r| {
                    if r.cpu_secs > 0.0 {
                        r.system_cpu_secs / r.cpu_secs
                    } else {
                        0.0
                    }
                }),
                peak_rss_kib: peak_rss.get(*t).copied().unwrap_or(0),
                errors: rs
                    .iter()
                    .map(|r| r.wrk.socket_errors + r.wrk.non_2xx_3xx)
                    .sum(),
                origin_requests: rs.iter().map(|r| r.origin_requests).sum(),
                rps_vs_nginx: None,
                cpu_efficiency_vs_nginx: None,
                p99_vs_nginx: None,
                rps_vs_bare: None,
                kernel_bound_vs_nginx: None,
            });
        }
        let ratio = |a: f64, b: f64| (b > 0.0).then(|| a / b);
        if let Some(bare) = group.iter().find(|r| r.target == "bare").map(|r| r.rps) {
            for r in &mut group {
                r.rps_vs_bare = ratio(r.rps, bare);
            }
        }
        let nginx = group.iter().find(|r| r.target == "nginx").cloned();
        if let Some(n) = nginx {
            for r in &mut group {
                r.rps_vs_nginx = ratio(r.rps, n.rps);
                r.cpu_efficiency_vs_nginx = ratio(r.requests_per_cpu_sec, n.requests_per_cpu_sec);
                r.p99_vs_nginx = ratio(r.p99_us, n.p99_us);
                r.kernel_bound_vs_nginx = ratio(n.cpu_us_per_request, r.kernel_us_per_request);
            }
        }
        rows.extend(group);
    }
    rows
}

fn ratio_text(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_string(), |v| format!("{v:.2}x"))
}

fn fmt_cpu_us(us: f64) -> String {
    format!("{us:.1}us")
}

/// Prints the summary table ("bound": `kernel_bound_vs_nginx`).
pub fn print(rows: &[SummaryRow]) {
    println!(
        "\n{:<8} {:<10} {:>10} {:>9} {:>9} {:>11} {:>7} {:>6} {:>9} {:>8} {:>9} {:>8} {:>8} {:>7}",
        "workload",
        "target",
        "req/s",
        "p50",
        "p99",
        "req/CPU-s",
        "CPU/req",
        "kernel",
        "peak MiB",
        "vs nginx",
        "CPU eff.",
        "p99 rel.",
        "vs bare",
        "bound"
    );
    for r in rows {
        println!(
            "{:<8} {:<10} {:>10.0} {:>9} {:>9} {:>11.0} {:>7} {:>5.0}% {:>9.1} {:>8} {:>9} {:>8} {:>8} {:>7}{}",
            r.workload,
            r.target,
            r.rps,
            fmt_us(r.p50_us),
            fmt_us(r.p99_us),
            r.requests_per_cpu_sec,
            fmt_cpu_us(r.cpu_us_per_request),
            r.kernel_share * 100.0,
            r.peak_rss_kib as f64 / 1024.0,
            ratio_text(r.rps_vs_nginx),
            ratio_text(r.cpu_efficiency_vs_nginx),
            ratio_text(r.p99_vs_nginx),
            ratio_text(r.rps_vs_bare),
            ratio_text(r.kernel_bound_vs_nginx),
            if r.errors + r.origin_requests > 0 {
                format!(
                    "  ({} errors, {} origin requests)",
                    r.errors, r.origin_requests
                )
            } else {
                String::new()
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(workload: &str, target: &str, rps: f64) -> RunRecord {
        RunRecord {
            round: 1,
            workload: workload.into(),
            target: target.into(),
            wrk: super::super::wrk::parse(&format!(
                "edgecache-bench: requests={} duration_us=1000000 p50_us=100 p99_us=200",
                rps as u64
            ))
            .unwrap(),
            cpu_secs: 1.0,
            system_cpu_secs: 0.75,
            requests_per_cpu_sec: rps,
            origin_requests: 0,
        }
    }

    #[test]
    fn ratios_are_to_nginx_of_the_same_workload() {
        let runs = vec![
            run("1k", "nginx", 100.0),
            run("1k", "edgecache", 150.0),
            run("1k", "edgecache", 250.0),
            run("1k", "edgecache", 200.0),
            run("16k", "edgecache", 10.0),
        ];
        let rows = summarize(
            &runs,
            &["1k".into(), "16k".into()],
            &["edgecache", "nginx"],
            &BTreeMap::new(),
        );
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].rps, 200.0);
        assert_eq!(rows[0].rps_vs_nginx, Some(2.0));
        assert_eq!(rows[1].rps_vs_nginx, Some(1.0));
        assert_eq!(rows[2].rps_vs_nginx, None);
        assert_eq!(rows[0].rps_vs_bare, None);
    }

    #[test]
    fn ratio_to_the_bare_baseline() {
        let runs = vec![
            run("1k", "bare", 400.0),
            run("1k", "edgecache", 300.0),
            run("1k", "nginx", 200.0),
        ];
        let rows = summarize(
            &runs,
            &["1k".into()],
            &["edgecache", "bare", "nginx"],
            &BTreeMap::new(),
        );
        assert_eq!(rows[0].rps_vs_bare, Some(0.75));
        assert_eq!(rows[0].rps_vs_nginx, Some(1.5));
        assert_eq!(rows[1].rps_vs_bare, Some(1.0));
        assert_eq!(rows[1].rps_vs_nginx, Some(2.0));
    }

    #[test]
    fn kernel_bound_is_nginx_cpu_per_request_over_the_targets_kernel_time() {
        let mut nginx = run("1k", "nginx", 100.0);
        nginx.cpu_secs = 2.0;
        nginx.system_cpu_secs = 1.5;
        let mut edge = run("1k", "edgecache", 100.0);
        edge.cpu_secs = 1.0;
        edge.system_cpu_secs = 0.5;
        let rows = summarize(
            &[nginx, edge],
            &["1k".into()],
            &["edgecache", "nginx"],
            &BTreeMap::new(),
        );
        // 100 requests: edgecache 10,000 us each, half of it the kernel's.
        assert_eq!(rows[0].cpu_us_per_request, 10_000.0);
        assert_eq!(rows[0].kernel_share, 0.5);
        assert_eq!(rows[0].kernel_us_per_request, 5_000.0);
        assert_eq!(rows[1].cpu_us_per_request, 20_000.0);
        assert_eq!(rows[0].kernel_bound_vs_nginx, Some(4.0));
        assert_eq!(rows[1].kernel_bound_vs_nginx, Some(20_000.0 / 15_000.0));
    }
}
