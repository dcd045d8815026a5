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
//! - `body_files`, `body_file_fallbacks_total`, `sendfile_bytes_total`:
//!   large bodies held in sealed memory files, large bodies that stayed on
//!   the heap because no file could be made, and body bytes sent from those
//!   files with `sendfile(2)`;
//! - `origin_up{origin, role}`: 1 while the origin is UP, 0 while DOWN;
//! - `purge_applied_seq`, `purge_seconds_since_contact`, `purge_connected`:
//!   the purge log position applied and the lag behind the control plane
//!   (only when the edge follows one).
//!
//! Without an installed recorder (a node started inside a test process, for
//! example) recording is a no-op and `/metrics` answers 404.

mod request_stats;

use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::Duration;

use edgecache::config::FailureKind;
use edgecache::http_cache::cache_status::{CacheStatus, Fwd};
use metrics_exporter_prometheus::{BuildError, PrometheusBuilder, PrometheusHandle};

use crate::state::EdgeState;

pub use request_stats::{CLASSES, REQUESTS, RequestStats};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder. Call once, from `main`.
pub fn install() -> Result<(), BuildError> {
    let handle = PrometheusBuilder::new().install_recorder()?;
    let _ = HANDLE.set(handle);
    describe();
    Ok(())
}

fn describe() {
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
        "edgecache_body_files",
        "Large stored bodies held in sealed memory files"
    );
    metrics::describe_counter!(
        "edgecache_body_file_fallbacks_total",
        "Large bodies kept on the heap because no memory file could be made"
    );
    metrics::describe_counter!(
        "edgecache_sendfile_bytes_total",
        metrics::Unit::Bytes,
        "Body bytes sent from memory files with sendfile(2)"
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

const HIT: usize = 0;
const STALE: usize = 1;
const MISS: usize = 2;
const PASS: usize = 3;
const ERROR: usize = 4;

/// The cache outcome of an answered request (an index into [`CLASSES`]),
/// from its status code and our `Cache-Status` entry (the last one).
pub fn cache_class(status: u16, cache_status: Option<&[u8]>) -> usize {
    let Some(value) = cache_status else {
        return if status >= 400 { ERROR } else { PASS };
    };
    let entry = match value.iter().rposition(|b| *b == b',') {
        Some(comma) => &value[comma + 1..],
        None => value,
    };
    // One pass over the entry's parameters, as bytes (the value is ASCII;
    // no character decoding).
    let (mut hit, mut fwd, mut detail) = (false, None, false);
    for param in entry.split(|b| *b == b';').skip(1).map(<[u8]>::trim_ascii) {
        match param {
            b"hit" => hit = true,
            b"fwd=stale" => fwd = Some(Forwarded::Stale),
            b"fwd=uri-miss" | b"fwd=vary-miss" | b"fwd=miss" => fwd = Some(Forwarded::Fill),
            p if p.starts_with(b"fwd=") => fwd = Some(Forwarded::Other),
            p if p.starts_with(b"detail=") => detail = true,
            _ => {}
        }
    }
    classify(status, hit, fwd, detail)
}

/// [`cache_class`] of an answer carrying `ours` as its last entry, read
/// from the entry before it is rendered (a hit then parses nothing).
pub fn status_class(status: u16, ours: &CacheStatus) -> usize {
    let fwd = ours.fwd.map(|f| match f {
        Fwd::Stale => Forwarded::Stale,
        Fwd::UriMiss | Fwd::VaryMiss | Fwd::Miss => Forwarded::Fill,
        _ => Forwarded::Other,
    });
    classify(status, ours.hit, fwd, ours.detail.is_some())
}

/// Why a request went forward, as far as the outcome classes care.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Forwarded {
    /// The stored copy was stale.
    Stale,
    /// Nothing was stored: the request filled the cache.
    Fill,
    /// Any other reason (method, bypass, request directives, ...).
    Other,
}

/// The outcome from what the entry says: served from the cache, why it
/// went forward, and whether it names a failure detail.
fn classify(status: u16, hit: bool, fwd: Option<Forwarded>, detail: bool) -> usize {
    let stale = fwd == Some(Forwarded::Stale);
    if hit {
        return if stale { STALE } else { HIT };
    }
    if matches!(status, 502..=504) && detail {
        return ERROR;
    }
    match fwd {
        Some(Forwarded::Stale | Forwarded::Fill) => MISS,
        Some(_) => PASS,
        None if status >= 400 => ERROR,
        None => PASS,
    }
}

/// Records one answered client request of outcome `class` (an index into
/// [`CLASSES`]).
pub fn request_done(status: u16, class: usize, elapsed: Duration) {
    REQUESTS.record(class, status, elapsed);
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
    let files = crate::body_file::stats();
    metrics::gauge!("edgecache_body_files").set(files.files as f64);
    metrics::counter!("edgecache_body_file_fallbacks_total").absolute(files.fallbacks);
    metrics::counter!("edgecache_sendfile_bytes_total").absolute(files.sent_bytes);
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
    let mut text = handle.render();
    REQUESTS.render(&mut text);
    Some(text)
}

#[cfg(test)]
mod tests {
    use edgecache::http_cache::cache_status::{CacheStatus, Fwd};

    use super::{CLASSES, cache_class, status_class};

    fn class(status: u16, cache_status: Option<&str>) -> &'static str {
        CLASSES[cache_class(status, cache_status.map(str::as_bytes))]
    }

    #[test]
    fn classes_follow_cache_status() {
        assert_eq!(class(200, Some("edgecache; hit; ttl=5")), "hit");
        assert_eq!(
            class(
                200,
                Some("edgecache; hit; fwd=stale; ttl=-3; detail=origin-unreachable")
            ),
            "stale"
        );
        assert_eq!(
            class(200, Some("edgecache; fwd=uri-miss; fwd-status=200; stored")),
            "miss"
        );
        assert_eq!(
            class(200, Some("origin; hit, edgecache; fwd=method")),
            "pass"
        );
        assert_eq!(
            class(
                504,
                Some("edgecache; fwd=uri-miss; detail=origin-unreachable")
            ),
            "error"
        );
        assert_eq!(class(421, None), "error");
        assert_eq!(class(200, None), "pass");
    }

    #[test]
    fn an_entry_classifies_alike_before_and_after_rendering() {
        let fwds = [
            None,
            Some(Fwd::UriMiss),
            Some(Fwd::VaryMiss),
            Some(Fwd::Miss),
            Some(Fwd::Request),
            Some(Fwd::Stale),
            Some(Fwd::Partial),
            Some(Fwd::Bypass),
            Some(Fwd::Method),
        ];
        for status in [200, 304, 404, 502, 503, 504] {
            for fwd in fwds {
                for hit in [false, true] {
                    for detail in [None, Some("origin-unreachable".to_string())] {
                        let ours = CacheStatus {
                            hit,
                            fwd,
                            ttl: Some(5),
                            detail,
                            ..CacheStatus::default()
                        };
                        let rendered = ours.render("edgecache");
                        assert_eq!(
                            status_class(status, &ours),
                            cache_class(status, Some(rendered.as_bytes())),
                            "{status} {rendered}"
                        );
                    }
                }
            }
        }
    }
}
