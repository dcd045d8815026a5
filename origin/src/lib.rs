//! The edgecache origin: serves a content directory (or generated content)
//! with real validators, for the edges to cache.
//!
//! - static files under a root, with strong content-hash ETags,
//!   Last-Modified, conditional requests and single byte ranges;
//! - a `_headers` file (Netlify / Cloudflare Pages format) for per-path
//!   response headers;
//! - generated content at `/_gen/<bytes>` with query knobs (TTL, Vary,
//!   validators, delays, truncation, ...);
//! - test hooks: fault injection (`/_fault`) and request counters
//!   (`/_stats`);
//! - the control listener ([`control`]): the purge log streamed to edges,
//!   and the operators' purge API.
//!
//! Embed it with [`Origin::new`] and [`Origin::serve`], or [`serve`].

#![warn(missing_docs)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use http::HeaderValue;
use thiserror::Error;

mod accept;
pub mod body;
pub mod conditional;
pub mod control;
pub mod faults;
pub mod files;
pub mod generated;
mod handler;
pub mod headers_file;
pub mod mime;
pub mod path;
pub mod query;
pub mod range;
pub mod representation;
mod server;
pub mod stats;

pub use headers_file::HeadersFileError;

/// The Cache-Control sent when nothing else sets one.
pub const DEFAULT_CACHE_CONTROL: &str = "public, max-age=60";

/// How to run an origin.
#[derive(Debug, Clone)]
pub struct OriginConfig {
    /// Directory of static files; `None` serves only generated content.
    pub root: Option<PathBuf>,
    /// Cache-Control for responses no `_headers` rule (or `/_gen` query)
    /// gives one.
    pub default_cache_control: String,
}

impl Default for OriginConfig {
    fn default() -> Self {
        OriginConfig {
            root: None,
            default_cache_control: DEFAULT_CACHE_CONTROL.to_owned(),
        }
    }
}

/// Why an origin cannot start.
#[derive(Debug, Error)]
pub enum OriginError {
    /// The content root is missing, unreadable or not a directory.
    #[error("content root {}: {error}", path.display())]
    Root {
        /// The configured root.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// The root's `_headers` file is invalid.
    #[error(transparent)]
    HeadersFile(#[from] HeadersFileError),
    /// The default Cache-Control is not a valid header value.
    #[error("invalid default Cache-Control value {0:?}")]
    DefaultCacheControl(String),
}

/// A configured origin, ready to serve.
#[derive(Debug, Clone)]
pub struct Origin {
    state: Arc<handler::State>,
}

impl Origin {
    /// Checks the configuration: the root must be a directory and its
    /// `_headers` file (if any) valid.
    pub fn new(config: OriginConfig) -> Result<Origin, OriginError> {
        let default_cache_control = HeaderValue::from_str(&config.default_cache_control)
            .map_err(|_| OriginError::DefaultCacheControl(config.default_cache_control.clone()))?;
        let (files, headers_file) = match &config.root {
            Some(root) => {
                let store = files::FileStore::new(root).map_err(|error| OriginError::Root {
                    path: root.clone(),
                    error,
                })?;
                let headers =
                    headers_file::HeadersFile::load(store.root().join(files::HEADERS_FILE))?;
                (Some(store), Some(headers))
            }
            None => (None, None),
        };
        Ok(Origin {
            state: Arc::new(handler::State {
                files,
                headers_file,
                default_cache_control,
                faults: faults::Faults::default(),
                stats: stats::Stats::default(),
            }),
        })
    }

    /// Serves HTTP/1.1 and HTTP/2 (prior knowledge) on `listener` until
    /// `shutdown` completes, then drains open connections for a few seconds.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()>,
    ) {
        server::run(listener, self.state, shutdown).await;
    }

    /// Total requests counted by `/_stats` so far.
    pub fn requests(&self) -> u64 {
        self.state.stats.total()
    }
}

/// Checks `config` and serves on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: OriginConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), OriginError> {
    Origin::new(config)?.serve(listener, shutdown).await;
    Ok(())
}
