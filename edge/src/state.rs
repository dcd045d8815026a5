//! Everything a request handler needs, built once from the config.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use edgecache::cache_key::CacheKey;
use edgecache::config::{EdgeConfig, RouteTable, SetCookieSetting};
use edgecache::http_cache::storable::{SetCookiePolicy, StoreOptions};
use http::{HeaderName, HeaderValue};

use crate::coalesce::Inflight;
use crate::origin_client::OriginClient;
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

/// Shared state of a running edge.
pub struct EdgeState {
    /// The config it was built from.
    pub config: EdgeConfig,
    /// Per-route policy.
    pub routes: RouteTable,
    /// The object store.
    pub store: Store,
    /// Fetches in flight, for coalescing.
    pub inflight: Arc<Inflight>,
    /// Keys recently found uncacheable (hit-for-pass).
    pub pass_keys: moka::sync::Cache<CacheKey, ()>,
    /// Client for the origin.
    pub origin: OriginClient,
    /// Storage rules.
    pub store_opts: StoreOptions,
    /// Targeted cache-control fields, in precedence order.
    pub targets: Vec<HeaderName>,
    /// Response headers removed before answering clients.
    pub strip_headers: Vec<HeaderName>,
    /// Our `Via` entry, e.g. `1.1 edgecache`.
    pub via: HeaderValue,
    /// Counters.
    pub counters: Counters,
    /// When the node started.
    pub started: Instant,
}

impl EdgeState {
    /// Builds the state from a validated config.
    pub fn new(config: EdgeConfig) -> Result<EdgeState, StartError> {
        let url = config.origin.clone().ok_or(StartError::NoOrigin)?;
        let base: http::Uri =
            url.parse()
                .map_err(|e: http::uri::InvalidUri| StartError::BadOrigin {
                    url: url.clone(),
                    reason: e.to_string(),
                })?;
        let resolver = HickoryResolver::new(&config.dns)?;
        let origin = OriginClient::new(&base, &config.origin_client, resolver).map_err(|e| {
            StartError::BadOrigin {
                url: url.clone(),
                reason: e.to_string(),
            }
        })?;
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
            pass_keys: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(config.cache.hit_for_pass.0.max(Duration::from_millis(1)))
                .build(),
            origin,
            store_opts,
            targets: header_names(&config.cache.targeted_fields),
            strip_headers: header_names(&config.cache.strip_response_headers),
            via,
            counters: Counters::default(),
            started: Instant::now(),
            config,
        })
    }
}
