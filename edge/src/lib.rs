//! The edgecache edge node: an HTTP listener in front of a moka store that
//! fills from the origin, coalescing misses and obeying RFC 9111.
//!
//! `main.rs` only parses flags; [`Edge::start`] runs a node, so tests and
//! the lab can start one too.

pub mod admin;
pub mod allocator;
pub mod body;
pub mod body_file;
pub mod cli;
pub mod coalesce;
pub mod growing;
pub mod h1;
pub mod health;
pub mod metrics;
pub mod object;
pub mod origin_client;
pub mod paced;
pub mod proxy;
pub mod purge;
pub mod reload;
pub mod request_fields;
pub mod request_id;
pub mod resolver;
pub mod runtime;
pub mod server;
pub mod state;
pub mod store;
pub mod stored_headers;
pub mod tls;

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
    /// Where HTTPS clients connect, if enabled.
    pub tls_addr: Option<SocketAddr>,
    /// The node's shared state as started (a reload swaps in a new one:
    /// see [`Edge::current`]).
    pub state: Arc<EdgeState>,
    current: server::SharedState,
    tls: Option<Arc<tls::SniResolver>>,
    heartbeats: std::sync::Mutex<reload::Heartbeats>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Edge {
    /// Binds the listeners and starts serving.
    pub async fn start(config: EdgeConfig) -> Result<Edge, StartError> {
        let state = Arc::new(EdgeState::new(config)?);
        let current: server::SharedState = Arc::new(arc_swap::ArcSwap::new(state.clone()));
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
                current.clone(),
                rx.clone(),
            )));
        }
        let heartbeats = reload::Heartbeats::start(&state.upstreams, rx.clone());
        tasks.push(tokio::spawn(purge::maintain(state.clone(), rx.clone())));
        tasks.push(tokio::spawn(allocator::release_after_fills(
            state.clone(),
            rx.clone(),
        )));
        if let Some(nats) = state.config.purge.nats().cloned() {
            tasks.push(tokio::spawn(purge::bus::run(
                state.clone(),
                nats,
                public_addr,
                rx.clone(),
            )));
        } else if let Some(control) = state.config.control.addr.clone() {
            tasks.push(tokio::spawn(purge::client::run(
                state.clone(),
                control,
                public_addr,
                rx.clone(),
            )));
        }
        let grace = Duration::from_secs(10);
        let permits = server::connection_permits(&state.config.limits);
        let tls_listener = tls::bind(&state.config).await?;
        let (tls_addr, tls) = match tls_listener {
            Some(l) => {
                let listener = server::Listener {
                    socket: l.socket,
                    transport: server::Transport::Tls(l.acceptor),
                    state: current.clone(),
                    permits: permits.clone(),
                };
                tasks.push(tokio::spawn(server::serve_public(
                    listener,
                    rx.clone(),
                    grace,
                )));
                (Some(l.addr), Some(l.resolver))
            }
            None => (None, None),
        };
        let listener = server::Listener {
            socket: public,
            transport: server::Transport::Plain,
            state: current.clone(),
            permits,
        };
        tasks.push(tokio::spawn(server::serve_public(listener, rx, grace)));
        Ok(Edge {
            public_addr,
            admin_addr,
            tls_addr,
            state,
            current,
            tls,
            heartbeats: std::sync::Mutex::new(heartbeats),
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
        if let Ok(heartbeats) = self.heartbeats.into_inner() {
            heartbeats.stop().await;
        }
    }

    /// The state in force now (the latest reload's).
    pub fn current(&self) -> Arc<EdgeState> {
        self.current.load_full()
    }
}
