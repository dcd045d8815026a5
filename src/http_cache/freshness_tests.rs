//! Unit tests (`freshness_tests`), compiled only under #[cfg(test)] from the parent module.

use super::*;
use crate::http_cache::directives::default_targets;
use http::{HeaderName, HeaderValue};
use std::time::UNIX_EPOCH;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn date(secs: u64) -> String {
    httpdate::fmt_http_date(t(secs))
}

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn lifetime_opts(status: u16, pairs: &[(&str, &str)], opts: &StoreOptions) -> u64 {
    let h = map(pairs);
    let d = Directives::from_response(&h, &default_targets());
    freshness_lifetime(StatusCode::from_u16(status).unwrap(), &h, &d, t(1000), opts).as_secs()
}

fn lifetime(status: u16, pairs: &[(&str, &str)]) -> u64 {
    lifetime_opts(status, pairs, &StoreOptions::default())
}

const S: Duration = Duration::from_secs(1);

#[test]
fn directive_order() {
    assert_eq!(
        lifetime(200, &[("cache-control", "max-age=60, s-maxage=10")]),
        10
    );
    assert_eq!(lifetime(200, &[("cache-control", "max-age=60")]), 60);
    let e = date(2000);
    assert_eq!(
        lifetime(200, &[("cache-control", "max-age=60"), ("expires", &e)]),
        60
    );
    assert_eq!(
        lifetime(200, &[("cache-control", "max-age=60, max-age=70")]),
        0
    );
    assert_eq!(
        lifetime(200, &[("cache-control", "s-maxage=x, max-age=70")]),
        0
    );
}

#[test]
fn cdn_cache_control_lifetime() {
    let e = date(5000);
    let h = [
        ("cache-control", "no-store"),
        ("cdn-cache-control", "max-age=60"),
        ("expires", e.as_str()),
    ];
    assert_eq!(lifetime(200, &h), 60);
    // Expires is ignored under a targeted field: heuristic then applies.
    let h = [("cdn-cache-control", "public"), ("expires", e.as_str())];
    assert_eq!(lifetime(200, &h), 0);
    let h = [
        ("surrogate-control", "max-age=120"),
        ("cache-control", "max-age=5"),
    ];
    assert_eq!(lifetime(200, &h), 120);
}

#[test]
fn expires() {
    let (d, e) = (date(100), date(400));
    assert_eq!(lifetime(302, &[("date", &d), ("expires", &e)]), 300);
    // Expires in the past.
    assert_eq!(lifetime(200, &[("date", &e), ("expires", &d)]), 0);
    // Invalid Expires: 0, no heuristic.
    let lm = date(0);
    assert_eq!(
        lifetime(200, &[("expires", "0"), ("last-modified", &lm)]),
        0
    );
    assert_eq!(lifetime(200, &[("expires", "tomorrow")]), 0);
    // Two Expires lines: invalid.
    assert_eq!(lifetime(200, &[("expires", &e), ("expires", &e)]), 0);
}

#[test]
fn expires_without_date_uses_response_time() {
    let e = date(1600);
    assert_eq!(lifetime(200, &[("expires", &e)]), 600);
    assert_eq!(lifetime(200, &[("expires", &e), ("date", "garbage")]), 600);
}

#[test]
fn heuristic() {
    let (lm, d) = (date(0), date(1000));
    assert_eq!(lifetime(200, &[("last-modified", &lm), ("date", &d)]), 100);
    // Without Date, response_time (t(1000)) stands in.
    assert_eq!(lifetime(404, &[("last-modified", &lm)]), 100);
    // Capped.
    let old = httpdate::fmt_http_date(UNIX_EPOCH);
    assert_eq!(lifetime(200, &[("last-modified", &old)]), 86_400);
    // Not heuristically cacheable, unless public.
    assert_eq!(lifetime(302, &[("last-modified", &lm)]), 0);
    assert_eq!(
        lifetime(302, &[("last-modified", &lm), ("cache-control", "public")]),
        100
    );
    // Last-Modified after Date.
    let future = date(5000);
    assert_eq!(
        lifetime(200, &[("last-modified", &future), ("date", &d)]),
        0
    );
}

#[test]
fn heuristic_default_ttl() {
    let mut o = StoreOptions::default();
    assert_eq!(lifetime_opts(200, &[], &o), 0);
    o.default_ttl = Some(Duration::from_secs(30));
    assert_eq!(lifetime_opts(200, &[], &o), 30);
    assert_eq!(lifetime_opts(500, &[], &o), 0);
    o.heuristic_fraction = f64::NAN;
    let lm = date(0);
    assert_eq!(lifetime_opts(200, &[("last-modified", &lm)], &o), 0);
}

#[test]
fn age_arithmetic() {
    let d = date(100);
    // Apparent age 10 vs Age 3 + delay 2.
    let h = map(&[("date", &d), ("age", "3")]);
    assert_eq!(corrected_initial_age(&h, t(108), t(110)), 10 * S);
    // Age dominates.
    let h = map(&[("date", &d), ("age", "30")]);
    assert_eq!(corrected_initial_age(&h, t(108), t(110)), 32 * S);
    // No Date, no Age: just the response delay.
    assert_eq!(
        corrected_initial_age(&HeaderMap::new(), t(108), t(110)),
        2 * S
    );
}

#[test]
fn age_with_clock_skew() {
    // Date in the future: apparent age 0, not negative.
    let d = date(500);
    let h = map(&[("date", &d), ("age", "5")]);
    assert_eq!(corrected_initial_age(&h, t(99), t(100)), 6 * S);
    // Response time before request time: delay 0.
    let h = map(&[("age", "5")]);
    assert_eq!(corrected_initial_age(&h, t(101), t(100)), 5 * S);
}

#[test]
fn age_header_parsing() {
    assert_eq!(age_value(&map(&[("age", " 42 ")])), Some(42 * S));
    assert_eq!(
        age_value(&map(&[("age", "99999999999999999999")])),
        Some(Duration::from_secs(2_147_483_648))
    );
    for bad in ["-5", "abc", "", "1.5"] {
        assert_eq!(age_value(&map(&[("age", bad)])), None, "{bad}");
    }
    let h = map(&[("age", "bogus")]);
    assert_eq!(corrected_initial_age(&h, t(100), t(100)), Duration::ZERO);
}

#[test]
fn current_age_and_ttl() {
    assert_eq!(current_age(10 * S, t(100), t(150)), 60 * S);
    assert_eq!(current_age(10 * S, t(100), t(90)), 10 * S);
    assert_eq!(ttl_seconds(18 * S, 60 * S), 42);
    assert_eq!(ttl_seconds(72 * S, 60 * S), -12);
    assert_eq!(ttl_seconds(Duration::ZERO, Duration::ZERO), 0);
}

fn perms(cc: &str) -> StalePermissions {
    let h = map(&[("cache-control", cc)]);
    stale_permissions(&Directives::from_response(&h, &[]))
}

#[test]
fn stale_permission_rules() {
    let p = perms("max-age=60, stale-while-revalidate=30, stale-if-error=600");
    assert!(!p.forbidden);
    assert!(p.while_revalidate(30 * S) && !p.while_revalidate(31 * S));
    assert!(p.if_error(600 * S) && !p.if_error(601 * S));
    for cc in [
        "s-maxage=60, stale-if-error=600",
        "max-age=60, must-revalidate, stale-if-error=600",
        "max-age=60, proxy-revalidate, stale-while-revalidate=9",
        "no-cache, stale-if-error=600",
    ] {
        let p = perms(cc);
        assert!(p.forbidden, "{cc}");
        assert_eq!(p.stale_if_error, None);
        assert_eq!(p.stale_while_revalidate, None);
        assert!(!p.if_error(Duration::ZERO) && !p.while_revalidate(Duration::ZERO));
    }
    assert!(!perms(r#"no-cache="set-cookie""#).forbidden);
    let p = perms("max-age=1");
    assert!(!p.if_error(Duration::ZERO));
    let h = map(&[("cache-control", "no-cache")]);
    assert!(always_revalidate(&Directives::from_response(&h, &[])));
}

fn req(cc: &str) -> CacheControl {
    CacheControl::parse(cc)
}

#[test]
fn request_freshness() {
    use RequestFreshness::*;
    assert_eq!(request_allows(None, 10 * S, 60 * S), Fresh);
    assert_eq!(request_allows(None, 60 * S, 60 * S), Stale);
    assert_eq!(
        request_allows(Some(&req("no-cache")), S, 60 * S),
        MustRevalidate
    );
    assert_eq!(
        request_allows(Some(&req("max-age=5")), 6 * S, 60 * S),
        MustRevalidate
    );
    assert_eq!(
        request_allows(Some(&req("max-age=5")), 5 * S, 60 * S),
        Fresh
    );
    assert_eq!(
        request_allows(Some(&req("max-age=100")), 70 * S, 60 * S),
        Stale
    );
    assert_eq!(
        request_allows(Some(&req("min-fresh=20")), 50 * S, 60 * S),
        MustRevalidate
    );
    assert_eq!(
        request_allows(Some(&req("min-fresh=10")), 50 * S, 60 * S),
        Fresh
    );
    assert_eq!(
        request_allows(Some(&req("min-fresh=1")), 70 * S, 60 * S),
        MustRevalidate
    );
    assert_eq!(
        request_allows(Some(&req("max-stale")), 999 * S, 60 * S),
        Fresh
    );
    assert_eq!(
        request_allows(Some(&req("max-stale=10")), 70 * S, 60 * S),
        Fresh
    );
    assert_eq!(
        request_allows(Some(&req("max-stale=10")), 71 * S, 60 * S),
        Stale
    );
    assert_eq!(
        request_allows(Some(&req("max-age=100, max-stale=20")), 75 * S, 60 * S),
        Fresh
    );
    assert_eq!(request_allows(Some(&req("foo")), 75 * S, 60 * S), Stale);
}
