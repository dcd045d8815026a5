//! The accept loop: HTTP/1.1 and HTTP/2 (h2c prior knowledge) on one
//! listener, keep-alive, and graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::handler::{State, handle};

/// How long open connections get to finish after shutdown is requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

fn builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .keep_alive(true)
        .timer(TokioTimer::new())
        // Also the idle keep-alive timeout: longer than the usual client pool
        // idle timeout (90 s), so clients are the ones closing idle
        // connections and never reuse one this side is closing.
        .header_read_timeout(Duration::from_secs(120));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// Accepts connections on `listener` until `shutdown` completes, then lets
/// open connections finish (up to a grace period).
pub async fn run(listener: TcpListener, state: Arc<State>, shutdown: impl Future<Output = ()>) {
    let builder = Arc::new(builder());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    crate::accept::accept_until(
        &listener,
        shutdown,
        &mut connections,
        "http",
        |stream, peer| {
            let state = Arc::clone(&state);
            let builder = Arc::clone(&builder);
            let mut stop = stop_rx.clone();
            async move {
                let service = service_fn(move |req| {
                    let state = Arc::clone(&state);
                    async move { Ok::<_, Infallible>(handle(state, req).await) }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                let mut conn = std::pin::pin!(conn);
                let result = tokio::select! {
                    result = conn.as_mut() => result,
                    _ = stop.changed() => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            }
        },
    )
    .await;
    drop(listener);
    tracing::info!(open = connections.len(), "shutting down");
    let _ = stop_tx.send(true);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        tracing::warn!(
            open = connections.len(),
            "closing connections still open after the grace period"
        );
        connections.abort_all();
    }
}
