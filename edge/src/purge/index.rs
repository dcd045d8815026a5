//! Purge indexes over the stored objects: every storage key in order (for
//! prefix purges) and surrogate key -> storage keys (for tag purges).
//!
//! The index is a superset of what the store holds: it is updated after
//! every insert, entries leave when moka reports the object removed (the
//! eviction listener), and entries whose object is gone are pruned lazily.
//! Purges always act on the store by key, so a stale entry costs a lookup,
//! never a wrong answer.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use edgecache::cache_key::CacheKey;
use moka::notification::RemovalCause;

use crate::object::CachedObject;
use crate::store::Slot;

/// The byte that separates a URL from its Vary secondary key in a storage key.
pub const VARIANT_SEPARATOR: char = '\u{1f}';

/// Storage keys by URL order and by surrogate key.
#[derive(Default)]
pub struct PurgeIndex {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    objects: BTreeMap<CacheKey, Entry>,
    tags: HashMap<String, BTreeSet<String>>,
}

struct Entry {
    /// The object last stored under the key: identifies it in removal
    /// notices, and tells a dead entry apart.
    object: Weak<CachedObject>,
    tags: Vec<String>,
}

impl Inner {
    fn remove(&mut self, key: &str) {
        let Some(entry) = self.objects.remove(key) else {
            return;
        };
        for tag in &entry.tags {
            if let Some(keys) = self.tags.get_mut(tag) {
                keys.remove(key);
                if keys.is_empty() {
                    self.tags.remove(tag);
                }
            }
        }
    }
}

impl PurgeIndex {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves a consistent-enough map.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes that `object` is now stored under `key`.
    pub fn record(&self, key: &CacheKey, object: &Arc<CachedObject>) {
        let mut inner = self.lock();
        inner.remove(key.as_str());
        for tag in object.surrogate_keys() {
            inner
                .tags
                .entry(tag.clone())
                .or_default()
                .insert(key.as_str().to_string());
        }
        inner.objects.insert(
            key.clone(),
            Entry {
                object: Arc::downgrade(object),
                tags: object.surrogate_keys().to_vec(),
            },
        );
    }

    /// The store's eviction listener: forgets `key` when the object it
    /// recorded there left the store. Replacements are ignored (the insert
    /// records the new object itself).
    pub fn on_removal(&self, key: &CacheKey, slot: &Slot, cause: RemovalCause) {
        let Slot::Object(object) = slot else {
            return;
        };
        if cause == RemovalCause::Replaced {
            return;
        }
        let mut inner = self.lock();
        let same = inner
            .objects
            .get(key.as_str())
            .is_some_and(|e| Weak::ptr_eq(&e.object, &Arc::downgrade(object)));
        if same {
            inner.remove(key.as_str());
        }
    }

    /// Forgets a key.
    pub fn forget(&self, key: &CacheKey) {
        self.lock().remove(key.as_str());
    }

    /// Forgets everything.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.objects.clear();
        inner.tags.clear();
    }

    /// Number of indexed keys.
    pub fn len(&self) -> usize {
        self.lock().objects.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.lock().objects.is_empty()
    }

    /// Keys whose text starts with `prefix` (a URL prefix, so a URL's Vary
    /// variants come along).
    pub fn with_prefix(&self, prefix: &str) -> Vec<CacheKey> {
        let inner = self.lock();
        inner
            .objects
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.as_str().starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The keys of one URL: the URL itself and its Vary variants.
    pub fn for_url(&self, url: &str) -> Vec<CacheKey> {
        let variants = format!("{url}{VARIANT_SEPARATOR}");
        let mut keys = self.with_prefix(&variants);
        if let Some((k, _)) = self.lock().objects.get_key_value(url) {
            keys.push(k.clone());
        }
        keys
    }

    /// Keys, on any host, whose path (and query) satisfies `matches`.
    pub fn matching_path(&self, matches: impl Fn(&str) -> bool) -> Vec<CacheKey> {
        let inner = self.lock();
        inner
            .objects
            .keys()
            .filter(|k| matches(k.path_and_query()))
            .cloned()
            .collect()
    }

    /// Keys of objects carrying the surrogate key `tag`.
    pub fn with_tag(&self, tag: &str) -> Vec<CacheKey> {
        let inner = self.lock();
        let Some(keys) = inner.tags.get(tag) else {
            return Vec::new();
        };
        keys.iter()
            .filter_map(|k| inner.objects.get_key_value(k.as_str()))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Every indexed key.
    pub fn all(&self) -> Vec<CacheKey> {
        self.lock().objects.keys().cloned().collect()
    }

    /// Keys whose recorded object no longer exists anywhere: candidates for
    /// pruning (the caller checks the store, which may hold a newer object).
    pub fn dead(&self) -> Vec<CacheKey> {
        self.lock()
            .objects
            .iter()
            .filter(|(_, e)| e.object.strong_count() == 0)
            .map(|(k, _)| k.clone())
            .collect()
    }
}

/// The URL part of a storage key (without the Vary secondary key).
pub fn url_of(key: &CacheKey) -> &str {
    let text = key.as_str();
    text.split(VARIANT_SEPARATOR).next().unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn object(tags: &[&str]) -> Arc<CachedObject> {
        Arc::new(CachedObject {
            status: http::StatusCode::OK,
            headers: crate::stored_headers::StoredHeaders::default(),
            body: bytes::Bytes::from_static(b"x"),
            body_file: None,
            response_time: SystemTime::now(),
            initial_age: Duration::ZERO,
            lifetime: Duration::from_secs(60),
            stale: edgecache::http_cache::freshness::StalePermissions {
                forbidden: false,
                stale_while_revalidate: None,
                stale_if_error: None,
            },
            retain_stale: Duration::ZERO,
            extras: crate::object::ObjectExtras {
                surrogate_keys: tags.iter().map(|t| t.to_string()).collect(),
                ..Default::default()
            }
            .boxed(),
        })
    }

    #[test]
    fn prefix_url_and_tag_lookups() {
        let index = PurgeIndex::default();
        let a = CacheKey::new("http", "h", "/img/a");
        let av = a.with_variant("accept-encoding=gzip");
        let b = CacheKey::new("http", "h", "/img/b");
        let c = CacheKey::new("http", "h", "/css/c");
        let (oa, oav, ob, oc) = (object(&["red"]), object(&[]), object(&["red"]), object(&[]));
        index.record(&a, &oa);
        index.record(&av, &oav);
        index.record(&b, &ob);
        index.record(&c, &oc);
        assert_eq!(index.with_prefix("http://h/img/").len(), 3);
        assert_eq!(index.for_url("http://h/img/a").len(), 2);
        assert_eq!(index.with_tag("red").len(), 2);
        assert_eq!(index.matching_path(|p| p.starts_with("/css")).len(), 1);
        assert_eq!(url_of(&av), "http://h/img/a");

        // A removal notice for another object than the recorded one is ignored.
        index.on_removal(&b, &Slot::Object(object(&[])), RemovalCause::Size);
        assert_eq!(index.len(), 4);
        index.on_removal(&b, &Slot::Object(ob.clone()), RemovalCause::Replaced);
        assert_eq!(index.len(), 4);
        index.on_removal(&b, &Slot::Object(ob), RemovalCause::Size);
        assert_eq!(index.len(), 3);
        assert_eq!(index.with_tag("red").len(), 1);
        drop(oc);
        assert_eq!(index.dead(), vec![c]);
        index.clear();
        assert!(index.is_empty());
    }
}
