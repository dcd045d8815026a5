//! Unit tests (`invalidate_tests`), compiled only under #[cfg(test)] from the parent module.

use super::*;
use http::{HeaderName, HeaderValue};

fn targets(uri: &str, status: u16, resp: &[(&str, &str)]) -> Vec<String> {
    let mut h = HeaderMap::new();
    for (k, v) in resp {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    invalidation_targets(
        &uri.parse().unwrap(),
        "Example.com",
        StatusCode::from_u16(status).unwrap(),
        &h,
    )
}

#[test]
fn unsafe_methods() {
    assert!(is_unsafe_method(&Method::POST));
    assert!(is_unsafe_method(&Method::PUT));
    assert!(is_unsafe_method(&Method::DELETE));
    assert!(is_unsafe_method(&Method::PATCH));
    assert!(!is_unsafe_method(&Method::GET));
    assert!(!is_unsafe_method(&Method::HEAD));
    assert!(!is_unsafe_method(&Method::OPTIONS));
}

#[test]
fn errors_invalidate_nothing() {
    assert!(targets("/a", 404, &[]).is_empty());
    assert!(targets("/a", 500, &[("location", "/b")]).is_empty());
    assert!(targets("/a", 101, &[]).is_empty());
}

#[test]
fn request_target() {
    assert_eq!(targets("/a/b?x=1", 200, &[]), vec!["/a/b?x=1"]);
    assert_eq!(targets("http://example.com", 204, &[]), vec!["/"]);
    assert_eq!(targets("*", 200, &[]), vec!["/"]);
    assert_eq!(targets("http://example.com/p?q", 303, &[]), vec!["/p?q"]);
}

#[test]
fn same_authority_only() {
    let r = targets(
        "/items",
        201,
        &[
            ("location", "https://EXAMPLE.com/items/7#frag"),
            ("content-location", "http://other.example/items/7"),
        ],
    );
    assert_eq!(r, vec!["/items", "/items/7"]);
    assert_eq!(
        targets("/a", 200, &[("location", "http://example.com:8080/b")]),
        vec!["/a"]
    );
    assert_eq!(
        targets("/a", 200, &[("location", "http://example.com:80/b")]),
        vec!["/a", "/b"]
    );
    assert_eq!(
        targets("/a", 200, &[("location", "//example.com?x")]),
        vec!["/a", "/?x"]
    );
    assert_eq!(
        targets("/a", 200, &[("location", "//user@example.com/u")]),
        vec!["/a", "/u"]
    );
    assert_eq!(
        targets("/a", 200, &[("location", "//evil.com/b")]),
        vec!["/a"]
    );
    assert_eq!(
        targets("/a", 200, &[("location", "ftp://example.com/b")]),
        vec!["/a"]
    );
    assert_eq!(
        targets("/a", 200, &[("location", "mailto:x@example.com")]),
        vec!["/a"]
    );
    assert_eq!(targets("/a", 200, &[("location", "http:b")]), vec!["/a"]);
}

#[test]
fn relative_references() {
    assert_eq!(
        targets("/dir/page?x", 200, &[("location", "other?y=1")]),
        vec!["/dir/page?x", "/dir/other?y=1"]
    );
    assert_eq!(
        targets("/dir/page", 200, &[("location", "?y")]),
        vec!["/dir/page", "/dir/page?y"]
    );
    assert_eq!(
        targets("/a/b/c", 200, &[("content-location", "../d/./e")]),
        vec!["/a/b/c", "/a/d/e"]
    );
    assert_eq!(
        targets("/a/b/c", 200, &[("location", "../../../../x")]),
        vec!["/a/b/c", "/x"]
    );
    assert_eq!(
        targets("/a/b/c", 200, &[("location", "..")]),
        vec!["/a/b/c", "/a/"]
    );
    assert_eq!(targets("/a", 200, &[("location", "/a")]), vec!["/a"]);
    assert_eq!(targets("/a", 200, &[("location", "#top")]), vec!["/a"]);
    assert_eq!(
        targets("/a", 200, &[("location", "/has space")]),
        vec!["/a"]
    );
}

#[test]
fn helpers() {
    assert_eq!(remove_dot_segments("/"), "/");
    assert_eq!(remove_dot_segments("/.."), "/");
    assert_eq!(remove_dot_segments("/a/./b/../c/"), "/a/c/");
    assert_eq!(split_host_port("[::1]:8080"), ("[::1]", Some("8080")));
    assert_eq!(split_host_port("[::1]"), ("[::1]", None));
    assert_eq!(split_host_port("h:"), ("h", None));
    assert!(same_authority("h:443", "H", Some("https")));
    assert!(!same_authority("h:443", "h", Some("http")));
    assert!(same_authority("h", "h:80", None));
    assert!(!same_authority("", "", None));
    assert_eq!(split_scheme("https://x"), Some(("https", "//x")));
    assert_eq!(split_scheme("a/b:c"), None);
    assert_eq!(split_scheme("1x:y"), None);
}
