//! Client request counts and latency, by cache outcome: kept in fixed
//! tables of atomics so that recording a request costs a few relaxed adds
//! (no registry lookup, no label strings), and written out in the
//! Prometheus text format at scrape time.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The cache outcomes a request is counted under, in label order.
pub const CLASSES: [&str; 5] = ["hit", "stale", "miss", "pass", "error"];

/// Upper bounds of the latency buckets, in microseconds: sub-millisecond
/// hits to multi-second misses.
const BUCKETS_US: [u64; 14] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 5_000_000,
];

/// The same bounds as Prometheus `le` labels.
const BUCKET_LABELS: [&str; 14] = [
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
    "0.25", "0.5", "1", "5",
];

/// Status codes 100..=599 get a counter each; anything else is counted
/// under 0 (hyper never sends one).
const CODES: usize = 600;

/// Counts and latency buckets for one cache outcome.
struct ClassStats {
    by_code: [AtomicU64; CODES],
    /// Per bucket (not cumulative); the last slot is above every bound.
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

impl ClassStats {
    const fn new() -> ClassStats {
        ClassStats {
            by_code: [const { AtomicU64::new(0) }; CODES],
            buckets: [const { AtomicU64::new(0) }; BUCKETS_US.len() + 1],
            sum_us: AtomicU64::new(0),
        }
    }
}

/// The process-wide request statistics.
pub struct RequestStats {
    classes: [ClassStats; CLASSES.len()],
}

/// The one table every listener records into.
pub static REQUESTS: RequestStats = RequestStats {
    classes: [const { ClassStats::new() }; CLASSES.len()],
};

impl RequestStats {
    /// Counts one answered request of outcome `class` (an index into
    /// [`CLASSES`]) with `status`, answered after `elapsed`.
    pub fn record(&self, class: usize, status: u16, elapsed: Duration) {
        let Some(stats) = self.classes.get(class) else {
            return;
        };
        let code = usize::from(status);
        let code = if (100..CODES).contains(&code) {
            code
        } else {
            0
        };
        stats.by_code[code].fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_US.partition_point(|&bound| bound < us);
        stats.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        stats.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Requests counted under `class` and `status` so far.
    pub fn count(&self, class: usize, status: u16) -> u64 {
        self.classes
            .get(class)
            .and_then(|s| s.by_code.get(usize::from(status)))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// `edgecache_requests_total` and `edgecache_request_duration_seconds`
    /// in the Prometheus text format; outcomes never seen are left out.
    pub fn render(&self, out: &mut String) {
        out.push_str(
            "# HELP edgecache_requests_total Client requests by cache outcome and response status\n\
             # TYPE edgecache_requests_total counter\n",
        );
        for (name, stats) in CLASSES.iter().zip(&self.classes) {
            for (code, count) in stats.by_code.iter().enumerate() {
                let n = count.load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "edgecache_requests_total{{cache=\"{name}\",code=\"{code}\"}} {n}"
                    );
                }
            }
        }
        out.push_str(
            "# HELP edgecache_request_duration_seconds Time to the response head, by cache outcome\n\
             # TYPE edgecache_request_duration_seconds histogram\n",
        );
        for (name, stats) in CLASSES.iter().zip(&self.classes) {
            let counts: Vec<u64> = stats
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect();
            let total: u64 = counts.iter().sum();
            if total == 0 {
                continue;
            }
            let mut cumulative = 0;
            for (le, n) in BUCKET_LABELS.iter().zip(&counts) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "edgecache_request_duration_seconds_bucket{{cache=\"{name}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let sum = stats.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "edgecache_request_duration_seconds_bucket{{cache=\"{name}\",le=\"+Inf\"}} {total}\n\
                 edgecache_request_duration_seconds_sum{{cache=\"{name}\"}} {sum}\n\
                 edgecache_request_duration_seconds_count{{cache=\"{name}\"}} {total}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_codes_kept_apart() {
        let stats = RequestStats {
            classes: [const { ClassStats::new() }; CLASSES.len()],
        };
        stats.record(0, 200, Duration::from_micros(50));
        stats.record(0, 200, Duration::from_micros(300));
        stats.record(0, 304, Duration::from_secs(9));
        stats.record(4, 504, Duration::from_millis(3));
        assert_eq!(stats.count(0, 200), 2);
        assert_eq!(stats.count(0, 304), 1);
        assert_eq!(stats.count(4, 504), 1);
        let mut text = String::new();
        stats.render(&mut text);
        assert!(text.contains("edgecache_requests_total{cache=\"hit\",code=\"200\"} 2\n"));
        assert!(text.contains("edgecache_requests_total{cache=\"error\",code=\"504\"} 1\n"));
        assert!(text.contains("{cache=\"hit\",le=\"0.0001\"} 1\n"), "{text}");
        assert!(text.contains("{cache=\"hit\",le=\"0.0005\"} 2\n"), "{text}");
        assert!(text.contains("{cache=\"hit\",le=\"5\"} 2\n"), "{text}");
        assert!(text.contains("{cache=\"hit\",le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("edgecache_request_duration_seconds_count{cache=\"hit\"} 3"));
        assert!(
            text.contains("{cache=\"error\",le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(!text.contains("cache=\"miss\""), "{text}");
    }

    #[test]
    fn odd_status_codes_do_not_panic() {
        let stats = RequestStats {
            classes: [const { ClassStats::new() }; CLASSES.len()],
        };
        stats.record(1, 999, Duration::ZERO);
        stats.record(9, 200, Duration::ZERO);
        assert_eq!(stats.count(1, 0), 1);
    }
}
