//! Cache keys: the primary key of a request (scheme, host, path, query).
//! Vary'd request headers form the secondary key (see `http_cache::vary`).

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;

/// The primary cache key of a request, e.g. `http://cdn.example/a.css?v=1`.
///
/// The text is shared: the store, the purge index and the fetch in flight
/// hold the same allocation (a stored small object would otherwise carry
/// its key's text twice).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(Arc<str>);

/// Lookups by text in maps keyed by `CacheKey` (the purge indexes): the
/// derived `Eq`, `Ord` and `Hash` are those of the text.
impl std::borrow::Borrow<str> for CacheKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl CacheKey {
    /// Builds the key from the request's scheme, Host (or authority) and
    /// target. The host is lowercased and a default port dropped, so
    /// `EXAMPLE.com:80` and `example.com` share entries.
    pub fn new(scheme: &str, host: &str, path_and_query: &str) -> CacheKey {
        CacheKey::from_normalized_host(scheme, &normalize_host(scheme, host), path_and_query)
    }

    /// Like [`CacheKey::new`], for a host already through [`normalize_host`].
    pub fn from_normalized_host(scheme: &str, host: &str, path_and_query: &str) -> CacheKey {
        let slash = if path_and_query.starts_with('/') {
            ""
        } else {
            "/"
        };
        CacheKey::concat(&[scheme, "://", host, slash, path_and_query])
    }

    /// The key for a request given its `http::Uri` and Host header.
    pub fn for_request(scheme: &str, host: &str, uri: &http::Uri) -> CacheKey {
        let pq = uri.path_and_query().map_or("/", |pq| pq.as_str());
        CacheKey::new(scheme, host, pq)
    }

    /// The key with a secondary (Vary) key appended; used to store variants.
    pub fn with_variant(&self, secondary: &str) -> CacheKey {
        // A byte that cannot occur in a URL keeps variant keys apart from URLs.
        CacheKey::concat(&[&self.0, "\u{1f}", secondary])
    }

    /// A key of the concatenated parts, in one allocation: the text is
    /// assembled in a per-thread scratch buffer and copied once into the
    /// shared one (built per request, so no second allocation).
    fn concat(parts: &[&str]) -> CacheKey {
        thread_local! {
            static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
        }
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut text) => {
                text.clear();
                for part in parts {
                    text.push_str(part);
                }
                CacheKey(Arc::from(text.as_str()))
            }
            Err(_) => CacheKey(Arc::from(parts.concat())),
        })
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host part of the key, as normalised (lowercase, no default
    /// port).
    pub fn host(&self) -> &str {
        let after_scheme = self.0.find("://").map_or(0, |i| i + 3);
        let rest = &self.0[after_scheme..];
        rest.find('/').map_or(rest, |i| &rest[..i])
    }

    /// The path (and query) part of the key.
    pub fn path_and_query(&self) -> &str {
        let after_scheme = self.0.find("://").map_or(0, |i| i + 3);
        let rest = &self.0[after_scheme..];
        let rest = rest.split('\u{1f}').next().unwrap_or(rest);
        rest.find('/').map_or("/", |i| &rest[i..])
    }
}

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lowercases a host and drops the scheme's default port.
///
/// Borrows when there is nothing to change (the usual case: no copy per
/// request).
pub fn normalize_host<'h>(scheme: &str, host: &'h str) -> Cow<'h, str> {
    let default_port = match scheme {
        "https" => ":443",
        _ => ":80",
    };
    // A Host value is visible ASCII: trimming ASCII whitespace is enough,
    // and cheaper than the Unicode-aware trim on every request.
    let host = host.trim_ascii();
    let host = host.strip_suffix(default_port).unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// The host of a `Host` value without its port (IPv6 literals keep brackets).
pub fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    // A byte loop: a `char` pattern search costs more than the host is long.
    match host.bytes().rposition(|b| b == b':') {
        Some(colon) => &host[..colon],
        None => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_is_normalized() {
        assert_eq!(
            CacheKey::new("http", "EXAMPLE.com:80", "/a?b=1").as_str(),
            "http://example.com/a?b=1"
        );
        assert_eq!(CacheKey::new("https", "x:443", "").as_str(), "https://x/");
        assert_eq!(
            CacheKey::new("http", "x:8080", "/").as_str(),
            "http://x:8080/"
        );
        assert!(matches!(
            normalize_host("http", "x.test"),
            Cow::Borrowed("x.test")
        ));
        assert_eq!(normalize_host("http", " X.test:80 "), "x.test");
        assert_eq!(CacheKey::new("http", "X:8080", "/a").host(), "x:8080");
        assert_eq!(CacheKey::new("http", "x", "").host(), "x");
    }

    #[test]
    fn variants_and_paths() {
        let k = CacheKey::new("http", "x", "/a/b?q");
        assert_eq!(k.path_and_query(), "/a/b?q");
        let v = k.with_variant("accept-encoding=gzip");
        assert_ne!(v, k);
        assert_eq!(v.path_and_query(), "/a/b?q");
    }

    #[test]
    fn host_port_split() {
        assert_eq!(host_without_port("a.b:80"), "a.b");
        assert_eq!(host_without_port("[::1]:80"), "[::1]");
        assert_eq!(host_without_port("a.b"), "a.b");
    }
}
