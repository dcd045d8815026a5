//! A link: its configuration, its listener and accept loop, and the handle
//! that controls it while it runs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, warn};

use super::{Mode, WanError, pump};

/// The largest delay or jitter a link accepts; larger values are clamped by
/// [`LinkHandle::set_delay`] and refused by [`Link::start`].
pub const MAX_DELAY: Duration = Duration::from_secs(600);

/// How one link is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// Name of the link (`[A-Za-z0-9._-]`, at most 64 characters), used by
    /// the admin API.
    pub name: String,
    /// Where the link listens; must be a loopback address. Port 0 picks a
    /// free port, see [`LinkHandle::local_addr`].
    pub listen: SocketAddr,
    /// Where the link connects for each accepted connection.
    pub upstream: SocketAddr,
    /// One-way delay, applied in each direction.
    pub delay: Duration,
    /// Extra random delay in `[0, jitter]`, drawn for every chunk of data.
    pub jitter: Duration,
    /// The initial mode.
    pub mode: Mode,
}

/// Traffic counters of a link, since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStats {
    /// Connections accepted (refused ones included).
    pub connections_accepted: u64,
    /// Connections currently open.
    pub connections_open: u64,
    /// Bytes delivered from clients to the upstream.
    pub bytes_to_upstream: u64,
    /// Bytes delivered from the upstream to clients.
    pub bytes_to_client: u64,
}

/// A snapshot of a link's settings and counters, as the admin API shows it.
/// The mode is flattened: `"mode":"reset-mid-stream","after_bytes":100`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkState {
    /// Name of the link.
    pub name: String,
    /// Address the link listens on.
    pub listen: SocketAddr,
    /// Address the link forwards to.
    pub upstream: SocketAddr,
    /// Current mode.
    #[serde(flatten)]
    pub mode: Mode,
    /// One-way delay in milliseconds.
    pub delay_ms: u64,
    /// Jitter in milliseconds.
    pub jitter_ms: u64,
    /// Traffic counters.
    pub stats: LinkStats,
}

/// The mode with a generation number that changes on every `set_mode`, so a
/// connection can tell "set again" from "unchanged".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ModeState {
    pub(crate) mode: Mode,
    pub(crate) generation: u64,
}

/// Live counters, shared by the accept loop and the connections.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) accepted: AtomicU64,
    pub(crate) open: AtomicU64,
    pub(crate) to_upstream: AtomicU64,
    pub(crate) to_client: AtomicU64,
}

/// State shared by a link's handle, accept loop and connections.
pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) listen: SocketAddr,
    pub(crate) upstream: SocketAddr,
    pub(crate) mode: watch::Sender<ModeState>,
    /// (delay, jitter).
    delay: Mutex<(Duration, Duration)>,
    pub(crate) counters: Counters,
    /// Becomes true once on shutdown.
    pub(crate) closed: watch::Sender<bool>,
}

impl Shared {
    /// Current (delay, jitter).
    pub(crate) fn delay(&self) -> (Duration, Duration) {
        *self
            .delay
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running link proxy: its listener and accept loop. [`Link::start`] binds
/// it and runs it on its own task; it is controlled through the returned
/// [`LinkHandle`] and runs until [`LinkHandle::shutdown`].
pub struct Link {
    listener: TcpListener,
    shared: Arc<Shared>,
}

/// Whether `name` is usable as a link name (and in an admin URL path).
pub(crate) fn valid_link_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Link {
    /// Validates `cfg`, binds its listener and starts accepting on a new
    /// task.
    pub async fn start(cfg: LinkConfig) -> Result<LinkHandle, WanError> {
        let invalid = |reason: String| WanError::InvalidConfig {
            link: cfg.name.clone(),
            reason,
        };
        if !valid_link_name(&cfg.name) {
            return Err(invalid(
                "the name must be 1 to 64 characters from [A-Za-z0-9._-]".to_string(),
            ));
        }
        if !cfg.listen.ip().is_loopback() {
            return Err(invalid(format!(
                "listen address {} is not a loopback address",
                cfg.listen
            )));
        }
        if cfg.delay > MAX_DELAY || cfg.jitter > MAX_DELAY {
            return Err(invalid(format!(
                "delay {:?} and jitter {:?} must each be at most {MAX_DELAY:?}",
                cfg.delay, cfg.jitter
            )));
        }
        let bind_err = |source| WanError::Bind {
            link: cfg.name.clone(),
            addr: cfg.listen,
            source,
        };
        let listener = TcpListener::bind(cfg.listen).await.map_err(bind_err)?;
        let listen = listener.local_addr().map_err(bind_err)?;
        let (mode, _) = watch::channel(ModeState {
            mode: cfg.mode,
            generation: 0,
        });
        let (closed, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            name: cfg.name,
            listen,
            upstream: cfg.upstream,
            mode,
            delay: Mutex::new((cfg.delay, cfg.jitter)),
            counters: Counters::default(),
            closed,
        });
        debug!(link = %shared.name, %listen, upstream = %shared.upstream, "link started");
        let handle = LinkHandle {
            shared: Arc::clone(&shared),
        };
        tokio::spawn(Link { listener, shared }.run());
        Ok(handle)
    }

    /// Accepts until shutdown; each connection runs on its own task.
    async fn run(self) {
        let mut closed = self.shared.closed.subscribe();
        loop {
            let accepted = tokio::select! {
                _ = closed.wait_for(|c| *c) => break,
                accepted = self.listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => self.accepted(stream, peer),
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    warn!(link = %self.shared.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        debug!(link = %self.shared.name, "link shut down");
    }

    fn accepted(&self, stream: TcpStream, peer: SocketAddr) {
        self.shared
            .counters
            .accepted
            .fetch_add(1, Ordering::Relaxed);
        let mode = self.shared.mode.borrow().mode;
        debug!(link = %self.shared.name, %peer, %mode, "accepted");
        if mode == Mode::Refuse {
            pump::reset(&stream);
            return;
        }
        tokio::spawn(pump::serve_connection(stream, Arc::clone(&self.shared)));
    }
}

/// Controls a running link; cheap to clone. Dropping every handle does not
/// stop the link: call [`LinkHandle::shutdown`].
#[derive(Clone)]
pub struct LinkHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LinkHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkHandle")
            .field("name", &self.shared.name)
            .field("listen", &self.shared.listen)
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

impl LinkHandle {
    /// The address the link actually listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.listen
    }

    /// The link's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The address the link forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.shared.mode.borrow().mode
    }

    /// Changes the mode, for new and open connections.
    pub fn set_mode(&self, mode: Mode) {
        debug!(link = %self.shared.name, %mode, "mode set");
        self.shared.mode.send_modify(|state| {
            state.mode = mode;
            state.generation = state.generation.wrapping_add(1);
        });
    }

    /// The current one-way delay and jitter.
    pub fn delay(&self) -> (Duration, Duration) {
        self.shared.delay()
    }

    /// Changes the one-way delay and jitter (each clamped to [`MAX_DELAY`]).
    /// Applies to data read from now on, also on open connections; data
    /// is never reordered.
    pub fn set_delay(&self, delay: Duration, jitter: Duration) {
        let value = (delay.min(MAX_DELAY), jitter.min(MAX_DELAY));
        *self
            .shared
            .delay
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = value;
    }

    /// The traffic counters.
    pub fn stats(&self) -> LinkStats {
        let c = &self.shared.counters;
        LinkStats {
            connections_accepted: c.accepted.load(Ordering::Relaxed),
            connections_open: c.open.load(Ordering::Relaxed),
            bytes_to_upstream: c.to_upstream.load(Ordering::Relaxed),
            bytes_to_client: c.to_client.load(Ordering::Relaxed),
        }
    }

    /// A snapshot of the settings and counters.
    pub fn state(&self) -> LinkState {
        let (delay, jitter) = self.delay();
        LinkState {
            name: self.shared.name.clone(),
            listen: self.shared.listen,
            upstream: self.shared.upstream,
            mode: self.mode(),
            delay_ms: duration_ms(delay),
            jitter_ms: duration_ms(jitter),
            stats: self.stats(),
        }
    }

    /// Stops the link: the listener closes and open connections are dropped
    /// shortly after. Idempotent.
    pub fn shutdown(&self) {
        self.shared.closed.send_replace(true);
    }

    /// Whether [`LinkHandle::shutdown`] has been called.
    pub fn is_shut_down(&self) -> bool {
        *self.shared.closed.borrow()
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names() {
        assert!(valid_link_name("eu-west.origin_1"));
        assert!(!valid_link_name(""));
        assert!(!valid_link_name("a/b"));
        assert!(!valid_link_name("a b"));
        assert!(!valid_link_name(&"x".repeat(65)));
    }

    #[test]
    fn state_json_round_trip() {
        let state = LinkState {
            name: "origin".into(),
            listen: "127.0.0.9:1000".parse().unwrap(),
            upstream: "127.0.0.5:8080".parse().unwrap(),
            mode: Mode::ResetMidStream { after_bytes: 5 },
            delay_ms: 50,
            jitter_ms: 3,
            stats: LinkStats::default(),
        };
        let json = serde_json::to_value(&state).unwrap();
        assert_eq!(json["mode"], "reset-mid-stream");
        assert_eq!(json["after_bytes"], 5);
        assert_eq!(json["stats"]["bytes_to_client"], 0);
        assert_eq!(serde_json::from_value::<LinkState>(json).unwrap(), state);
    }

    #[tokio::test]
    async fn start_refuses_bad_config() {
        let cfg = LinkConfig {
            name: "x".into(),
            listen: "10.0.0.1:0".parse().unwrap(),
            upstream: "127.0.0.1:1".parse().unwrap(),
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            mode: Mode::Up,
        };
        let err = Link::start(cfg.clone()).await.unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
        let err = Link::start(LinkConfig {
            name: "bad name".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            ..cfg
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains("bad name"), "{err}");
    }
}
