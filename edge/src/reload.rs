//! Reloading a running edge (SIGHUP): a new config and certificate set take
//! effect for new requests and handshakes, open connections carry on, and
//! what must outlive a reload (the store, coalescing, counters, the health
//! of unchanged origins) is shared between the old state and the new.
//!
//! An invalid config or certificate is refused whole; the running config
//! stays.

use std::path::PathBuf;
use std::sync::Arc;

use edgecache::config::{ConfigError, EdgeConfig};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Edge;
use crate::health::Upstream;
use crate::state::{EdgeState, StartError};
use crate::tls::{CertSet, TlsError};

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The config file does not load.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A certificate or key does not load.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The new state could not be built (e.g. a bad origin URL).
    #[error(transparent)]
    Start(#[from] StartError),
}

impl EdgeState {
    /// A state for `config` that shares with `self` what must survive a
    /// reload: the store, the in-flight fetches, the hit-for-pass keys, the
    /// counters, the start time, the purge control link, and every upstream whose URL and client
    /// settings are unchanged (so its health carries over).
    ///
    /// Fields added to `EdgeState` get fresh values from [`EdgeState::new`]
    /// unless copied here.
    pub fn reloaded(&self, config: EdgeConfig) -> Result<EdgeState, StartError> {
        let same_client = json(&self.config.origin_client) == json(&config.origin_client)
            && json(&self.config.dns) == json(&config.dns)
            && json(&self.config.health) == json(&config.health);
        if self.config.cache.capacity != config.cache.capacity {
            tracing::warn!(
                "cache.capacity changes on restart only; the store keeps {}",
                self.config.cache.capacity
            );
        }
        let mut next = EdgeState::new(config)?;
        next.store = self.store.clone();
        next.inflight = self.inflight.clone();
        next.counters = self.counters.clone();
        next.started = self.started;
        // The purge link (applied sequence, lag) belongs to the node.
        next.control = self.control.clone();
        if same_client {
            for upstream in &mut next.upstreams {
                if let Some(old) = self
                    .upstreams
                    .iter()
                    .find(|o| o.name == upstream.name && o.role == upstream.role)
                {
                    *upstream = old.clone();
                }
            }
        }
        Ok(next)
    }
}

fn json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

impl Edge {
    /// Applies a new config: certificates first (refused whole if one does
    /// not load), then the state. Listener addresses do not change.
    pub fn reload(&self, config: EdgeConfig) -> Result<(), ReloadError> {
        let certs = match &self.tls {
            Some(_) => Some(CertSet::load(&config.tls.certs)?),
            None => None,
        };
        let current = self.current.load_full();
        let next = Arc::new(current.reloaded(config)?);
        let (old, new) = (&current.config, &next.config);
        if old.listen != new.listen
            || old.admin_listen != new.admin_listen
            || old.tls.listen != new.tls.listen
        {
            tracing::warn!(
                "listener addresses change on restart only; still serving on the old ones"
            );
        }
        if let (Some(resolver), Some(certs)) = (&self.tls, certs) {
            resolver.replace(certs);
        }
        if let Ok(mut heartbeats) = self.heartbeats.lock() {
            heartbeats.sync(&next.upstreams);
        }
        self.current.store(next);
        Ok(())
    }
}

/// Logs a refused reload with the file, line, key and reason.
pub fn log_refused(err: &ReloadError, text: Option<&str>) {
    match err {
        ReloadError::Config(ConfigError::Invalid {
            path,
            line,
            key,
            reason,
        }) => tracing::error!(
            file = %path.display(), line, key = %key, reason = %reason,
            "config reload refused; the running config stays"
        ),
        ReloadError::Config(ConfigError::Parse { path, message }) => {
            let (line, key) = locate_parse_error(message, text);
            let reason = message.lines().last().unwrap_or(message);
            tracing::error!(
                file = %path.display(), line, key = %key, reason = %reason,
                "config reload refused; the running config stays"
            );
        }
        ReloadError::Config(ConfigError::Read { path, source }) => tracing::error!(
            file = %path.display(), reason = %source,
            "config reload refused; the running config stays"
        ),
        other => tracing::error!(
            reason = %other,
            "config reload refused; the running config stays"
        ),
    }
}

/// The line (from toml's "at line N") and the key assigned on it.
fn locate_parse_error(message: &str, text: Option<&str>) -> (usize, String) {
    let line = message
        .split("line ")
        .nth(1)
        .and_then(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<usize>().ok()
        })
        .unwrap_or(0);
    let key = text
        .and_then(|t| t.lines().nth(line.saturating_sub(1)))
        .and_then(|l| l.split_once('='))
        .map_or_else(|| "-".to_string(), |(k, _)| k.trim().to_string());
    (line, key)
}

/// Reads the config file's text for error locations, when there is one.
pub fn config_text(path: Option<&PathBuf>) -> Option<String> {
    path.and_then(|p| std::fs::read_to_string(p).ok())
}

/// The heartbeat tasks, one per upstream, restarted for upstreams that a
/// reload replaced.
pub struct Heartbeats {
    shutdown: watch::Receiver<bool>,
    running: Vec<(Arc<Upstream>, watch::Sender<bool>, JoinHandle<()>)>,
}

impl Heartbeats {
    /// Starts heartbeats for `upstreams`; all end on `shutdown`.
    pub fn start(upstreams: &[Arc<Upstream>], shutdown: watch::Receiver<bool>) -> Heartbeats {
        let mut heartbeats = Heartbeats {
            shutdown,
            running: Vec::new(),
        };
        heartbeats.sync(upstreams);
        heartbeats
    }

    /// Stops the heartbeats of upstreams no longer in use and starts those
    /// of new ones.
    pub fn sync(&mut self, upstreams: &[Arc<Upstream>]) {
        self.running.retain(|(upstream, stop, _)| {
            let keep = upstreams.iter().any(|u| Arc::ptr_eq(u, upstream));
            if !keep {
                let _ = stop.send(true);
            }
            keep
        });
        for upstream in upstreams {
            if self
                .running
                .iter()
                .any(|(u, _, _)| Arc::ptr_eq(u, upstream))
            {
                continue;
            }
            let (stop, stop_rx) = watch::channel(false);
            let mut shutdown = self.shutdown.clone();
            let task_upstream = upstream.clone();
            let task = tokio::spawn(async move {
                tokio::select! {
                    _ = shutdown.changed() => {}
                    _ = crate::health::heartbeat(task_upstream, stop_rx) => {}
                }
            });
            self.running.push((upstream.clone(), stop, task));
        }
    }

    /// Stops every heartbeat and waits for them.
    pub async fn stop(self) {
        for (_, stop, task) in self.running {
            let _ = stop.send(true);
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::locate_parse_error;

    #[test]
    fn parse_errors_are_located() {
        let text = "origin = \"http://a:1\"\n[cache]\ncapacityy = \"1MiB\"\n";
        let msg = "TOML parse error at line 3, column 1\n  |\nunknown field `capacityy`";
        assert_eq!(locate_parse_error(msg, Some(text)), (3, "capacityy".into()));
        assert_eq!(locate_parse_error("weird", None), (0, "-".into()));
    }
}
