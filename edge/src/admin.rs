//! The admin listener: the node's own endpoints, never on the public port.

use std::convert::Infallible;
use std::sync::atomic::Ordering;

use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::EdgeBody;
use crate::state::EdgeState;

/// Serves `/_edge/...` until shutdown.
pub async fn serve_admin(
    listener: TcpListener,
    state: crate::server::SharedState,
    mut shutdown: watch::Receiver<bool>,
) {
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
        };
        let state = state.clone();
        let service = service_fn(move |req| {
            let state = state.load_full();
            async move { Ok::<_, Infallible>(route(&state, req).await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

async fn route(state: &EdgeState, req: Request<Incoming>) -> Response<EdgeBody> {
    match req.uri().path() {
        "/_edge/ready" => text(StatusCode::OK, "ready\n"),
        "/metrics" => match crate::metrics::render(state).await {
            Some(body) => {
                let mut resp = text(StatusCode::OK, "");
                *resp.body_mut() = EdgeBody::from(body);
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                resp
            }
            None => text(StatusCode::NOT_FOUND, "metrics recorder not installed\n"),
        },
        "/_edge/purge" => crate::purge::admin::purge(state, req).await,
        "/_edge/purge/status" => crate::purge::admin::status(state),
        "/_edge/health" => {
            let origins: Vec<serde_json::Value> =
                state.upstreams.iter().map(|u| u.snapshot()).collect();
            let body = serde_json::json!({
                "status": if state.all_down() { "origin-down" } else { "ok" },
                "origins": origins,
                "control": state.control.snapshot(),
            });
            json(StatusCode::OK, body.to_string())
        }
        "/_edge/stats" => {
            state.store.sync().await;
            let c = &state.counters;
            let files = crate::body_file::stats();
            let body = serde_json::json!({
                "entries": state.store.entry_count(),
                "bytes": state.store.weighted_size(),
                "hits": c.hits.load(Ordering::Relaxed),
                "misses": c.misses.load(Ordering::Relaxed),
                "stale": c.stale.load(Ordering::Relaxed),
                "collapsed": c.collapsed.load(Ordering::Relaxed),
                "passes": c.passes.load(Ordering::Relaxed),
                "origin_fetches": c.origin_fetches.load(Ordering::Relaxed),
                "origin_failures": c.origin_failures.load(Ordering::Relaxed),
                "inflight": state.inflight.len(),
                "body_files": files.files,
                "body_file_fallbacks": files.fallbacks,
                "sendfile_bytes": files.sent_bytes,
                "uptime_secs": state.started.elapsed().as_secs(),
                "runtime": crate::runtime::describe(),
            });
            json(StatusCode::OK, body.to_string())
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<EdgeBody> {
    let mut resp = Response::new(EdgeBody::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn json(status: StatusCode, body: String) -> Response<EdgeBody> {
    let mut resp = Response::new(EdgeBody::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
