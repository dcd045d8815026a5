//! Applying a purge to the store: select the storage keys a selector names,
//! then remove them (hard), mark them stale (soft), or only count them
//! (dry run).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use edgecache::cache_key::CacheKey;
use edgecache::purge::PurgeSelector;

use super::index::url_of;
use crate::store::{Slot, Store};

/// What to do with the selected entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Remove them.
    Hard,
    /// Mark them stale, keeping them for revalidation and stale serving.
    Soft,
    /// Change nothing; count them.
    DryRun,
}

impl Action {
    /// Hard or soft, as a purge record says.
    pub fn from_soft(soft: bool) -> Action {
        if soft { Action::Soft } else { Action::Hard }
    }
}

/// Applies `selector` to the store; returns the number of objects removed,
/// marked stale, or (dry run) that would be.
pub async fn apply(store: &Store, selector: &PurgeSelector, action: Action) -> u64 {
    if matches!(selector, PurgeSelector::All) && action == Action::Hard {
        return drop_all(store);
    }
    let keys = select(store, selector);
    let cache = store.cache();
    let mut affected = 0;
    match action {
        Action::DryRun => {
            for key in &keys {
                if matches!(cache.get(key).await, Some(Slot::Object(_))) {
                    affected += 1;
                }
            }
        }
        Action::Soft => {
            let now = SystemTime::now();
            for key in &keys {
                if let Some(Slot::Object(object)) = cache.get(key).await {
                    let marked = Arc::new(object.soft_purged(now));
                    cache
                        .insert(key.clone(), Slot::Object(marked.clone()))
                        .await;
                    store.index().record(key, &marked);
                    affected += 1;
                } else {
                    store.index().forget(key);
                }
            }
        }
        Action::Hard => {
            let mut urls = BTreeSet::new();
            for key in &keys {
                if let Some(Slot::Object(_)) = cache.remove(key).await {
                    affected += 1;
                }
                store.index().forget(key);
                if key.as_str().len() != url_of(key).len() {
                    urls.insert(url_of(key).to_string());
                }
            }
            // The Vary markers of URLs whose variants went, unless a tag
            // purge took only some variants.
            if !matches!(selector, PurgeSelector::Tags(_)) {
                for url in urls {
                    if let Some(primary) = parse_url(&url) {
                        if let Some(Slot::Variants(_)) = cache.get(&primary).await {
                            cache.remove(&primary).await;
                        }
                    }
                }
            }
        }
    }
    affected
}

/// Drops the whole cache (purge all, or the control plane's ResetCache);
/// returns how many objects were stored.
pub fn drop_all(store: &Store) -> u64 {
    let cache = store.cache();
    let affected = store
        .index()
        .all()
        .iter()
        .filter(|k| cache.contains_key(*k))
        .count() as u64;
    // Index first: anything stored meanwhile is indexed again afterwards,
    // so the index stays a superset of the store.
    store.index().clear();
    cache.invalidate_all();
    affected
}

/// Forgets index entries whose object left the store unnoticed; returns
/// how many went.
pub fn prune(store: &Store) -> usize {
    let mut pruned = 0;
    for key in store.index().dead() {
        if !store.cache().contains_key(&key) {
            store.index().forget(&key);
            pruned += 1;
        }
    }
    pruned
}

/// The storage keys a selector names, without duplicates.
pub fn select(store: &Store, selector: &PurgeSelector) -> Vec<CacheKey> {
    let index = store.index();
    let mut keys: Vec<CacheKey> = match selector {
        PurgeSelector::All => index.all(),
        PurgeSelector::Tags(tags) => tags.iter().flat_map(|t| index.with_tag(t)).collect(),
        PurgeSelector::Urls(urls) => urls
            .iter()
            .flat_map(|u| match u.strip_prefix('/') {
                Some(_) => index.matching_path(|p| p == u),
                None => spellings(u)
                    .iter()
                    .flat_map(|k| index.for_url(k.as_str()))
                    .collect(),
            })
            .collect(),
        PurgeSelector::Prefixes(prefixes) => prefixes
            .iter()
            .flat_map(|p| match p.strip_prefix('/') {
                Some(_) => index.matching_path(|path| path.starts_with(p.as_str())),
                None => spellings(p)
                    .iter()
                    .flat_map(|k| index.with_prefix(k.as_str()))
                    .collect(),
            })
            .collect(),
    };
    keys.sort();
    keys.dedup();
    keys
}

/// An absolute `scheme://host/path?query` as the edge keys it (host
/// lowercased, default port dropped), or `None` when it is not absolute.
pub fn parse_url(url: &str) -> Option<CacheKey> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (host, path_and_query) = rest.split_at(end);
    if scheme.is_empty() || host.is_empty() {
        return None;
    }
    Some(CacheKey::new(
        &scheme.to_ascii_lowercase(),
        host,
        path_and_query,
    ))
}

/// The keys an absolute URL may be stored under: the edge keys every
/// request as `http` (TLS is terminated in front of the key), so an
/// `https://` URL also names its `http://` twin and the other way round.
fn spellings(url: &str) -> Vec<CacheKey> {
    let Some(key) = parse_url(url) else {
        return Vec::new();
    };
    let mut out = vec![key.clone()];
    let text = key.as_str();
    let twin = if let Some(rest) = text.strip_prefix("https://") {
        Some(format!("http://{rest}"))
    } else {
        text.strip_prefix("http://")
            .map(|rest| format!("https://{rest}"))
    };
    if let Some(twin) = twin.and_then(|t| parse_url(&t)) {
        out.push(twin);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalised_like_cache_keys() {
        let k = parse_url("http://CDN.example:80/a.css?v=1").map(|k| k.to_string());
        assert_eq!(k.as_deref(), Some("http://cdn.example/a.css?v=1"));
        let k = parse_url("https://cdn.example").map(|k| k.to_string());
        assert_eq!(k.as_deref(), Some("https://cdn.example/"));
        assert!(parse_url("/a.css").is_none());
        assert!(parse_url("http:///a").is_none());
        let s: Vec<String> = spellings("https://h:443/x")
            .iter()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(s, vec!["https://h/x", "http://h/x"]);
    }
}
