//! The in-memory store: a moka cache bounded in bytes, holding objects and
//! the Vary markers that lead to their variants.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use edgecache::cache_key::CacheKey;
use edgecache::http_cache::vary::VarySpec;
use moka::Expiry;
use moka::future::Cache;

use crate::object::CachedObject;
use crate::purge::index::PurgeIndex;
use crate::request_fields::RequestFields;

/// What sits under a key: an object, (for Vary'd URLs) a marker that
/// names the varying fields and the variant keys stored for this URL, or a
/// hit-for-pass marker.
#[derive(Clone)]
pub enum Slot {
    /// A stored response.
    Object(Arc<CachedObject>),
    /// The URL's responses vary; look up the variant key.
    Variants(Arc<VariantSet>),
    /// The URL's last answer could not be stored: requests go straight to
    /// the origin, without waiting on each other, for this long. Kept in
    /// the same table as the objects (as Varnish keeps its hit-for-pass
    /// objects) so that a lookup is one probe, and storing an object for
    /// the URL replaces it.
    Pass(Duration),
}

/// The Vary marker of one URL.
pub struct VariantSet {
    /// The fields named by the origin's Vary.
    pub spec: VarySpec,
    /// Variant keys stored for this URL (for purging every variant).
    pub keys: Mutex<Vec<CacheKey>>,
    /// How long the marker lives.
    pub retention: Duration,
}

/// The result of a lookup.
pub enum Lookup {
    /// A stored object for this request (fresh or not).
    Found {
        /// The object.
        object: Arc<CachedObject>,
        /// The variant key it is stored under; `None` when stored under
        /// the primary key (a hit then builds no key at all).
        variant: Option<CacheKey>,
    },
    /// Nothing usable is stored.
    Miss {
        /// The key a fetch would store under and coalesce on.
        key: CacheKey,
        /// True when the URL is known but not this variant.
        vary_miss: bool,
    },
    /// The URL answers `Vary: *`: never served from the cache.
    Uncacheable,
    /// The URL is marked hit-for-pass.
    Pass,
}

/// The hasher of the store's table. Keys are client-chosen URLs, so it is
/// seeded at random (as std's is), but foldhash costs a fraction of std's
/// SipHash on a 50-byte key, once per request.
pub type KeyHasher = foldhash::quality::RandomState;

/// The store's table.
pub type SlotCache = Cache<CacheKey, Slot, KeyHasher>;

/// The edge's cache store.
#[derive(Clone)]
pub struct Store {
    cache: SlotCache,
    index: Arc<PurgeIndex>,
}

struct SlotExpiry;

impl Expiry<CacheKey, Slot> for SlotExpiry {
    fn expire_after_create(&self, _k: &CacheKey, v: &Slot, _at: Instant) -> Option<Duration> {
        Some(slot_retention(v))
    }

    fn expire_after_update(
        &self,
        _k: &CacheKey,
        v: &Slot,
        _at: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        Some(slot_retention(v))
    }
}

fn slot_retention(slot: &Slot) -> Duration {
    match slot {
        Slot::Object(o) => o.retention(SystemTime::now()),
        Slot::Variants(v) => v.retention,
        Slot::Pass(ttl) => *ttl,
    }
}

impl Store {
    /// A store holding at most `capacity_bytes` of objects.
    pub fn new(capacity_bytes: u64) -> Store {
        let index = Arc::new(PurgeIndex::default());
        let listener_index = index.clone();
        let cache = Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|_k: &CacheKey, v: &Slot| match v {
                Slot::Object(o) => o.weight(),
                Slot::Variants(_) => 256,
                Slot::Pass(_) => 64,
            })
            .expire_after(SlotExpiry)
            .eviction_listener(move |key, slot, cause| {
                listener_index.on_removal(&key, &slot, cause);
            })
            .build_with_hasher(KeyHasher::default());
        Store { cache, index }
    }

    /// The purge indexes (prefix and surrogate key) over the stored objects.
    pub fn index(&self) -> &PurgeIndex {
        &self.index
    }

    /// The underlying moka cache, for purge.
    pub fn cache(&self) -> &SlotCache {
        &self.cache
    }

    /// Finds what is stored for a request: its primary key and headers.
    pub async fn lookup(&self, primary: &CacheKey, request: &RequestFields<'_>) -> Lookup {
        match self.cache.get(primary).await {
            None => Lookup::Miss {
                key: primary.clone(),
                vary_miss: false,
            },
            Some(Slot::Object(object)) => Lookup::Found {
                object,
                variant: None,
            },
            Some(Slot::Pass(_)) => Lookup::Pass,
            Some(Slot::Variants(set)) => {
                let Some(secondary) = set.spec.secondary_key(request.map()) else {
                    return Lookup::Uncacheable;
                };
                let key = primary.with_variant(&secondary);
                match self.cache.get(&key).await {
                    Some(Slot::Object(object)) => Lookup::Found {
                        object,
                        variant: Some(key),
                    },
                    _ => Lookup::Miss {
                        key,
                        vary_miss: true,
                    },
                }
            }
        }
    }

    /// The key a response for this request would be stored under.
    pub fn storage_key(primary: &CacheKey, object: &CachedObject) -> CacheKey {
        match object.variant() {
            Some(secondary) => primary.with_variant(secondary),
            None => primary.clone(),
        }
    }

    /// Stores an object for a URL; `spec` is the response's Vary.
    pub async fn insert(&self, primary: &CacheKey, spec: VarySpec, object: Arc<CachedObject>) {
        let retention = object.retention(SystemTime::now());
        if object.variant().is_none() {
            self.cache
                .insert(primary.clone(), Slot::Object(object.clone()))
                .await;
            self.index.record(primary, &object);
            return;
        }
        let key = Store::storage_key(primary, &object);
        let marker = match self.cache.get(primary).await {
            Some(Slot::Variants(set)) if set.spec == spec && set.retention >= retention => set,
            existing => {
                let mut keys = Vec::new();
                if let Some(Slot::Variants(old)) = existing {
                    if old.spec == spec {
                        keys = old.keys.lock().map(|k| k.clone()).unwrap_or_default();
                    }
                }
                let set = Arc::new(VariantSet {
                    spec,
                    keys: Mutex::new(keys),
                    retention,
                });
                self.cache
                    .insert(primary.clone(), Slot::Variants(set.clone()))
                    .await;
                set
            }
        };
        if let Ok(mut keys) = marker.keys.lock() {
            if !keys.contains(&key) {
                keys.push(key.clone());
            }
        }
        self.cache
            .insert(key.clone(), Slot::Object(object.clone()))
            .await;
        self.index.record(&key, &object);
    }

    /// Marks a URL hit-for-pass for `ttl`, in place of what it held.
    pub async fn mark_pass(&self, primary: &CacheKey, ttl: Duration) {
        // Its variants would be unreachable behind the marker.
        if let Some(Slot::Variants(_)) = self.cache.get(primary).await {
            self.remove_url(primary).await;
        }
        let ttl = ttl.max(Duration::from_millis(1));
        self.cache.insert(primary.clone(), Slot::Pass(ttl)).await;
    }

    /// Removes a URL and all its variants (and a hit-for-pass marker);
    /// returns how many objects went.
    pub async fn remove_url(&self, primary: &CacheKey) -> usize {
        match self.cache.remove(primary).await {
            None | Some(Slot::Pass(_)) => 0,
            Some(Slot::Object(_)) => 1,
            Some(Slot::Variants(set)) => {
                let keys = set.keys.lock().map(|k| k.clone()).unwrap_or_default();
                let mut removed = 0;
                for key in keys {
                    if self.cache.remove(&key).await.is_some() {
                        removed += 1;
                    }
                }
                removed
            }
        }
    }

    /// Number of entries (objects and markers).
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Bytes used, by the weigher's count.
    pub fn weighted_size(&self) -> u64 {
        self.cache.weighted_size()
    }

    /// Applies pending maintenance so counts are current.
    pub async fn sync(&self) {
        self.cache.run_pending_tasks().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stored_headers::StoredHeaders;
    use edgecache::http_cache::freshness::StalePermissions;
    use http::HeaderMap;

    fn object(variant: Option<&str>) -> Arc<CachedObject> {
        Arc::new(CachedObject {
            status: http::StatusCode::OK,
            headers: StoredHeaders::default(),
            body: bytes::Bytes::from_static(b"x"),
            body_file: None,
            response_time: SystemTime::now(),
            initial_age: Duration::ZERO,
            lifetime: Duration::from_secs(60),
            stale: StalePermissions {
                forbidden: false,
                stale_while_revalidate: None,
                stale_if_error: None,
            },
            retain_stale: Duration::ZERO,
            extras: crate::object::ObjectExtras {
                variant: variant.map(str::to_string),
                ..Default::default()
            }
            .boxed(),
        })
    }

    fn key(path: &str) -> CacheKey {
        CacheKey::new("http", "x.test", path)
    }

    fn no_fields() -> RequestFields<'static> {
        RequestFields::from_map(HeaderMap::new())
    }

    #[tokio::test]
    async fn a_pass_marker_answers_lookups_until_an_object_replaces_it() {
        let store = Store::new(1 << 20);
        let k = key("/a");
        store.mark_pass(&k, Duration::from_secs(30)).await;
        assert!(matches!(store.lookup(&k, &no_fields()).await, Lookup::Pass));
        store.insert(&k, VarySpec::None, object(None)).await;
        assert!(matches!(
            store.lookup(&k, &no_fields()).await,
            Lookup::Found { variant: None, .. }
        ));
        store.mark_pass(&k, Duration::from_secs(30)).await;
        assert_eq!(store.remove_url(&k).await, 0, "a marker is not an object");
        assert!(matches!(
            store.lookup(&k, &no_fields()).await,
            Lookup::Miss {
                vary_miss: false,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn a_pass_marker_drops_the_urls_variants() {
        let store = Store::new(1 << 20);
        let k = key("/v");
        let mut resp = HeaderMap::new();
        resp.insert(http::header::VARY, "accept-language".parse().unwrap());
        let spec = VarySpec::from_headers(&resp);
        let mut req = HeaderMap::new();
        req.insert(http::header::ACCEPT_LANGUAGE, "en".parse().unwrap());
        let secondary = spec.secondary_key(&req).unwrap();
        store.insert(&k, spec, object(Some(&secondary))).await;
        let variant_key = k.with_variant(&secondary);
        let req = RequestFields::from_map(req);
        assert!(matches!(store.lookup(&k, &req).await, Lookup::Found { .. }));
        store.mark_pass(&k, Duration::from_secs(30)).await;
        assert!(matches!(store.lookup(&k, &req).await, Lookup::Pass));
        assert!(store.cache().get(&variant_key).await.is_none());
    }

    #[tokio::test]
    async fn a_pass_marker_expires() {
        let store = Store::new(1 << 20);
        let k = key("/t");
        store.mark_pass(&k, Duration::from_millis(50)).await;
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(matches!(
            store.lookup(&k, &no_fields()).await,
            Lookup::Miss { .. }
        ));
    }
}
