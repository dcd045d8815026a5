//! Edge health for steering: every edge's `/_edge/ready` on its admin
//! listener, polled on an interval.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

/// How long one readiness check may take.
const CHECK_TIMEOUT: Duration = Duration::from_millis(400);

/// An edge the steering DNS may answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeTarget {
    /// Edge name.
    pub name: String,
    /// Its region.
    pub region: String,
    /// The address answered in DNS (its public listener's IP).
    pub ip: Ipv4Addr,
    /// Its admin listener, polled for readiness.
    pub admin: SocketAddr,
}

/// The latest health of every edge, shared between the poller and readers;
/// cheap to clone. An edge never checked is unhealthy.
#[derive(Debug, Clone, Default)]
pub struct Health {
    inner: Arc<RwLock<HashMap<String, bool>>>,
}

impl Health {
    /// Whether `edge` passed its last check.
    pub fn is_healthy(&self, edge: &str) -> bool {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(edge)
            .copied()
            .unwrap_or(false)
    }

    /// The last check result, `None` before the first.
    pub fn last(&self, edge: &str) -> Option<bool> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(edge)
            .copied()
    }

    /// Records a check result.
    pub fn set(&self, edge: &str, healthy: bool) {
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(edge.to_string(), healthy);
    }
}

/// Checks one edge once.
pub async fn check(admin: SocketAddr) -> bool {
    matches!(
        crate::lab::http::get(admin, "/_edge/ready", CHECK_TIMEOUT).await,
        Ok((status, _)) if status.is_success()
    )
}

/// Checks every edge at once, then again every `interval`, until `stop`
/// becomes true.
pub async fn poll(
    targets: Vec<EdgeTarget>,
    health: Health,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let checks = targets.iter().map(|t| async {
            let ok = check(t.admin).await;
            (t.name.as_str(), ok)
        });
        for (name, ok) in futures_util::future::join_all(checks).await {
            match health.last(name) {
                Some(before) if before != ok => {
                    tracing::info!(edge = name, healthy = ok, "edge health changed");
                }
                None => tracing::debug!(edge = name, healthy = ok, "first edge health check"),
                Some(_) => {}
            }
            health.set(name, ok);
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
}
