//! Unit tests (`cache_control_tests`), compiled only under #[cfg(test)] from the parent module.

use super::*;
use http::HeaderValue;
use http::header::{CACHE_CONTROL, SET_COOKIE};

fn cc(s: &str) -> CacheControl {
    CacheControl::parse(s)
}

#[test]
fn basic_directives() {
    let c = cc("public, max-age=60, s-maxage=120, must-revalidate, immutable");
    assert_eq!(c.max_age, Some(60));
    assert_eq!(c.s_maxage, Some(120));
    assert!(c.public && c.must_revalidate && c.immutable);
    assert!(!c.no_store && !c.invalid && !c.private && !c.no_cache);
}

#[test]
fn all_flags() {
    let c = cc(
        "no-store, no-cache, private, proxy-revalidate, must-understand, no-transform, \
         only-if-cached",
    );
    assert!(c.no_store && c.no_cache && c.private && c.proxy_revalidate);
    assert!(c.must_understand && c.no_transform && c.only_if_cached);
}

#[test]
fn case_insensitive_and_whitespace() {
    let c = cc("  MAX-AGE=30 ,\tNo-Store ,, PUBLIC\t");
    assert_eq!(c.max_age, Some(30));
    assert!(c.no_store && c.public);
    let c = cc("max-age = 30");
    assert_eq!(c.max_age, Some(30));
    assert!(!c.invalid);
}

#[test]
fn quoted_values() {
    let c = cc(r#"max-age="60", s-maxage="5""#);
    assert_eq!(c.max_age, Some(60));
    assert_eq!(c.s_maxage, Some(5));
    assert!(!c.invalid);
}

#[test]
fn quoted_field_lists_do_not_split() {
    let c = cc(r#"no-cache="Set-Cookie, X-Foo", max-age=10, private="X-Bar""#);
    assert!(!c.no_cache && !c.private);
    assert_eq!(
        c.no_cache_fields,
        vec![SET_COOKIE, HeaderName::from_static("x-foo")]
    );
    assert_eq!(c.private_fields, vec![HeaderName::from_static("x-bar")]);
    assert_eq!(c.max_age, Some(10));
}

#[test]
fn token_field_list_and_unusable_lists() {
    let c = cc("no-cache=set-cookie");
    assert!(!c.no_cache);
    assert_eq!(c.no_cache_fields, vec![SET_COOKIE]);
    // Empty or unterminated lists fall back to the unqualified meaning.
    assert!(cc(r#"no-cache="""#).no_cache);
    assert!(cc(r#"private="X-Foo"#).private);
    // Escapes are removed.
    let c = cc(r#"private="X-\Foo""#);
    assert_eq!(c.private_fields, vec![HeaderName::from_static("x-foo")]);
    // Duplicate names are kept once.
    let c = cc(r#"no-cache="a, A", no-cache=a"#);
    assert_eq!(c.no_cache_fields, vec![HeaderName::from_static("a")]);
}

#[test]
fn delta_overflow_clamps() {
    assert_eq!(
        cc("max-age=99999999999999999999").max_age,
        Some(2_147_483_648)
    );
    assert_eq!(cc("s-maxage=2147483649").s_maxage, Some(2_147_483_648));
    assert!(!cc("max-age=99999999999999999999").invalid);
}

#[test]
fn invalid_delta_is_stale() {
    for v in [
        "max-age=abc",
        "max-age=-1",
        "max-age=",
        "max-age",
        "max-age=1.5",
        r#"max-age="6\0""#,
        "max-age=60 junk",
        r#"max-age="60"#,
    ] {
        let c = cc(v);
        assert!(c.invalid, "{v}");
        assert_eq!(c.max_age, Some(0), "{v}");
    }
    let c = cc("s-maxage=x, max-age=60");
    assert!(c.invalid);
    assert_eq!(c.s_maxage, Some(0));
    assert_eq!(c.max_age, Some(60));
}

#[test]
fn duplicates() {
    let c = cc("max-age=60, max-age=60");
    assert_eq!(c.max_age, Some(60));
    assert!(!c.invalid);
    let c = cc("max-age=60, max-age=120");
    assert_eq!(c.max_age, Some(0));
    assert!(c.invalid);
    let c = cc("max-age=60, max-age=120, max-age=60");
    assert_eq!(c.max_age, Some(0));
    let c = cc("max-age=abc, max-age=60");
    assert_eq!(c.max_age, Some(0));
    let c = cc("s-maxage=1, s-maxage=2");
    assert_eq!(c.s_maxage, Some(0));
    assert!(c.invalid);
    // Extensions: conservative choice, not invalid.
    let c = cc(
        "stale-while-revalidate=30, stale-while-revalidate=10, stale-if-error=5, \
         stale-if-error=50",
    );
    assert_eq!(c.stale_while_revalidate, Some(10));
    assert_eq!(c.stale_if_error, Some(5));
    assert!(!c.invalid);
    assert_eq!(cc("min-fresh=5, min-fresh=9").min_fresh, Some(9));
}

#[test]
fn request_directives() {
    assert_eq!(cc("max-stale").max_stale, Some(None));
    assert_eq!(cc("max-stale=30").max_stale, Some(Some(30)));
    assert_eq!(cc("max-stale, max-stale=30").max_stale, Some(Some(30)));
    assert_eq!(cc("max-stale=30, max-stale").max_stale, Some(Some(30)));
    assert_eq!(cc("max-stale=30, max-stale=10").max_stale, Some(Some(10)));
    assert_eq!(cc("max-stale=abc").max_stale, None);
    assert_eq!(cc("min-fresh=abc").min_fresh, None);
    assert_eq!(cc("min-fresh=20").min_fresh, Some(20));
    assert_eq!(cc("stale-if-error=-3").stale_if_error, None);
}

#[test]
fn unknown_ignored_and_commas_in_quotes() {
    let c = cc(r#"foo="a, max-age=5, no-store", bar, max-age=7, community="UCI""#);
    assert_eq!(c.max_age, Some(7));
    assert!(!c.no_store);
    let c = cc(r#"ext="a\"b, no-store", public"#);
    assert!(!c.no_store);
    assert!(c.public);
    // A very long unknown name is skipped.
    let c = cc("this-is-a-very-long-extension-directive-name=1, public");
    assert!(c.public);
}

#[test]
fn flags_with_arguments_still_count() {
    assert!(cc("no-store=1").no_store);
    assert!(cc("public junk").public);
}

#[test]
fn from_headers_combines_lines() {
    let mut h = HeaderMap::new();
    assert_eq!(CacheControl::from_headers(&h, &CACHE_CONTROL), None);
    h.append(CACHE_CONTROL, HeaderValue::from_static("max-age=60"));
    h.append(CACHE_CONTROL, HeaderValue::from_static("public"));
    let c = CacheControl::from_headers(&h, &CACHE_CONTROL).unwrap();
    assert_eq!(c.max_age, Some(60));
    assert!(c.public);
    h.append(CACHE_CONTROL, HeaderValue::from_static("max-age=30"));
    let c = CacheControl::from_headers(&h, &CACHE_CONTROL).unwrap();
    assert!(c.invalid);
    assert_eq!(c.max_age, Some(0));
}

#[test]
fn from_headers_none_without_recognised_directive() {
    let mut h = HeaderMap::new();
    h.insert(CACHE_CONTROL, HeaderValue::from_static(" , "));
    assert_eq!(CacheControl::from_headers(&h, &CACHE_CONTROL), None);
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static(r#"content="ESI/1.0""#),
    );
    assert_eq!(CacheControl::from_headers(&h, &CACHE_CONTROL), None);
    h.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=bad"));
    assert!(
        CacheControl::from_headers(&h, &CACHE_CONTROL)
            .unwrap()
            .invalid
    );
}

#[test]
fn merge_counts() {
    let mut c = CacheControl::default();
    assert_eq!(c.merge(b"foo, max-age=1, no-store"), 2);
    assert_eq!(c.merge(b""), 0);
    assert_eq!(c.merge(b"\xff\xfe, public"), 1);
    assert!(c.public);
}
