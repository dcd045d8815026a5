//! Micro-benchmarks of the hit path's pieces: cache key building,
//! Cache-Control parsing, freshness, Cache-Status rendering and header
//! writing. Run: `cargo bench --bench hot_path` (`-- --quick` for a smoke run).

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use edgecache::cache_key::CacheKey;
use edgecache::http_cache::cache_control::CacheControl;
use edgecache::http_cache::cache_status::{CacheStatus, Fwd};
use edgecache::http_cache::directives::{Directives, default_targets};
use edgecache::http_cache::freshness::freshness_lifetime;
use edgecache::http_cache::storable::StoreOptions;
use http::StatusCode;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Cache-Control values as origins send them.
const CACHE_CONTROLS: [(&str, &str); 4] = [
    ("simple", "public, max-age=3600"),
    ("private", "private, no-cache, no-store, must-revalidate"),
    (
        "cdn",
        "public, max-age=60, s-maxage=86400, stale-while-revalidate=30, stale-if-error=86400",
    ),
    (
        "quoted",
        "max-age=0, no-cache=\"Set-Cookie, X-Trace\", proxy-revalidate, immutable",
    ),
];

fn cache_key(c: &mut Criterion) {
    let mut g = c.benchmark_group("cache_key");
    g.bench_function("plain", |b| {
        b.iter(|| {
            CacheKey::new(
                black_box("http"),
                black_box("cdn.example.com"),
                black_box("/assets/app.3f9a1c.js"),
            )
        })
    });
    g.bench_function("mixed_case_port_query", |b| {
        b.iter(|| {
            CacheKey::new(
                black_box("https"),
                black_box("CDN.Example.COM:443"),
                black_box("/img/hero.webp?w=1200&q=80&v=20260101"),
            )
        })
    });
    g.finish();
}

fn cache_control(c: &mut Criterion) {
    let mut g = c.benchmark_group("cache_control_parse");
    for (name, value) in CACHE_CONTROLS {
        g.bench_function(name, |b| b.iter(|| CacheControl::parse(black_box(value))));
    }
    g.finish();
}

/// A typical origin response head.
fn origin_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    let now = SystemTime::now();
    h.insert(
        header::DATE,
        HeaderValue::from_str(&httpdate::fmt_http_date(now)).expect("date"),
    );
    h.insert(
        header::LAST_MODIFIED,
        HeaderValue::from_static("Thu, 01 Jan 2026 00:00:00 GMT"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=600, stale-while-revalidate=30"),
    );
    h.insert(header::ETAG, HeaderValue::from_static("\"5f2a-61c0e9\""));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("24362"));
    h
}

fn freshness(c: &mut Criterion) {
    let mut g = c.benchmark_group("freshness");
    let targets = default_targets();
    let opts = StoreOptions::default();
    let now = SystemTime::now();
    let with_max_age = origin_headers();
    let mut heuristic = origin_headers();
    heuristic.remove(header::CACHE_CONTROL);
    let d = Directives::from_response(&with_max_age, &targets);
    g.bench_function("lifetime_max_age", |b| {
        b.iter(|| {
            freshness_lifetime(
                StatusCode::OK,
                black_box(&with_max_age),
                black_box(&d),
                now,
                &opts,
            )
        })
    });
    let dh = Directives::from_response(&heuristic, &targets);
    g.bench_function("lifetime_heuristic", |b| {
        b.iter(|| freshness_lifetime(StatusCode::OK, black_box(&heuristic), &dh, now, &opts))
    });
    g.bench_function("directives_and_lifetime", |b| {
        b.iter(|| {
            let d = Directives::from_response(black_box(&with_max_age), &targets);
            freshness_lifetime(StatusCode::OK, &with_max_age, &d, now, &opts)
        })
    });
    g.finish();
}

fn cache_status(c: &mut Criterion) {
    let mut g = c.benchmark_group("cache_status_render");
    let hit = CacheStatus {
        hit: true,
        ttl: Some(42),
        ..CacheStatus::default()
    };
    g.bench_function("hit", |b| b.iter(|| black_box(&hit).render("edgecache")));
    let stale = CacheStatus {
        hit: true,
        fwd: Some(Fwd::Stale),
        ttl: Some(-17),
        detail: Some("origin-unreachable".into()),
        ..CacheStatus::default()
    };
    g.bench_function("stale", |b| {
        b.iter(|| black_box(&stale).render("edgecache"))
    });
    g.finish();
}

fn header_write(c: &mut Criterion) {
    let mut g = c.benchmark_group("headers");
    let mut stored = origin_headers();
    stored.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    stored.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    stored.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    stored.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=63072000"),
    );
    assert_eq!(stored.len(), 10);
    g.bench_function("clone_10_fields", |b| b.iter(|| black_box(&stored).clone()));
    let hit = CacheStatus {
        hit: true,
        ttl: Some(42),
        ..CacheStatus::default()
    };
    g.bench_function("clone_10_fields_add_age_and_status", |b| {
        b.iter(|| {
            let mut h = black_box(&stored).clone();
            h.insert(header::AGE, HeaderValue::from(17u32));
            if let Ok(v) = HeaderValue::from_str(&hit.render("edgecache")) {
                h.insert(HeaderName::from_static("cache-status"), v);
            }
            h
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = cache_key, cache_control, freshness, cache_status, header_write
}
criterion_main!(benches);
