//! Everything a request handler needs, built once from the config.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use edgecache::config::{EdgeConfig, RouteTable, SetCookieSetting};
use edgecache::http_cache::cache_status::CacheName;
use edgecache::http_cache::storable::{SetCookiePolicy, StoreOptions};
use http::{HeaderName, HeaderValue};

use crate::coalesce::Inflight;
use crate::health::Upstream;
use crate::origin_client::{OriginClient, OriginError};
use crate::resolver::HickoryResolver;
use crate::store::Store;

/// Why the edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No origin URL in the flags or config.
    #[error("no origin configured: pass --origin URL or set `origin` in the config")]
    NoOrigin,
    /// The origin URL does not parse.
    #[error("origin URL `{url}`: {reason}")]
    BadOrigin {
        /// The URL given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// DNS resolver setup failed.
    #[error(transparent)]
    Dns(#[from] crate::resolver::DnsError),
    /// The HTTPS listener's certificates do not load.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// Counters for the admin stats endpoint.
#[derive(Default)]
pub struct Counters {
    /// Requests answered from the cache (fresh).
    pub hits: AtomicU64,
    /// Requests that needed the origin.
    pub misses: AtomicU64,
    /// Stale answers.
    pub stale: AtomicU64,
    /// Requests that waited for another's fetch.
    pub collapsed: AtomicU64,
    /// Requests passed through uncached.
    pub passes: AtomicU64,
    /// Origin fetches made.
    pub origin_fetches: AtomicU64,
    /// Origin fetches that failed.
    pub origin_failures: AtomicU64,
}

impl Counters {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Shared state of a running edge. A reload builds a new one with
/// [`EdgeState::reloaded`] (in `reload.rs`): fields that must survive a
/// reload are copied there.
pub struct EdgeState {
    /// The config it was built from.
    pub config: EdgeConfig,
    /// Per-route policy.
    pub routes: RouteTable,
    /// The object store.
    pub store: Store,
    /// Fetches in flight, for coalescing.
    pub inflight: Arc<Inflight>,
    /// The primary origin, then the backup (if configured).
    pub upstreams: Vec<Arc<Upstream>>,
    /// Storage rules.
    pub store_opts: StoreOptions,
    /// Targeted cache-control fields, in precedence order.
    pub targets: Vec<HeaderName>,
    /// Response headers removed before answering clients.
    pub strip_headers: Vec<HeaderName>,
    /// Our `Via` entry, e.g. `1.1 edgecache`.
    pub via: HeaderValue,
    /// Our name as our `Cache-Status` entry's item.
    pub cache_name: CacheName,
    /// Counters (shared with the states that reloads build).
    pub counters: Arc<Counters>,
    /// When the node started.
    pub started: Instant,
    /// The link to the purge control plane.
    pub control: Arc<crate::purge::ControlLink>,
}

impl EdgeState {
    /// Builds the state from a validated config.
    pub fn new(config: EdgeConfig) -> Result<EdgeState, StartError> {
        let url = config.origin.clone().ok_or(StartError::NoOrigin)?;
        let mut upstreams = vec![Arc::new(build_upstream(&config, &url, "primary")?)];
        if let Some(backup) = &config.origin_client.backup {
            upstreams.push(Arc::new(build_upstream(&config, backup, "backup")?));
        }
        let store_opts = StoreOptions {
            set_cookie: match config.cache.set_cookie {
                SetCookieSetting::Bypass => SetCookiePolicy::Bypass,
                SetCookieSetting::Strip => SetCookiePolicy::Strip,
                SetCookieSetting::Store => SetCookiePolicy::Store,
            },
            heuristic_fraction: config.cache.heuristic_fraction,
            heuristic_max: config.cache.heuristic_max.0,
            default_ttl: None,
        };
        let header_names = |names: &[String]| -> Vec<HeaderName> {
            names
                .iter()
                .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                .collect()
        };
        let via = HeaderValue::from_str(&format!("1.1 {}", config.name))
            .unwrap_or_else(|_| HeaderValue::from_static("1.1 edgecache"));
        Ok(EdgeState {
            routes: config.route_table(),
            store: Store::new(config.cache.capacity.0),
            inflight: Arc::new(Inflight::default()),
            upstreams,
            store_opts,
            targets: header_names(&config.cache.targeted_fields),
            strip_headers: header_names(&config.cache.strip_response_headers),
            via,
            cache_name: CacheName::new(&config.name),
            counters: Arc::new(Counters::default()),
            started: Instant::now(),
            control: Arc::new(crate::purge::ControlLink::new(&config)),
            config,
        })
    }
}

impl EdgeState {
    /// The upstream to use now: the primary while it is UP, else the backup
    /// while that is UP; when all are DOWN, the fail-fast error.
    pub fn pick_upstream(&self) -> Result<&Arc<Upstream>, OriginError> {
        self.upstreams
            .iter()
            .find(|u| !u.is_down())
            .ok_or_else(|| self.upstreams[0].down_error())
    }

    /// Whether every upstream is DOWN (a known partition).
    pub fn all_down(&self) -> bool {
        self.upstreams.iter().all(|u| u.is_down())
    }
}

fn build_upstream(
    config: &EdgeConfig,
    url: &str,
    role: &'static str,
) -> Result<Upstream, StartError> {
    let bad = |reason: String| StartError::BadOrigin {
        url: url.to_string(),
        reason,
    };
    let base: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(e.to_string()))?;
    let fixed = match (&config.origin_client.addresses, base.host()) {
        (addrs, Some(host)) if !addrs.is_empty() && role == "primary" => {
            Some((host.to_string(), addrs.clone()))
        }
        _ => None,
    };
    let resolver = HickoryResolver::with_fixed(&config.dns, fixed)?;
    let client = OriginClient::new(&base, &config.origin_client, resolver)
        .map_err(|e| bad(e.to_string()))?;
    Ok(Upstream::new(
        url.to_string(),
        role,
        client,
        config.health.clone(),
    ))
}
