//! Unit tests (`conditional_tests`), compiled only under #[cfg(test)] from the parent module.

use super::*;
use http::HeaderValue;
use std::time::{Duration, UNIX_EPOCH};

fn date(secs: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs))
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

fn tags(s: &str) -> Vec<(bool, &str)> {
    EtagList::new(s.as_bytes())
        .map(|t| (t.weak, std::str::from_utf8(t.opaque).unwrap()))
        .collect()
}

#[test]
fn etag_lists() {
    assert_eq!(
        tags(r#" "a", W/"b" ,"c,d",,W/"", """#),
        vec![
            (false, "a"),
            (true, "b"),
            (false, "c,d"),
            (true, ""),
            (false, "")
        ]
    );
    assert_eq!(tags("bare, W/x"), vec![(false, "bare"), (true, "x")]);
    assert_eq!(tags(r#""a", "unterminated"#), vec![(false, "a")]);
    assert_eq!(tags("W/ ,"), vec![]);
    assert_eq!(
        EntityTag::parse(br#" W/"x" "#),
        Some(EntityTag {
            weak: true,
            opaque: b"x"
        })
    );
    assert_eq!(EntityTag::parse(br#""x", "y""#), None);
    assert_eq!(EntityTag::parse(b""), None);
}

#[test]
fn comparisons() {
    let s = EntityTag {
        weak: false,
        opaque: b"1",
    };
    let w = EntityTag {
        weak: true,
        opaque: b"1",
    };
    assert!(s.strong_eq(&s) && !s.strong_eq(&w) && !w.strong_eq(&w));
    assert!(s.weak_eq(&w) && w.weak_eq(&w));
    assert!(!s.weak_eq(&EntityTag {
        weak: false,
        opaque: b"2"
    }));
}

fn eval(method: Method, req: &[(&str, &str)], stored: &[(&str, &str)]) -> Precondition {
    evaluate(&method, &map(req), &map(stored))
}

use Precondition::*;

#[test]
fn if_none_match_weak_lists() {
    let st = [("etag", r#"W/"v2""#)];
    assert_eq!(
        eval(Method::GET, &[("if-none-match", r#""v1", "v2""#)], &st),
        NotModified
    );
    assert_eq!(
        eval(Method::HEAD, &[("if-none-match", r#"W/"v2""#)], &st),
        NotModified
    );
    assert_eq!(
        eval(Method::GET, &[("if-none-match", r#""v1", W/"v3""#)], &st),
        Proceed
    );
    let lines = [("if-none-match", r#""v1""#), ("if-none-match", r#"W/"v2""#)];
    assert_eq!(eval(Method::GET, &lines, &st), NotModified);
    assert_eq!(
        eval(Method::GET, &[("if-none-match", "*")], &st),
        NotModified
    );
    assert_eq!(
        eval(Method::GET, &[("if-none-match", "*")], &[]),
        NotModified
    );
    assert_eq!(
        eval(Method::GET, &[("if-none-match", r#""v2""#)], &[]),
        Proceed
    );
    assert_eq!(
        eval(Method::POST, &[("if-none-match", r#""v2""#)], &st),
        PreconditionFailed
    );
}

#[test]
fn if_none_match_takes_precedence_over_ims() {
    let st = [("etag", r#""v2""#), ("last-modified", &date(0))];
    let ims = date(100);
    let req = [
        ("if-none-match", r#""v1""#),
        ("if-modified-since", ims.as_str()),
    ];
    assert_eq!(eval(Method::GET, &req, &st), Proceed);
}

#[test]
fn if_modified_since() {
    let lm = date(100);
    let st = [("last-modified", lm.as_str())];
    assert_eq!(
        eval(Method::GET, &[("if-modified-since", &date(100))], &st),
        NotModified
    );
    assert_eq!(
        eval(Method::GET, &[("if-modified-since", &date(200))], &st),
        NotModified
    );
    assert_eq!(
        eval(Method::GET, &[("if-modified-since", &date(99))], &st),
        Proceed
    );
    assert_eq!(
        eval(Method::GET, &[("if-modified-since", "yesterday")], &st),
        Proceed
    );
    assert_eq!(
        eval(Method::POST, &[("if-modified-since", &date(200))], &st),
        Proceed
    );
    // Falls back to Date, then to nothing.
    let st = [("date", lm.as_str())];
    assert_eq!(
        eval(Method::GET, &[("if-modified-since", &date(150))], &st),
        NotModified
    );
    assert_eq!(
        eval(Method::GET, &[("if-modified-since", &date(50))], &st),
        Proceed
    );
    assert_eq!(
        eval(Method::GET, &[("if-modified-since", &date(150))], &[]),
        Proceed
    );
}

#[test]
fn if_match() {
    let st = [("etag", r#""v2""#), ("last-modified", &date(100))];
    assert_eq!(
        eval(Method::GET, &[("if-match", r#""v1", "v2""#)], &st),
        Proceed
    );
    assert_eq!(eval(Method::GET, &[("if-match", "*")], &st), Proceed);
    assert_eq!(
        eval(Method::GET, &[("if-match", r#""v1""#)], &st),
        PreconditionFailed
    );
    // Strong comparison only.
    assert_eq!(
        eval(Method::GET, &[("if-match", r#"W/"v2""#)], &st),
        PreconditionFailed
    );
    let weak = [("etag", r#"W/"v2""#)];
    assert_eq!(
        eval(Method::GET, &[("if-match", r#""v2""#)], &weak),
        PreconditionFailed
    );
    assert_eq!(
        eval(Method::GET, &[("if-match", r#""v2""#)], &[]),
        PreconditionFailed
    );
    // If-Match wins over If-Unmodified-Since.
    let req = [("if-match", r#""v2""#), ("if-unmodified-since", &date(0))];
    assert_eq!(eval(Method::GET, &req, &st), Proceed);
    // Then If-None-Match is evaluated.
    let req = [("if-match", r#""v2""#), ("if-none-match", r#""v2""#)];
    assert_eq!(eval(Method::GET, &req, &st), NotModified);
}

#[test]
fn if_unmodified_since() {
    let lm = date(100);
    let st = [("last-modified", lm.as_str())];
    let (same, before) = (date(100), date(99));
    assert_eq!(
        eval(Method::GET, &[("if-unmodified-since", &same)], &st),
        Proceed
    );
    assert_eq!(
        eval(Method::GET, &[("if-unmodified-since", &before)], &st),
        PreconditionFailed
    );
    assert_eq!(
        eval(Method::GET, &[("if-unmodified-since", "nope")], &st),
        Proceed
    );
    assert_eq!(
        eval(Method::GET, &[("if-unmodified-since", &before)], &[]),
        Proceed
    );
}

#[test]
fn no_conditions() {
    assert_eq!(eval(Method::GET, &[], &[("etag", r#""x""#)]), Proceed);
}

#[test]
fn not_modified_fields() {
    let st = map(&[
        ("cache-control", "max-age=60"),
        ("cache-control", "public"),
        ("content-location", "/a"),
        ("date", &date(0)),
        ("etag", r#""x""#),
        ("expires", &date(60)),
        ("vary", "accept-encoding"),
        ("last-modified", &date(0)),
        ("content-length", "10"),
        ("content-type", "text/plain"),
        ("set-cookie", "a=b"),
    ]);
    let h = not_modified_headers(&st);
    assert_eq!(h.len(), 8);
    assert_eq!(h.get_all(CACHE_CONTROL).iter().count(), 2);
    assert!(!h.contains_key("content-length") && !h.contains_key("content-type"));
    assert!(!h.contains_key("set-cookie"));
    assert_eq!(h.get(ETAG), st.get(ETAG));
}
