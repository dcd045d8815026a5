//! The public listeners: HTTP/1.1 and h2c on the plain socket, HTTP/1.1 and
//! h2 (by ALPN) on the TLS socket; header size and read-time limits, a
//! connection cap shared by both, and graceful draining. HTTP/1.x is the
//! edge's own ([`crate::h1`]), which hands hyper what it does not take;
//! HTTP/2 is hyper's.
//!
//! Each request loads the current [`EdgeState`] from the swap, so a config
//! reload takes effect for new requests on open connections too.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use edgecache::config::LimitSettings;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::paced::Paced;
use crate::state::EdgeState;
use crate::{h1, proxy};

/// The live state: swapped whole on reload, loaded per request.
pub type SharedState = Arc<ArcSwap<EdgeState>>;

/// What a listener speaks.
#[derive(Clone)]
pub enum Transport {
    /// Plain TCP: HTTP/1.1 or h2c (prior knowledge).
    Plain,
    /// TLS, then HTTP/1.1 or h2 as negotiated by ALPN.
    Tls(TlsAcceptor),
}

/// One public listener and what it needs to serve.
pub struct Listener {
    /// The bound socket.
    pub socket: TcpListener,
    /// Plain or TLS.
    pub transport: Transport,
    /// The node's state.
    pub state: SharedState,
    /// Connection slots, shared by the node's public listeners.
    pub permits: Arc<Semaphore>,
}

/// A connection cap for the public listeners: `limits.max_connections`.
pub fn connection_permits(limits: &LimitSettings) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(limits.max_connections.max(1)))
}

/// Serves client connections until `shutdown` turns true, then lets
/// in-flight requests finish for at most `grace`.
pub async fn serve_public(
    listener: Listener,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let graceful = GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.changed() => break,
            permit = listener.permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, remote) = tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.socket.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            stream,
            remote,
            listener.transport.clone(),
            listener.state.clone(),
            h1::Fallback {
                watcher: graceful.watcher(),
                shutdown: shutdown.clone(),
            },
            permit,
        ));
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "in-flight requests cut after the grace period"
        );
    }
}

/// One client connection: the TLS handshake (bounded by the header-read
/// timeout, like a slow request head), then HTTP until it closes.
async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    transport: Transport,
    state: SharedState,
    fallback: h1::Fallback,
    permit: OwnedSemaphorePermit,
) {
    let limits = state.load().config.limits.clone();
    let head_limits = h1::HeadLimits {
        max_bytes: usize::try_from(limits.max_header_bytes.0).unwrap_or(usize::MAX),
        read_timeout: limits.header_read_timeout.0,
    };
    // Every byte to the client, on any protocol, goes through the send
    // timeout (under TLS too: it wraps the socket).
    let stream = Paced::new(stream, limits.send_timeout.0);
    match transport {
        Transport::Plain => h1::serve(stream, remote, state, head_limits, fallback).await,
        Transport::Tls(acceptor) => {
            let timeout = limits.header_read_timeout.0;
            match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) if tls.get_ref().1.alpn_protocol() == Some(b"h2") => {
                    serve_with_hyper(tls, remote, state, &limits, fallback.watcher).await;
                }
                Ok(Ok(tls)) => h1::serve(tls, remote, state, head_limits, fallback).await,
                Ok(Err(e)) => tracing::debug!(error = %e, %remote, "TLS handshake failed"),
                Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
            }
        }
    }
    drop(permit);
}

/// Serves a connection with hyper (HTTP/1.1 or HTTP/2, detected), draining
/// it gracefully on shutdown.
pub(crate) async fn serve_with_hyper<S>(
    stream: S,
    remote: SocketAddr,
    state: SharedState,
    limits: &LimitSettings,
    watcher: Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let state = state.load_full();
        async move { Ok::<_, Infallible>(proxy::handle(state, req, remote).await.into_response()) }
    });
    let builder = http_builder(limits);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(error = %e, %remote, "connection ended with an error");
    }
}

/// The HTTP/1.1 and HTTP/2 settings from the limits: head size (hyper
/// answers 431 above it), header-read timeout (slowloris), keep-alive.
fn http_builder(limits: &LimitSettings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout.0)
        .max_buf_size(limits.max_header_bytes.0 as usize)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes.0).unwrap_or(u32::MAX));
    builder
}
