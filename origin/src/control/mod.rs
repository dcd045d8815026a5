//! The origin's control listener: ONE TCP listener carrying two protocols,
//! told apart by the first byte of a connection.
//!
//! - `edgecache::wire::WIRE_VERSION` (0x01): an edge speaking control frames
//!   (Hello, then the purge log streamed in order; see `session`). Other
//!   bytes below 0x20, which never start an HTTP request, are taken as
//!   frames too, so that an edge speaking another frame version is told so
//!   (an Error frame naming the version) instead of getting an HTTP 400;
//! - anything else: HTTP/1.1 for operators (`POST /_purge`, `GET
//!   /_purge/status/<id>`, `GET /_edges`, `GET /_control/health`; see
//!   `http_api`).
//!
//! The purge API needs a bearer token ([`PurgeToken`]); with none
//! configured it answers 503.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use edgecache::purge::PurgeLog;
use edgecache::wire::WIRE_VERSION;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::timeout;

mod auth;
mod bus;
mod catch_up;
mod http_api;
mod registry;
mod request;
mod session;
mod tracker;

pub use auth::{PurgeToken, TOKEN_ENV, TokenError};

/// How long a new connection has to send its first byte.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(10);

/// The purge log path used when none is configured:
/// `<system temp dir>/edgecache-purge-<control port>.log`. It survives a
/// restart only when the control port is fixed: pass `--purge-log` for a
/// log that must outlive the process.
pub fn default_log_path(control_port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("edgecache-purge-{control_port}.log"))
}

/// State shared by every connection of the control listener.
pub(crate) struct Control {
    log: Arc<dyn PurgeLog>,
    token: Option<PurgeToken>,
    registry: registry::Registry,
    tracker: tracker::Tracker,
    dry_runs: tracker::DryRuns,
}

/// The control listener's server: edges' purge streams and the operators'
/// purge API.
#[derive(Clone)]
pub struct ControlServer {
    ctx: Arc<Control>,
}

impl std::fmt::Debug for ControlServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlServer")
            .field("token", &self.ctx.token)
            .finish_non_exhaustive()
    }
}

impl ControlServer {
    /// A server over `log`; `token` guards the purge API (`None`: it answers
    /// 503 "no purge token configured").
    pub fn new(log: Arc<dyn PurgeLog>, token: Option<PurgeToken>) -> ControlServer {
        ControlServer {
            ctx: Arc::new(Control {
                log,
                token,
                registry: registry::Registry::new(),
                tracker: tracker::Tracker::default(),
                dry_runs: tracker::DryRuns::default(),
            }),
        }
    }

    /// Also follows the edges that consume a bus-backed purge log directly
    /// (NATS): their heartbeats, acks and the log's per-edge progress feed
    /// the membership, the purge answers and the dry runs. Runs until the
    /// returned task is aborted.
    pub fn follow_edges(
        &self,
        directory: Arc<dyn edgecache::purge::EdgeDirectory>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(bus::follow(Arc::clone(&self.ctx), directory))
    }

    /// Accepts connections on `listener` until `shutdown` completes, then
    /// closes every open connection.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let mut connections = JoinSet::new();
        crate::accept::accept_until(
            &listener,
            shutdown,
            &mut connections,
            "control",
            |stream, peer| connection(stream, peer, Arc::clone(&self.ctx)),
        )
        .await;
        tracing::info!(open = connections.len(), "control: shutting down");
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
}

/// Peeks at the first byte and hands the connection to the edge protocol or
/// to HTTP.
async fn connection(stream: TcpStream, peer: SocketAddr, ctx: Arc<Control>) {
    let mut first = [0u8; 1];
    match timeout(FIRST_BYTE_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1..)) => {}
        Ok(Ok(0)) => return,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "control: connection failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "control: no request within the first-byte timeout");
            return;
        }
    }
    if first[0] == WIRE_VERSION || first[0] < 0x20 {
        session::run(stream, peer, ctx).await;
    } else {
        http_api::serve_connection(stream, peer, ctx).await;
    }
}
