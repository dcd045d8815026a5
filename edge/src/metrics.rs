//! Prometheus metrics, recorded with the `metrics` crate and rendered by
//! metrics-exporter-prometheus on the admin listener's `GET /metrics`.
//!
//! Series (all prefixed `edgecache_`):
//! - `requests_total{cache, code}`: client requests by cache outcome (`hit`,
//!   `miss`, `stale`, `pass`, `error`) and response status;
//! - `request_duration_seconds{cache}`: latency histogram by cache outcome;
//! - `origin_requests_total`, `origin_failures_total{kind}`: requests sent
//!   to the origin (heartbeats included) and failures by kind;
//! - `stale_answers_total`, `coalesced_waiters_total`: from the node's
//!   counters, set at scrape time;
//! - `cache_entries`, `cache_bytes`: gauges read from the store at scrape;
//! - `origin_up{origin, role}`: 1 while the origin is UP, 0 while DOWN;
//! - `purge_applied_seq`, `purge_seconds_since_contact`, `purge_connected`:
//!   the purge log position applied and the lag behind the control plane
//!   (only when the edge follows one).
//!
//! Without an installed recorder (a node started inside a test process, for
//! example) recording is a no-op and `/metrics` answers 404.

use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::Duration;

use edgecache::config::FailureKind;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use crate::state::EdgeState;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets in seconds: sub-millisecond hits to multi-second misses.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Installs the process-wide Prometheus recorder. Call once, from `main`.
pub fn install() -> Result<(), BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("edgecache_request_duration_seconds".into()),
            &LATENCY_BUCKETS,
        )?
        .install_recorder()?;
    let _ = HANDLE.set(handle);
    describe();
    Ok(())
}

fn describe() {
    metrics::describe_counter!(
        "edgecache_requests_total",
        "Client requests by cache outcome and response status"
    );
    metrics::describe_histogram!(
        "edgecache_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time to the response head, by cache outcome"
    );
    metrics::describe_counter!(
        "edgecache_origin_requests_total",
        "Requests sent to the origin, heartbeats included"
    );
    metrics::describe_counter!(
        "edgecache_origin_failures_total",
        "Origin requests that failed, by failure kind"
    );
    metrics::describe_counter!(
        "edgecache_stale_answers_total",
        "Answers served past freshness"
    );
    metrics::describe_counter!(
        "edgecache_coalesced_waiters_total",
        "Requests that waited for another request's origin fetch"
    );
    metrics::describe_gauge!("edgecache_cache_entries", "Entries in the store");
    metrics::describe_gauge!(
        "edgecache_cache_bytes",
        metrics::Unit::Bytes,
        "Bytes held by the store, by its weigher"
    );
    metrics::describe_gauge!(
        "edgecache_origin_up",
        "1 while the origin is UP, 0 while DOWN"
    );
    metrics::describe_gauge!(
        "edgecache_purge_applied_seq",
        "Sequence number of the last purge applied"
    );
    metrics::describe_gauge!(
        "edgecache_purge_seconds_since_contact",
        metrics::Unit::Seconds,
        "Time since the last frame from the purge control plane (purge lag)"
    );
    metrics::describe_gauge!(
        "edgecache_purge_connected",
        "1 while connected to the purge control plane"
    );
}

/// The cache outcome of an answered request, from its status code and our
/// `Cache-Status` entry (the last one).
pub fn cache_class(status: u16, cache_status: Option<&str>) -> &'static str {
    let Some(entry) = cache_status.and_then(|v| v.rsplit(',').next()) else {
        return if status >= 400 { "error" } else { "pass" };
    };
    // Runs on every request: scan the entry's parameters without collecting.
    let params = || entry.split(';').map(str::trim);
    let has = |p: &str| params().any(|q| q == p);
    if has("hit") {
        return if has("fwd=stale") { "stale" } else { "hit" };
    }
    if matches!(status, 502..=504) && params().any(|p| p.starts_with("detail=")) {
        return "error";
    }
    let forwarded_for_fill = ["fwd=uri-miss", "fwd=vary-miss", "fwd=miss", "fwd=stale"];
    if forwarded_for_fill.iter().any(|p| has(p)) {
        "miss"
    } else if params().any(|p| p.starts_with("fwd=")) {
        "pass"
    } else if status >= 400 {
        "error"
    } else {
        "pass"
    }
}

/// Records one answered client request.
pub fn request_done(status: u16, cache_status: Option<&str>, elapsed: Duration) {
    let class = cache_class(status, cache_status);
    metrics::counter!("edgecache_requests_total", "cache" => class, "code" => status.to_string())
        .increment(1);
    metrics::histogram!("edgecache_request_duration_seconds", "cache" => class)
        .record(elapsed.as_secs_f64());
}

/// Records one request sent to the origin.
pub fn origin_request() {
    metrics::counter!("edgecache_origin_requests_total").increment(1);
}

/// Records one origin failure.
pub fn origin_failure(kind: FailureKind) {
    metrics::counter!("edgecache_origin_failures_total", "kind" => kind.as_str()).increment(1);
}

/// The Prometheus text for `GET /metrics`, with the scrape-time gauges set
/// from `state`; `None` when no recorder is installed.
pub async fn render(state: &EdgeState) -> Option<String> {
    let handle = HANDLE.get()?;
    state.store.sync().await;
    metrics::gauge!("edgecache_cache_entries").set(state.store.entry_count() as f64);
    metrics::gauge!("edgecache_cache_bytes").set(state.store.weighted_size() as f64);
    let c = &state.counters;
    metrics::counter!("edgecache_stale_answers_total").absolute(c.stale.load(Ordering::Relaxed));
    metrics::counter!("edgecache_coalesced_waiters_total")
        .absolute(c.collapsed.load(Ordering::Relaxed));
    for upstream in &state.upstreams {
        let up = if upstream.is_down() { 0.0 } else { 1.0 };
        metrics::gauge!("edgecache_origin_up", "origin" => upstream.name.clone(), "role" => upstream.role)
            .set(up);
    }
    let control = &state.control;
    if control.addr.is_some() {
        metrics::gauge!("edgecache_purge_applied_seq").set(control.last_applied() as f64);
        metrics::gauge!("edgecache_purge_seconds_since_contact")
            .set(control.since_contact().as_secs_f64());
        metrics::gauge!("edgecache_purge_connected").set(if control.is_connected() {
            1.0
        } else {
            0.0
        });
    }
    handle.run_upkeep();
    Some(handle.render())
}

#[cfg(test)]
mod tests {
    use super::cache_class;

    #[test]
    fn classes_follow_cache_status() {
        assert_eq!(cache_class(200, Some("edgecache; hit; ttl=5")), "hit");
        assert_eq!(
            cache_class(
                200,
                Some("edgecache; hit; fwd=stale; ttl=-3; detail=origin-unreachable")
            ),
            "stale"
        );
        assert_eq!(
            cache_class(200, Some("edgecache; fwd=uri-miss; fwd-status=200; stored")),
            "miss"
        );
        assert_eq!(
            cache_class(200, Some("origin; hit, edgecache; fwd=method")),
            "pass"
        );
        assert_eq!(
            cache_class(
                504,
                Some("edgecache; fwd=uri-miss; detail=origin-unreachable")
            ),
            "error"
        );
        assert_eq!(cache_class(421, None), "error");
        assert_eq!(cache_class(200, None), "pass");
    }
}
