//! The edgecache edge node: an HTTP listener in front of a moka store that
//! fills from the origin, coalescing misses and obeying RFC 9111.
//!
//! `main.rs` only parses flags; [`Edge::start`] runs a node, so tests and
//! the lab can start one too.

pub mod admin;
pub mod body;
pub mod cli;
pub mod coalesce;
pub mod health;
pub mod object;
pub mod origin_client;
pub mod proxy;
pub mod resolver;
pub mod server;
pub mod state;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use edgecache::config::EdgeConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::state::{EdgeState, StartError};

/// A running edge node.
pub struct Edge {
    /// Where clients connect.
    pub public_addr: SocketAddr,
    /// Where the admin endpoints are, if enabled.
    pub admin_addr: Option<SocketAddr>,
    /// The node's shared state.
    pub state: Arc<EdgeState>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Edge {
    /// Binds the listeners and starts serving.
    pub async fn start(config: EdgeConfig) -> Result<Edge, StartError> {
        let state = Arc::new(EdgeState::new(config)?);
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })
        };
        let public = bind(state.config.listen).await?;
        let public_addr = public.local_addr().map_err(|source| StartError::Bind {
            addr: state.config.listen,
            source,
        })?;
        let (shutdown, rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut admin_addr = None;
        if let Some(addr) = state.config.admin_listen {
            let admin = bind(addr).await?;
            admin_addr = admin.local_addr().ok();
            tasks.push(tokio::spawn(admin::serve_admin(
                admin,
                state.clone(),
                rx.clone(),
            )));
        }
        for upstream in &state.upstreams {
            tasks.push(tokio::spawn(health::heartbeat(
                upstream.clone(),
                rx.clone(),
            )));
        }
        let grace = Duration::from_secs(10);
        tasks.push(tokio::spawn(server::serve_public(
            public,
            state.clone(),
            rx,
            grace,
        )));
        Ok(Edge {
            public_addr,
            admin_addr,
            state,
            shutdown,
            tasks,
        })
    }

    /// Stops accepting, drains in-flight requests, and waits for the tasks.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
