//! The Cache-Status response field (RFC 9211).

use http::HeaderValue;

/// Why the request went forward (the `fwd` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fwd {
    /// No stored response for the URI.
    UriMiss,
    /// Stored responses exist, but none for this request's Vary'd fields.
    VaryMiss,
    /// A miss, without more detail.
    Miss,
    /// The request's directives demanded forwarding.
    Request,
    /// The stored response was stale.
    Stale,
    /// Only part of the response was stored.
    Partial,
    /// Configuration made the cache bypass storage.
    Bypass,
    /// The request method is not cacheable.
    Method,
}

impl Fwd {
    /// The parameter value, e.g. `"uri-miss"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Fwd::UriMiss => "uri-miss",
            Fwd::VaryMiss => "vary-miss",
            Fwd::Miss => "miss",
            Fwd::Request => "request",
            Fwd::Stale => "stale",
            Fwd::Partial => "partial",
            Fwd::Bypass => "bypass",
            Fwd::Method => "method",
        }
    }
}

/// One cache's Cache-Status entry.
#[derive(Debug, Clone, Default)]
pub struct CacheStatus {
    /// Served from the cache without going forward.
    pub hit: bool,
    /// Why the request went forward, if it did.
    pub fwd: Option<Fwd>,
    /// The status of the forwarded request's response.
    pub fwd_status: Option<u16>,
    /// Remaining freshness in seconds, negative when stale.
    pub ttl: Option<i64>,
    /// The response was stored.
    pub stored: bool,
    /// The request was coalesced with another one.
    pub collapsed: bool,
    /// The cache key (for debugging).
    pub key: Option<String>,
    /// Implementation-specific detail, e.g. `origin-unreachable`.
    pub detail: Option<String>,
}

/// `s` is an sf-token (RFC 8941 §3.3.4).
fn is_token(s: &str) -> bool {
    let mut b = s.bytes();
    let Some(first) = b.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == b'*')
        && b.all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&c))
}

/// Writes `s` as an sf-token when it is one, else as an sf-string
/// (non-printable characters become `?`).
fn push_item(out: &mut String, s: &str) {
    if is_token(s) {
        out.push_str(s);
        return;
    }
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
}

/// A cache's name as the item of its list member (an sf-token, else an
/// sf-string), rendered once instead of checked on every answer.
#[derive(Clone, Debug)]
pub struct CacheName(String);

impl CacheName {
    /// The item for `name`.
    pub fn new(name: &str) -> CacheName {
        let mut item = String::with_capacity(name.len());
        push_item(&mut item, name);
        CacheName(item)
    }
}

impl CacheStatus {
    /// Renders the entry, parameters in the order hit, fwd, fwd-status, ttl,
    /// stored, collapsed, key, detail; e.g. `edgecache; fwd=stale;
    /// fwd-status=304; ttl=60; stored`.
    pub fn render(&self, cache_name: &str) -> String {
        self.render_for(&CacheName::new(cache_name))
    }

    /// [`CacheStatus::render`] for a name rendered beforehand.
    pub fn render_for(&self, cache_name: &CacheName) -> String {
        let mut out = String::with_capacity(64);
        out.push_str(&cache_name.0);
        if self.hit {
            out.push_str("; hit");
        }
        if let Some(f) = self.fwd {
            out.push_str("; fwd=");
            out.push_str(f.as_str());
        }
        // Rendered on every answer: integers without the formatting machinery.
        let mut number = itoa::Buffer::new();
        if let Some(s) = self.fwd_status {
            out.push_str("; fwd-status=");
            out.push_str(number.format(s));
        }
        if let Some(t) = self.ttl {
            out.push_str("; ttl=");
            out.push_str(number.format(t));
        }
        if self.stored {
            out.push_str("; stored");
        }
        if self.collapsed {
            out.push_str("; collapsed");
        }
        if let Some(k) = &self.key {
            out.push_str("; key=");
            push_item(&mut out, k);
        }
        if let Some(d) = &self.detail {
            out.push_str("; detail=");
            push_item(&mut out, d);
        }
        out
    }
}

/// Appends our entry to the upstream Cache-Status (RFC 9211 §2: the cache
/// nearest the origin comes first). An empty or non-ASCII upstream value is
/// dropped.
pub fn append(upstream: Option<&HeaderValue>, ours: &str) -> String {
    match upstream.and_then(|v| v.to_str().ok()).map(str::trim) {
        Some(up) if !up.is_empty() => {
            let mut s = String::with_capacity(up.len() + 2 + ours.len());
            s.push_str(up);
            s.push_str(", ");
            s.push_str(ours);
            s
        }
        _ => ours.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cs() -> CacheStatus {
        CacheStatus::default()
    }

    #[test]
    fn examples() {
        let hit = CacheStatus {
            hit: true,
            ttl: Some(42),
            ..cs()
        };
        assert_eq!(hit.render("edgecache"), "edgecache; hit; ttl=42");
        let miss = CacheStatus {
            fwd: Some(Fwd::Miss),
            stored: true,
            ..cs()
        };
        assert_eq!(miss.render("edgecache"), "edgecache; fwd=miss; stored");
        let reval = CacheStatus {
            fwd: Some(Fwd::Stale),
            fwd_status: Some(304),
            ttl: Some(60),
            stored: true,
            ..cs()
        };
        assert_eq!(
            reval.render("edgecache"),
            "edgecache; fwd=stale; fwd-status=304; ttl=60; stored"
        );
        let stale = CacheStatus {
            hit: true,
            fwd: Some(Fwd::Stale),
            ttl: Some(-12),
            detail: Some("origin-unreachable".into()),
            ..cs()
        };
        assert_eq!(
            stale.render("edgecache"),
            "edgecache; hit; fwd=stale; ttl=-12; detail=origin-unreachable"
        );
        let collapsed = CacheStatus {
            fwd: Some(Fwd::UriMiss),
            collapsed: true,
            ..cs()
        };
        assert_eq!(
            collapsed.render("edgecache"),
            "edgecache; fwd=uri-miss; collapsed"
        );
        assert_eq!(cs().render("edgecache"), "edgecache");
    }

    #[test]
    fn full_order() {
        let all = CacheStatus {
            hit: true,
            fwd: Some(Fwd::VaryMiss),
            fwd_status: Some(200),
            ttl: Some(0),
            stored: true,
            collapsed: true,
            key: Some("https/example.com/a".into()),
            detail: Some("x".into()),
        };
        assert_eq!(
            all.render("edge-1"),
            "edge-1; hit; fwd=vary-miss; fwd-status=200; ttl=0; stored; collapsed; \
             key=https/example.com/a; detail=x"
        );
    }

    #[test]
    fn quoting() {
        let s = CacheStatus {
            fwd: Some(Fwd::Bypass),
            key: Some("GET example.com/a?b=\"c\"".into()),
            detail: Some(r"back\slash é".into()),
            ..cs()
        };
        assert_eq!(
            s.render("my cache"),
            r#""my cache"; fwd=bypass; key="GET example.com/a?b=\"c\""; detail="back\\slash ?""#
        );
        let s = CacheStatus {
            detail: Some(String::new()),
            key: Some("1abc".into()),
            ..cs()
        };
        assert_eq!(s.render("c"), r#"c; key="1abc"; detail="""#);
    }

    #[test]
    fn fwd_params() {
        let all = [
            (Fwd::UriMiss, "uri-miss"),
            (Fwd::VaryMiss, "vary-miss"),
            (Fwd::Miss, "miss"),
            (Fwd::Request, "request"),
            (Fwd::Stale, "stale"),
            (Fwd::Partial, "partial"),
            (Fwd::Bypass, "bypass"),
            (Fwd::Method, "method"),
        ];
        for (f, s) in all {
            assert_eq!(f.as_str(), s);
        }
    }

    #[test]
    fn appending() {
        assert_eq!(append(None, "edge; hit"), "edge; hit");
        let up = HeaderValue::from_static("origin-cache; fwd=miss ");
        assert_eq!(
            append(Some(&up), "edge; hit"),
            "origin-cache; fwd=miss, edge; hit"
        );
        let empty = HeaderValue::from_static("  ");
        assert_eq!(append(Some(&empty), "edge; hit"), "edge; hit");
        let bin = HeaderValue::from_bytes(b"\xff").unwrap();
        assert_eq!(append(Some(&bin), "edge"), "edge");
    }
}
