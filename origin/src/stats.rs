//! Request counters, served as JSON by `GET /_stats`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinct paths tracked individually; requests for further paths only
/// count in the total, so the map cannot grow without bound.
const MAX_PATHS: usize = 10_000;

/// Counts requests served, in total and per request path.
#[derive(Debug, Default)]
pub struct Stats {
    total: AtomicU64,
    by_path: Mutex<HashMap<String, u64>>,
}

impl Stats {
    /// Counts one request for `path`.
    pub fn record(&self, path: &str) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let mut map = self.by_path.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(path) {
            *n += 1;
        } else if map.len() < MAX_PATHS {
            map.insert(path.to_owned(), 1);
        }
    }

    /// Total requests counted.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Forgets every count.
    pub fn reset(&self) {
        let mut map = self.by_path.lock().unwrap_or_else(|e| e.into_inner());
        map.clear();
        self.total.store(0, Ordering::Relaxed);
    }

    /// `{"requests": N, "by_path": {"/a.css": 3, ...}}`.
    pub fn to_json(&self) -> serde_json::Value {
        let map = self.by_path.lock().unwrap_or_else(|e| e.into_inner());
        let by_path: BTreeMap<&str, u64> = map.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        serde_json::json!({ "requests": self.total(), "by_path": by_path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_path() {
        let s = Stats::default();
        s.record("/a");
        s.record("/a");
        s.record("/b");
        let v = s.to_json();
        assert_eq!(v["requests"], 3);
        assert_eq!(v["by_path"]["/a"], 2);
        s.reset();
        assert_eq!(s.to_json()["requests"], 0);
    }
}
