//! HTTP/1.1 on the public listeners, served by the edge itself: request
//! heads parsed with httparse, answers written straight from the handler's
//! response, one vectored write for a stored object's head and body.
//!
//! What this path does not take goes to hyper with the bytes read so far,
//! and hyper serves the rest of that connection: requests with a body
//! (they are passed to the origin), upgrades, `Expect`, HTTP/2's preface
//! (h2c), and heads that do not parse or exceed the size limit (hyper
//! answers those with 400 or 431, as it did before this path existed).
//! A cache edge answers mostly GET and HEAD without a body, so nearly every
//! request stays here.

mod replay;
mod request;
mod response;
mod sendfile;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::Empty;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::proxy;
use crate::server::SharedState;
pub use replay::Replay;
use request::{HeadParser, Parsed};
use response::{Exchange, Writer};
pub use sendfile::Sink;

/// Read buffer size; also what is reserved when it runs low.
const READ_CHUNK: usize = 8 * 1024;

/// The limits a connection applies while reading request heads.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// A head larger than this is handed to hyper, which answers 431.
    pub max_bytes: usize,
    /// Time allowed for the next head to arrive whole (slowloris and idle
    /// keep-alive connections are closed after it).
    pub read_timeout: Duration,
}

/// Where a connection goes when this path hands it over.
pub struct Fallback {
    /// Drains hyper's connections on shutdown; also held while this path
    /// serves, so that a drain waits for it.
    pub watcher: Watcher,
    /// Turns true when the node shuts down.
    pub shutdown: watch::Receiver<bool>,
}

/// Serves HTTP/1.x on `io` until the client closes, a limit closes it, the
/// node shuts down, or a request is handed to hyper.
pub async fn serve<S>(
    mut io: S,
    remote: SocketAddr,
    state: SharedState,
    limits: HeadLimits,
    fallback: Fallback,
) where
    S: AsyncRead + Sink + Send + 'static,
{
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut parser = HeadParser::default();
    let mut writer = Writer::default();
    let deadline = tokio::time::sleep(limits.read_timeout);
    tokio::pin!(deadline);
    // One wait for shutdown for the connection's life, polled while it is
    // idle: it stays registered between requests instead of joining and
    // leaving the watch's waiter list once per request.
    let mut shutdown = fallback.shutdown.clone();
    let shutdown_signal = shutdown.changed();
    tokio::pin!(shutdown_signal);
    loop {
        // The head must arrive whole by `due`. The timer is not moved per
        // request (re-arming it costs more than the rest of a hit's
        // connection handling); when it fires early it is moved to `due`.
        let due = Instant::now() + limits.read_timeout;
        let head = loop {
            if !buf.is_empty() {
                match parser.parse(&buf) {
                    Parsed::Head(head) => break head,
                    Parsed::Partial if buf.len() < limits.max_bytes => {}
                    Parsed::Partial | Parsed::Handoff => {
                        return handoff(buf.freeze(), io, remote, state, fallback).await;
                    }
                }
            }
            if buf.capacity() - buf.len() < READ_CHUNK / 4 {
                buf.reserve(READ_CHUNK);
            }
            tokio::select! {
                biased;
                read = io.read_buf(&mut buf) => match read {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, %remote, "connection read failed");
                        return;
                    }
                },
                () = &mut deadline => {
                    if Instant::now() < due {
                        deadline.as_mut().reset(due);
                        continue;
                    }
                    tracing::debug!(%remote, "no whole request head within the read timeout");
                    return;
                }
                _ = &mut shutdown_signal, if buf.is_empty() => return,
            }
        };
        let mut exchange = Exchange {
            head: head.method() == http::Method::HEAD,
            version: head.version(),
            keep_alive: head.keep_alive,
        };
        let request = match parser.take_request(head, &mut buf) {
            Ok(request) => request,
            Err(head_bytes) => {
                let mut pending = BytesMut::from(&head_bytes[..]);
                pending.extend_from_slice(&buf);
                return handoff(pending.freeze(), io, remote, state, fallback).await;
            }
        };
        let answer =
            proxy::handle_head(state.load_full(), request, Empty::<Bytes>::new(), remote).await;
        // Draining: this answer is the connection's last.
        exchange.keep_alive &= !fallback.shutdown.has_changed().unwrap_or(true);
        match writer.write(&mut io, answer, exchange).await {
            Ok(true) => {}
            Ok(false) => {
                let _ = io.shutdown().await;
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, %remote, "connection write failed");
                return;
            }
        }
    }
}

/// Gives the connection to hyper, which reads `pending` first.
async fn handoff<S>(
    pending: Bytes,
    io: S,
    remote: SocketAddr,
    state: SharedState,
    fallback: Fallback,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = state.load().config.limits.clone();
    crate::server::serve_with_hyper(
        Replay::new(pending, io),
        remote,
        state,
        &limits,
        fallback.watcher,
    )
    .await;
}
