//! The effective response directives: a targeted field (RFC 9213), such as
//! CDN-Cache-Control, when present; otherwise Cache-Control (and Pragma).

use http::header::{CACHE_CONTROL, PRAGMA};
use http::{HeaderMap, HeaderName};

use super::cache_control::CacheControl;
use super::util::list_elements;

/// Targeted fields an edge obeys by default, most specific first.
pub const DEFAULT_TARGETED_FIELDS: &[&str] = &[
    "edgecache-cache-control",
    "cdn-cache-control",
    "surrogate-control",
];

/// [`DEFAULT_TARGETED_FIELDS`] as header names.
pub fn default_targets() -> Vec<HeaderName> {
    DEFAULT_TARGETED_FIELDS
        .iter()
        .map(|s| HeaderName::from_static(s))
        .collect()
}

/// The cache directives that govern a response at this cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    /// The directives themselves.
    pub cc: CacheControl,
    /// They come from a targeted field (RFC 9213): Cache-Control and Expires
    /// are then ignored.
    pub targeted: bool,
    /// The field they were read from (a targeted field, Cache-Control or
    /// Pragma); `None` when the response carries no directive at all.
    pub source: Option<HeaderName>,
}

/// `Pragma: no-cache` is present (any line, case-insensitive).
pub fn pragma_no_cache(headers: &HeaderMap) -> bool {
    list_elements(headers, &PRAGMA).any(|e| e.eq_ignore_ascii_case(b"no-cache"))
}

/// The request's Cache-Control, with `Pragma: no-cache` read as
/// `Cache-Control: no-cache` when Cache-Control is absent (RFC 9111 §5.4).
pub fn request_cache_control(headers: &HeaderMap) -> Option<CacheControl> {
    if headers.contains_key(CACHE_CONTROL) {
        return CacheControl::from_headers(headers, &CACHE_CONTROL);
    }
    pragma_no_cache(headers).then(|| CacheControl {
        no_cache: true,
        ..CacheControl::default()
    })
}

impl Directives {
    /// Selects the directives of a response.
    ///
    /// The first field of `targets` (in list order) that parses to at least
    /// one recognised directive and no malformed freshness directive is used
    /// (RFC 9213 §2.1: a field with a parse error is ignored). Otherwise
    /// Cache-Control applies, or, when it is absent, `Pragma: no-cache` is
    /// read as `no-cache`.
    pub fn from_response(headers: &HeaderMap, targets: &[HeaderName]) -> Directives {
        for t in targets {
            if let Some(cc) = CacheControl::from_headers(headers, t)
                && !cc.invalid
            {
                return Directives {
                    cc,
                    targeted: true,
                    source: Some(t.clone()),
                };
            }
        }
        if headers.contains_key(CACHE_CONTROL) {
            let cc = CacheControl::from_headers(headers, &CACHE_CONTROL).unwrap_or_default();
            return Directives {
                cc,
                targeted: false,
                source: Some(CACHE_CONTROL),
            };
        }
        if pragma_no_cache(headers) {
            return Directives {
                cc: CacheControl {
                    no_cache: true,
                    ..CacheControl::default()
                },
                targeted: false,
                source: Some(PRAGMA),
            };
        }
        Directives::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn default_targets_order() {
        let t = default_targets();
        assert_eq!(t.len(), 3);
        assert_eq!(t[1], HeaderName::from_static("cdn-cache-control"));
    }

    #[test]
    fn cdn_cache_control_overrides() {
        let h = headers(&[
            ("cache-control", "no-store, private"),
            ("cdn-cache-control", "max-age=60"),
        ]);
        let d = Directives::from_response(&h, &default_targets());
        assert!(d.targeted);
        assert_eq!(
            d.source.as_ref().map(|s| s.as_str()),
            Some("cdn-cache-control")
        );
        assert_eq!(d.cc.max_age, Some(60));
        assert!(!d.cc.no_store && !d.cc.private);
    }

    #[test]
    fn first_target_in_list_order_wins() {
        let h = headers(&[
            ("surrogate-control", "max-age=10"),
            ("cdn-cache-control", "max-age=20"),
            ("edgecache-cache-control", "max-age=30"),
        ]);
        let d = Directives::from_response(&h, &default_targets());
        assert_eq!(d.cc.max_age, Some(30));
        let d = Directives::from_response(&h, &default_targets()[1..]);
        assert_eq!(d.cc.max_age, Some(20));
    }

    #[test]
    fn surrogate_control() {
        let h = headers(&[
            ("cache-control", "max-age=5"),
            ("surrogate-control", r#"content="ESI/1.0", max-age=300"#),
        ]);
        let d = Directives::from_response(&h, &default_targets());
        assert!(d.targeted);
        assert_eq!(d.cc.max_age, Some(300));
        // A Surrogate-Control with only ESI capabilities is not a directive.
        let h = headers(&[
            ("cache-control", "max-age=5"),
            ("surrogate-control", r#"content="ESI/1.0""#),
        ]);
        let d = Directives::from_response(&h, &default_targets());
        assert!(!d.targeted);
        assert_eq!(d.cc.max_age, Some(5));
        let h = headers(&[("surrogate-control", "no-store")]);
        assert!(
            Directives::from_response(&h, &default_targets())
                .cc
                .no_store
        );
    }

    #[test]
    fn invalid_or_empty_targeted_field_falls_back() {
        let h = headers(&[
            ("cache-control", "max-age=5"),
            ("cdn-cache-control", "max-age=abc"),
            ("surrogate-control", ""),
        ]);
        let d = Directives::from_response(&h, &default_targets());
        assert!(!d.targeted);
        assert_eq!(d.source, Some(CACHE_CONTROL));
        assert_eq!(d.cc.max_age, Some(5));
    }

    #[test]
    fn pragma_only_without_cache_control() {
        let h = headers(&[("pragma", "No-Cache")]);
        let d = Directives::from_response(&h, &default_targets());
        assert!(d.cc.no_cache);
        assert_eq!(d.source, Some(PRAGMA));
        let h = headers(&[("pragma", "no-cache"), ("cache-control", "max-age=5")]);
        let d = Directives::from_response(&h, &[]);
        assert!(!d.cc.no_cache);
        assert_eq!(d.cc.max_age, Some(5));
    }

    #[test]
    fn nothing() {
        let d = Directives::from_response(&HeaderMap::new(), &default_targets());
        assert_eq!(d, Directives::default());
        // An unparsable Cache-Control still names its source.
        let h = headers(&[("cache-control", "foo")]);
        let d = Directives::from_response(&h, &default_targets());
        assert_eq!(d.source, Some(CACHE_CONTROL));
        assert_eq!(d.cc, CacheControl::default());
    }

    #[test]
    fn request_side() {
        assert_eq!(request_cache_control(&HeaderMap::new()), None);
        let h = headers(&[("pragma", "no-cache")]);
        assert!(request_cache_control(&h).unwrap().no_cache);
        let h = headers(&[("pragma", "no-cache"), ("cache-control", "max-stale")]);
        let c = request_cache_control(&h).unwrap();
        assert!(!c.no_cache);
        assert_eq!(c.max_stale, Some(None));
    }
}
