//! A stored response: headers, a shared body, and the times that give its
//! age and freshness.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use edgecache::http_cache::freshness::{StalePermissions, current_age};
use http::{HeaderMap, HeaderValue, StatusCode};

/// One cached response. Immutable once stored: a revalidation that freshens
/// it stores a new object sharing the same body buffer.
#[derive(Debug)]
pub struct CachedObject {
    /// The stored status (200, 301, 404, ...).
    pub status: StatusCode,
    /// Stored end-to-end header fields (hop-by-hop and surrogate keys gone).
    pub headers: HeaderMap,
    /// The complete body.
    pub body: Bytes,
    /// When the request that produced it was sent.
    pub request_time: SystemTime,
    /// When its response head arrived.
    pub response_time: SystemTime,
    /// Corrected initial age (RFC 9111 §4.2.3).
    pub initial_age: Duration,
    /// Freshness lifetime (RFC 9111 §4.2.1).
    pub lifetime: Duration,
    /// What the origin's directives allow about serving it stale.
    pub stale: StalePermissions,
    /// The secondary (Vary) key it was stored under, if any.
    pub variant: Option<String>,
    /// Surrogate keys (Surrogate-Key / Cache-Tag) for purging by tag.
    pub surrogate_keys: Vec<String>,
    /// How long past freshness the store keeps it.
    pub retain_stale: Duration,
    /// The upstream tier's Cache-Status (a shield's, in a tiered fill),
    /// shown with ours on the response that filled this object.
    pub upstream_status: Option<http::HeaderValue>,
}

impl CachedObject {
    /// Current age at `now`.
    pub fn age(&self, now: SystemTime) -> Duration {
        current_age(self.initial_age, self.response_time, now)
    }

    /// Remaining freshness in whole seconds; negative once stale.
    pub fn ttl_secs(&self, now: SystemTime) -> i64 {
        let lifetime = self.lifetime.as_secs() as i64;
        let age = self.age(now).as_secs() as i64;
        lifetime.saturating_sub(age)
    }

    /// Whether it may be served without contacting the origin.
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        self.age(now) < self.lifetime
    }

    /// How long it has been stale at `now` (zero while fresh).
    pub fn staleness(&self, now: SystemTime) -> Duration {
        self.age(now).saturating_sub(self.lifetime)
    }

    /// Whether the stored response has a validator for revalidation.
    pub fn has_validators(&self) -> bool {
        self.headers.contains_key(http::header::ETAG)
            || self.headers.contains_key(http::header::LAST_MODIFIED)
    }

    /// Bytes it occupies in the store, for the weigher.
    pub fn weight(&self) -> u32 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 32)
            .sum();
        let total = self.body.len() + headers + 256;
        u32::try_from(total).unwrap_or(u32::MAX)
    }

    /// How long the store keeps it from now: what is left of its freshness
    /// plus the stale retention.
    pub fn retention(&self, now: SystemTime) -> Duration {
        self.lifetime.saturating_sub(self.age(now)) + self.retain_stale
    }

    /// A copy that went stale at `now` (soft purge): its freshness lifetime
    /// is cut to its current age, so it revalidates before being served and
    /// its staleness counts from the purge. The body buffer is shared.
    pub fn soft_purged(&self, now: SystemTime) -> CachedObject {
        CachedObject {
            status: self.status,
            headers: self.headers.clone(),
            body: self.body.clone(),
            request_time: self.request_time,
            response_time: self.response_time,
            initial_age: self.initial_age,
            lifetime: self.lifetime.min(self.age(now)),
            stale: self.stale,
            variant: self.variant.clone(),
            surrogate_keys: self.surrogate_keys.clone(),
            retain_stale: self.retain_stale,
            upstream_status: None,
        }
    }

    /// The same object with its complete body (a streaming fill that
    /// finished).
    pub fn with_body(&self, body: Bytes) -> CachedObject {
        CachedObject {
            status: self.status,
            headers: self.headers.clone(),
            body,
            request_time: self.request_time,
            response_time: self.response_time,
            initial_age: self.initial_age,
            lifetime: self.lifetime,
            stale: self.stale,
            variant: self.variant.clone(),
            surrogate_keys: self.surrogate_keys.clone(),
            retain_stale: self.retain_stale,
            upstream_status: self.upstream_status.clone(),
        }
    }
}

/// A copy of `headers` whose values are slices of one buffer holding
/// exactly their bytes, for storing.
///
/// hyper parses header values as slices of its connection read buffer:
/// storing those would keep a whole buffer (8 KiB and up) alive per object.
/// Copying each value on its own would cost an allocation and a reference
/// count per value, each somewhere else in memory, touched on every hit
/// (cloning a value bumps its count). One buffer per object is one
/// allocation and one count, on one cache line.
pub fn pack_headers(headers: &HeaderMap) -> HeaderMap {
    let total: usize = headers.values().map(|v| v.len()).sum();
    let mut block = Vec::with_capacity(total);
    for value in headers.values() {
        block.extend_from_slice(value.as_bytes());
    }
    let block = Bytes::from(block);
    let mut out = HeaderMap::with_capacity(headers.len());
    let mut at = 0;
    for (name, value) in headers {
        let end = at + value.len();
        let slice = block.slice(at..end);
        at = end;
        // The bytes were a valid header value a moment ago.
        let mut packed = HeaderValue::from_maybe_shared(slice).unwrap_or_else(|_| value.clone());
        packed.set_sensitive(value.is_sensitive());
        out.append(name.clone(), packed);
    }
    // A clone holds exactly its entries (about a hundred bytes per slot);
    // the map built above keeps a quarter or more of its slots spare.
    out.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_headers_keep_every_value_in_one_buffer() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        headers.append("set-cookie", HeaderValue::from_static("a=1"));
        headers.append("set-cookie", HeaderValue::from_static("b=2"));
        let mut secret = HeaderValue::from_static("token");
        secret.set_sensitive(true);
        headers.insert("x-secret", secret);
        headers.insert("x-empty", HeaderValue::from_static(""));

        let packed = pack_headers(&headers);
        let pairs = |m: &HeaderMap| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(pairs(&packed), pairs(&headers));
        assert!(packed["x-secret"].is_sensitive());
        assert!(!packed["content-type"].is_sensitive());

        let mut next = packed["content-type"].as_bytes().as_ptr();
        for value in packed.values().filter(|v| !v.is_empty()) {
            assert_eq!(value.as_bytes().as_ptr(), next, "values are contiguous");
            next = next.wrapping_add(value.len());
        }
        let original = headers["content-type"].as_bytes().as_ptr();
        assert_ne!(packed["content-type"].as_bytes().as_ptr(), original);
    }
}
