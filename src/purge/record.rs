//! The purge record: what to remove (or mark stale), its id and sequence.

use serde::{Deserialize, Serialize};

/// Which cached entries a purge selects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PurgeSelector {
    /// Exact URLs (`http://host/path?query`), every Vary variant of each.
    Urls(Vec<String>),
    /// URL prefixes (`http://host/path-prefix`).
    Prefixes(Vec<String>),
    /// Surrogate keys (`Surrogate-Key` / `Cache-Tag` values).
    Tags(Vec<String>),
    /// Everything.
    All,
}

/// One purge, as appended to the log and applied by every edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeRecord {
    /// Unique id (UUID v7), also the de-duplication key of a retried publish.
    pub id: uuid::Uuid,
    /// Dense sequence number, never reused: 1, 2, 3, ...
    pub seq: u64,
    /// When the purge was accepted, in milliseconds since the Unix epoch.
    pub issued_at_ms: u64,
    /// What it selects.
    pub selector: PurgeSelector,
    /// Soft purge: mark entries stale instead of removing them.
    pub soft: bool,
}
