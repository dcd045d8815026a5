//! Unit tests (`storable_tests`), compiled only under #[cfg(test)] from the parent module.

use super::*;
use crate::http_cache::directives::default_targets;
use http::{HeaderName, HeaderValue};

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

fn check_with(
    method: Method,
    req: &[(&str, &str)],
    status: u16,
    resp: &[(&str, &str)],
    opts: &StoreOptions,
) -> Result<(), NotStorable> {
    let req = map(req);
    let resp = map(resp);
    let req_cc = crate::http_cache::directives::request_cache_control(&req);
    let d = Directives::from_response(&resp, &default_targets());
    check_storable(
        &method,
        &req,
        req_cc.as_ref(),
        StatusCode::from_u16(status).unwrap(),
        &resp,
        &d,
        opts,
    )
}

fn check(req: &[(&str, &str)], status: u16, resp: &[(&str, &str)]) -> Result<(), NotStorable> {
    check_with(Method::GET, req, status, resp, &StoreOptions::default())
}

const MAX60: &[(&str, &str)] = &[("cache-control", "max-age=60")];

#[test]
fn defaults() {
    let o = StoreOptions::default();
    assert_eq!(o.set_cookie, SetCookiePolicy::Bypass);
    assert_eq!(o.heuristic_fraction, 0.1);
    assert_eq!(o.heuristic_max, Duration::from_secs(86_400));
    assert_eq!(o.default_ttl, None);
}

#[test]
fn methods() {
    let o = StoreOptions::default();
    assert_eq!(check_with(Method::GET, &[], 200, MAX60, &o), Ok(()));
    assert_eq!(check_with(Method::HEAD, &[], 200, MAX60, &o), Ok(()));
    for m in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
        assert_eq!(check_with(m, &[], 200, MAX60, &o), Err(NotStorable::Method));
    }
}

#[test]
fn statuses() {
    assert_eq!(check(&[], 103, MAX60), Err(NotStorable::Status));
    assert_eq!(check(&[], 206, MAX60), Err(NotStorable::Status));
    assert_eq!(check(&[], 304, MAX60), Err(NotStorable::Status));
    assert_eq!(check(&[], 302, MAX60), Ok(()));
    assert_eq!(check(&[], 500, MAX60), Ok(()));
    // Not heuristically cacheable without explicit freshness.
    assert_eq!(check(&[], 302, &[]), Err(NotStorable::NoExplicitFreshness));
    assert_eq!(check(&[], 503, &[]), Err(NotStorable::NoExplicitFreshness));
    for s in HEURISTICALLY_CACHEABLE {
        assert_eq!(check(&[], *s, &[]), Ok(()), "{s}");
    }
}

#[test]
fn explicit_freshness_or_public() {
    assert_eq!(check(&[], 302, &[("expires", "0")]), Ok(()));
    assert_eq!(check(&[], 302, &[("cache-control", "s-maxage=5")]), Ok(()));
    assert_eq!(check(&[], 302, &[("cache-control", "public")]), Ok(()));
    assert_eq!(
        check(&[], 302, &[("cache-control", "max-age=oops")]),
        Ok(())
    );
    // Expires is ignored under a targeted field.
    assert_eq!(
        check(
            &[],
            302,
            &[("expires", "0"), ("cdn-cache-control", "no-cache")]
        ),
        Err(NotStorable::NoExplicitFreshness)
    );
}

#[test]
fn no_store() {
    assert_eq!(
        check(&[("cache-control", "no-store")], 200, MAX60),
        Err(NotStorable::RequestNoStore)
    );
    assert_eq!(
        check(&[], 200, &[("cache-control", "max-age=60, no-store")]),
        Err(NotStorable::NoStore)
    );
}

#[test]
fn must_understand() {
    let cc = [("cache-control", "must-understand, no-store, max-age=60")];
    assert_eq!(check(&[], 200, &cc), Ok(()));
    assert_eq!(check(&[], 299, &cc), Err(NotStorable::Status));
}

#[test]
fn private() {
    assert_eq!(
        check(&[], 200, &[("cache-control", "private, max-age=60")]),
        Err(NotStorable::Private)
    );
    assert_eq!(
        check(
            &[],
            200,
            &[("cache-control", r#"private="x-user", max-age=60"#)]
        ),
        Ok(())
    );
}

#[test]
fn cdn_cache_control_overrides_no_store() {
    let resp = [
        ("cache-control", "no-store, private"),
        ("cdn-cache-control", "max-age=60"),
    ];
    assert_eq!(check(&[], 200, &resp), Ok(()));
    let resp = [
        ("cache-control", "max-age=600"),
        ("cdn-cache-control", "no-store"),
    ];
    assert_eq!(check(&[], 200, &resp), Err(NotStorable::NoStore));
}

#[test]
fn authorization() {
    let auth = [("authorization", "Bearer x")];
    assert_eq!(check(&auth, 200, MAX60), Err(NotStorable::Authorization));
    for cc in ["public", "must-revalidate, max-age=5", "s-maxage=5"] {
        assert_eq!(check(&auth, 200, &[("cache-control", cc)]), Ok(()), "{cc}");
    }
}

#[test]
fn set_cookie_policies() {
    let resp = [("cache-control", "max-age=60"), ("set-cookie", "a=b")];
    let mut o = StoreOptions::default();
    assert_eq!(
        check_with(Method::GET, &[], 200, &resp, &o),
        Err(NotStorable::SetCookie)
    );
    o.set_cookie = SetCookiePolicy::Strip;
    assert_eq!(check_with(Method::GET, &[], 200, &resp, &o), Ok(()));
    o.set_cookie = SetCookiePolicy::Store;
    assert_eq!(check_with(Method::GET, &[], 200, &resp, &o), Ok(()));
}

#[test]
fn vary_star() {
    assert_eq!(
        check(
            &[],
            200,
            &[("cache-control", "max-age=60"), ("vary", "accept, *")]
        ),
        Err(NotStorable::VaryStar)
    );
    assert_eq!(
        check(
            &[],
            200,
            &[("cache-control", "max-age=60"), ("vary", "accept")]
        ),
        Ok(())
    );
}

#[test]
fn strip_fields() {
    let mut resp = map(&[
        (
            "cache-control",
            r#"no-cache="x-a", private="X-B", max-age=60"#,
        ),
        ("x-a", "1"),
        ("x-b", "2"),
        ("x-c", "3"),
        ("set-cookie", "a=b"),
    ]);
    let d = Directives::from_response(&resp, &[]);
    strip_qualified_fields(&mut resp, &d, &StoreOptions::default());
    assert!(!resp.contains_key("x-a") && !resp.contains_key("x-b"));
    assert!(resp.contains_key("x-c") && resp.contains_key(SET_COOKIE));
    let o = StoreOptions {
        set_cookie: SetCookiePolicy::Strip,
        ..StoreOptions::default()
    };
    strip_qualified_fields(&mut resp, &d, &o);
    assert!(!resp.contains_key(SET_COOKIE));
}

#[test]
fn reasons_and_messages() {
    assert_eq!(NotStorable::NoStore.reason(), "no-store");
    assert_eq!(NotStorable::VaryStar.reason(), "vary-star");
    assert_eq!(NotStorable::Private.to_string(), "response is private");
    for e in [
        NotStorable::Method,
        NotStorable::Status,
        NotStorable::RequestNoStore,
        NotStorable::Authorization,
        NotStorable::SetCookie,
        NotStorable::NoExplicitFreshness,
    ] {
        assert!(
            e.reason()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'-')
        );
        assert!(!e.to_string().is_empty());
    }
}
