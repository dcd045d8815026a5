//! The state of this edge's link to the purge control plane: connected or
//! not, what it has applied, and when it last heard from the log. The
//! request path reads it to enforce `max_purge_lag`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use edgecache::config::{EdgeConfig, Route};

/// This edge's link to the control plane.
pub struct ControlLink {
    /// The control listener's address; `None`: purge is edge-local only.
    pub addr: Option<String>,
    /// The configured id (the default needs the public address; see [`ControlLink::id`]).
    configured_id: Option<String>,
    id: OnceLock<String>,
    /// This edge's region.
    pub region: String,
    /// When this process's cache started filling, ms since the epoch.
    pub cache_since_ms: u64,
    started: Instant,
    connected: AtomicBool,
    last_applied: AtomicU64,
    head_seq: AtomicU64,
    /// Milliseconds after `started` of the last frame from the control plane.
    last_contact_ms: AtomicU64,
    ever_contacted: AtomicBool,
    connects: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl ControlLink {
    /// The link as configured, not yet connected.
    pub fn new(config: &EdgeConfig) -> ControlLink {
        ControlLink {
            // A NATS-backed edge follows the bus instead of a control address.
            addr: config
                .control
                .addr
                .clone()
                .or_else(|| config.purge.nats().map(|nats| nats.urls.join(","))),
            configured_id: config.control.id.clone(),
            id: OnceLock::new(),
            region: config
                .control
                .region
                .clone()
                .unwrap_or_else(|| "default".to_string()),
            cache_since_ms: edgecache::purge::now_ms(),
            started: Instant::now(),
            connected: AtomicBool::new(false),
            last_applied: AtomicU64::new(0),
            head_seq: AtomicU64::new(0),
            last_contact_ms: AtomicU64::new(0),
            ever_contacted: AtomicBool::new(false),
            connects: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    /// Fixes the edge id once the public address is known: the configured
    /// id, else `<name>@<public address>`.
    pub fn resolve_id(&self, name: &str, public_addr: std::net::SocketAddr) -> &str {
        self.id.get_or_init(|| {
            self.configured_id
                .clone()
                .unwrap_or_else(|| format!("{name}@{public_addr}"))
        })
    }

    /// The edge id (the configured one until [`ControlLink::resolve_id`] ran).
    pub fn id(&self) -> Option<&str> {
        self.id
            .get()
            .map(String::as_str)
            .or(self.configured_id.as_deref())
    }

    /// Records a frame from the control plane.
    pub fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_contact_ms.store(ms, Ordering::Relaxed);
        self.ever_contacted.store(true, Ordering::Relaxed);
    }

    /// Time since the last frame from the control plane (since start when
    /// there was none yet).
    pub fn since_contact(&self) -> Duration {
        let last = Duration::from_millis(self.last_contact_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    /// Whether this route must stop serving stale: the edge follows a
    /// control plane and has not heard from it for longer than the route's
    /// `max_purge_lag`.
    pub fn lag_exceeded(&self, route: &Route) -> bool {
        self.addr.is_some()
            && route
                .max_purge_lag
                .is_some_and(|max| self.since_contact() > max.0)
    }

    /// Marks the session welcomed (true) or gone (false).
    pub fn set_connected(&self, connected: bool) {
        if connected && !self.connected.swap(true, Ordering::Relaxed) {
            self.connects.fetch_add(1, Ordering::Relaxed);
        } else if !connected {
            self.connected.store(false, Ordering::Relaxed);
        }
    }

    /// Whether a session is up.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// The last purge sequence number applied (0: none).
    pub fn last_applied(&self) -> u64 {
        self.last_applied.load(Ordering::Relaxed)
    }

    /// Records a purge sequence number as applied.
    pub fn set_last_applied(&self, seq: u64) {
        self.last_applied.store(seq, Ordering::Relaxed);
    }

    /// Records the control plane's newest sequence number.
    pub fn set_head_seq(&self, seq: u64) {
        self.head_seq.store(seq, Ordering::Relaxed);
    }

    /// Records why the last session ended.
    pub fn set_error(&self, reason: Option<String>) {
        if let Ok(mut e) = self.last_error.lock() {
            *e = reason;
        }
    }

    /// The link's state, for the admin endpoints.
    pub fn snapshot(&self) -> serde_json::Value {
        let applied = self.last_applied();
        let head = self.head_seq.load(Ordering::Relaxed);
        let contacted = self.ever_contacted.load(Ordering::Relaxed);
        serde_json::json!({
            "configured": self.addr.is_some(),
            "addr": self.addr,
            "id": self.id(),
            "region": self.region,
            "connected": self.is_connected(),
            "last_applied": applied,
            "head_seq": head,
            "behind": if applied > 0 { head.saturating_sub(applied) } else { 0 },
            "ms_since_contact": if contacted {
                Some(u64::try_from(self.since_contact().as_millis()).unwrap_or(u64::MAX))
            } else {
                None
            },
            "lag_ms": u64::try_from(self.since_contact().as_millis()).unwrap_or(u64::MAX),
            "connects": self.connects.load(Ordering::Relaxed),
            "cache_since_ms": self.cache_since_ms,
            "last_error": self.last_error.lock().ok().and_then(|e| e.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgecache::config::HumanDuration;

    #[test]
    fn lag_only_counts_with_a_control_plane() {
        let mut config = EdgeConfig::default();
        let route = Route {
            max_purge_lag: Some(HumanDuration(Duration::ZERO)),
            ..Route::default()
        };
        std::thread::sleep(Duration::from_millis(5));
        assert!(!ControlLink::new(&config).lag_exceeded(&route));
        config.control.addr = Some("127.0.0.1:1".into());
        let link = ControlLink::new(&config);
        std::thread::sleep(Duration::from_millis(5));
        assert!(link.lag_exceeded(&route));
        assert!(!link.lag_exceeded(&Route::default()));
    }
}
