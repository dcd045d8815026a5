//! A stored response: headers, a shared body, and the times that give its
//! age and freshness.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use edgecache::http_cache::freshness::{StalePermissions, current_age};
use edgecache::http_cache::vary::VarySpec;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::body_file::BodyFile;
use crate::stored_headers::StoredHeaders;

/// One cached response. Immutable once stored: a revalidation that freshens
/// it stores a new object sharing the same body buffer.
#[derive(Debug)]
pub struct CachedObject {
    /// The stored status (200, 301, 404, ...).
    pub status: StatusCode,
    /// Stored end-to-end header fields (hop-by-hop and surrogate keys gone).
    pub headers: StoredHeaders,
    /// The complete body.
    pub body: Bytes,
    /// The sealed memory file `body` is a view of, for a large body: the
    /// HTTP/1.1 writer sends from it without copying.
    pub body_file: Option<Arc<BodyFile>>,
    /// When its response head arrived.
    pub response_time: SystemTime,
    /// Corrected initial age (RFC 9111 §4.2.3).
    pub initial_age: Duration,
    /// Freshness lifetime (RFC 9111 §4.2.1).
    pub lifetime: Duration,
    /// What the origin's directives allow about serving it stale.
    pub stale: StalePermissions,
    /// How long past freshness the store keeps it.
    pub retain_stale: Duration,
    /// What only some objects have, boxed so that the common object stays
    /// small (it is stored once per cached URL).
    pub extras: Option<Box<ObjectExtras>>,
}

/// The rarer parts of a stored response.
#[derive(Clone, Debug, Default)]
pub struct ObjectExtras {
    /// The secondary (Vary) key it was stored under, if any.
    pub variant: Option<String>,
    /// Surrogate keys (Surrogate-Key / Cache-Tag) for purging by tag.
    pub surrogate_keys: Vec<String>,
    /// The upstream tier's Cache-Status (a shield's, in a tiered fill),
    /// shown with ours on the response that filled this object.
    pub upstream_status: Option<HeaderValue>,
}

impl ObjectExtras {
    /// Boxed, or nothing when there is nothing to keep.
    pub fn boxed(self) -> Option<Box<ObjectExtras>> {
        let empty = self.variant.is_none()
            && self.surrogate_keys.is_empty()
            && self.upstream_status.is_none();
        (!empty).then(|| Box::new(self))
    }
}

impl CachedObject {
    /// The secondary (Vary) key it was stored under, if any.
    pub fn variant(&self) -> Option<&str> {
        self.extras.as_ref().and_then(|e| e.variant.as_deref())
    }

    /// Surrogate keys (Surrogate-Key / Cache-Tag) for purging by tag.
    pub fn surrogate_keys(&self) -> &[String] {
        self.extras.as_ref().map_or(&[], |e| &e.surrogate_keys)
    }

    /// The upstream tier's Cache-Status, if this object came through one.
    pub fn upstream_status(&self) -> Option<&HeaderValue> {
        self.extras
            .as_ref()
            .and_then(|e| e.upstream_status.as_ref())
    }

    /// Current age at `now`.
    pub fn age(&self, now: SystemTime) -> Duration {
        current_age(self.initial_age, self.response_time, now)
    }

    /// Remaining freshness in whole seconds; negative once stale.
    pub fn ttl_secs(&self, now: SystemTime) -> i64 {
        self.ttl_secs_at_age(self.age(now))
    }

    /// [`CachedObject::ttl_secs`] for an age already computed.
    pub fn ttl_secs_at_age(&self, age: Duration) -> i64 {
        let lifetime = self.lifetime.as_secs() as i64;
        lifetime.saturating_sub(age.as_secs() as i64)
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
        self.headers.contains(&header::ETAG) || self.headers.contains(&header::LAST_MODIFIED)
    }

    /// The stored response's Vary, which names what selects this variant.
    pub fn vary_spec(&self) -> VarySpec {
        // Most objects have no Vary: the empty map does not allocate.
        let mut vary = HeaderMap::new();
        for value in self.headers.get_all(&header::VARY) {
            vary.append(header::VARY, value);
        }
        VarySpec::from_headers(&vary)
    }

    /// Bytes it occupies in the store, for the weigher (a body in a file
    /// occupies whole pages).
    pub fn weight(&self) -> u32 {
        let body = match self.body_file {
            Some(_) => self.body.len().next_multiple_of(rustix::param::page_size()),
            None => self.body.len(),
        };
        let total = body + self.headers.heap_bytes() + 256;
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
            body_file: self.body_file.clone(),
            response_time: self.response_time,
            initial_age: self.initial_age,
            lifetime: self.lifetime.min(self.age(now)),
            stale: self.stale,
            retain_stale: self.retain_stale,
            extras: self.extras.as_ref().and_then(|e| {
                ObjectExtras {
                    upstream_status: None,
                    ..ObjectExtras::clone(e)
                }
                .boxed()
            }),
        }
    }

    /// The same object with its complete body (a streaming fill that
    /// finished), and the file that body is kept in, if any.
    pub fn with_body(&self, body: Bytes, body_file: Option<Arc<BodyFile>>) -> CachedObject {
        CachedObject {
            status: self.status,
            headers: self.headers.clone(),
            body,
            body_file,
            response_time: self.response_time,
            initial_age: self.initial_age,
            lifetime: self.lifetime,
            stale: self.stale,
            retain_stale: self.retain_stale,
            extras: self.extras.clone(),
        }
    }
}
