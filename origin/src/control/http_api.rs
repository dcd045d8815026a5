//! The operators' HTTP/1.1 API on the control listener:
//!
//! - `POST /_purge` (bearer token): append a purge, wait for the connected
//!   edges, answer the per-edge view; or a dry run;
//! - `GET /_purge/status/<id>` (token): the per-edge view of a recent purge;
//! - `GET /_edges` (token): membership and progress of every known edge;
//! - `GET /_control/health` (no token): `{"head_seq": .., ..}`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use super::Control;
use super::registry::SessionCmd;
use super::request::{self, PurgeRequest};

/// Largest request body accepted.
const MAX_BODY: usize = 1 << 20;

/// How long a client has to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

type Resp = Response<Full<Bytes>>;

/// Serves HTTP/1.1 on one connection.
pub(crate) async fn serve_connection(stream: TcpStream, peer: SocketAddr, ctx: Arc<Control>) {
    let service = service_fn(move |req| {
        let ctx = Arc::clone(&ctx);
        async move { Ok::<_, Infallible>(handle(ctx, req).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(e) = conn.await {
        tracing::debug!(%peer, error = %e, "control: HTTP connection ended with an error");
    }
}

fn json_response(status: StatusCode, value: &Value) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(value.to_string())));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn error(status: StatusCode, message: &str) -> Resp {
    json_response(status, &json!({ "error": message }))
}

fn method_not_allowed(allow: &'static str) -> Resp {
    let mut resp = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

async fn handle(ctx: Arc<Control>, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_string();
    if path == "/_control/health" {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return method_not_allowed("GET, HEAD");
        }
        return health(&ctx).await;
    }
    let known = path == "/_purge" || path == "/_edges" || path.starts_with("/_purge/status/");
    if !known {
        return error(StatusCode::NOT_FOUND, "not found");
    }
    let Some(token) = &ctx.token else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no purge token configured");
    };
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    if !token.accepts(authorization) {
        let mut resp = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return resp;
    }
    match path.as_str() {
        "/_purge" if req.method() == Method::POST => purge(&ctx, req).await,
        "/_purge" => method_not_allowed("POST"),
        _ if req.method() != Method::GET => method_not_allowed("GET"),
        "/_edges" => edges(&ctx).await,
        _ => status(&ctx, &path["/_purge/status/".len()..]),
    }
}

async fn health(ctx: &Control) -> Resp {
    let positions = async {
        Ok::<_, edgecache::purge::PurgeLogError>((
            ctx.log.head_seq().await?,
            ctx.log.oldest_seq().await?,
        ))
    };
    match positions.await {
        Ok((head, oldest)) => json_response(
            StatusCode::OK,
            &json!({
                "head_seq": head,
                "oldest_seq": oldest,
                "edges_connected": ctx.registry.connected_count(),
            }),
        ),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("purge log unavailable: {e}"),
        ),
    }
}

async fn purge(ctx: &Control, req: Request<Incoming>) -> Resp {
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the request body (at most {MAX_BODY} bytes): {e}"),
            );
        }
    };
    let request = match request::parse(&body) {
        Ok(request) => request,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    if request.dry_run {
        return dry_run(ctx, request).await;
    }
    let record = match ctx.log.append(request.selector, request.soft).await {
        Ok(record) => record,
        Err(e) => {
            tracing::error!(error = %e, "control: cannot append a purge");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("the purge was not recorded: {e}"),
            );
        }
    };
    tracing::info!(id = %record.id, seq = record.seq, soft = record.soft,
        selector = ?record.selector, "control: purge appended");
    let summary = ctx.tracker.insert(&record);
    wait_applied(ctx, record.seq, Instant::now() + request.wait).await;
    json_response(
        StatusCode::OK,
        &ctx.tracker.view(&summary, &ctx.registry.snapshot()),
    )
}

/// Waits until every connected edge has applied `seq`, or `deadline`.
async fn wait_applied(ctx: &Control, seq: u64, deadline: Instant) {
    let mut changes = ctx.registry.watch();
    loop {
        changes.borrow_and_update();
        if ctx.registry.connected_applied(seq) {
            return;
        }
        match timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return,
        }
    }
}

async fn dry_run(ctx: &Control, request: PurgeRequest) -> Resp {
    let deadline = Instant::now() + request.wait;
    let (id, mut answers_rx) = ctx.dry_runs.open();
    let mut asked = 0usize;
    for (identity, cmds) in ctx.registry.connected() {
        let cmd = SessionCmd::DryRun {
            request: id,
            selector: request.selector.clone(),
        };
        if cmds.try_send(cmd).is_ok() {
            asked += 1;
        } else {
            tracing::debug!(edge = %identity.id, "control: dry run not sent (session busy)");
        }
    }
    let mut answers: HashMap<String, u64> = HashMap::new();
    while answers.len() < asked {
        match timeout_at(deadline, answers_rx.recv()).await {
            Ok(Some((edge, affected))) => {
                answers.insert(edge, affected);
            }
            Ok(None) | Err(_) => break,
        }
    }
    ctx.dry_runs.close(id);
    let mut complete = true;
    let edges: Vec<Value> = ctx
        .registry
        .snapshot()
        .into_iter()
        .map(|e| {
            let affected = answers.get(&e.identity.id).copied();
            let status = match (affected, e.connected) {
                (Some(_), _) => "answered",
                (None, true) => "pending",
                (None, false) => "unreachable",
            };
            complete &= affected.is_some();
            json!({
                "id": e.identity.id,
                "region": e.identity.region,
                "address": e.identity.address,
                "status": status,
                "affected": affected,
            })
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({ "dry_run": true, "edges": edges, "complete": complete }),
    )
}

async fn edges(ctx: &Control) -> Resp {
    let head = match ctx.log.head_seq().await {
        Ok(head) => head,
        Err(e) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("purge log unavailable: {e}"),
            );
        }
    };
    let now = std::time::Instant::now();
    let edges: Vec<Value> = ctx
        .registry
        .snapshot()
        .into_iter()
        .map(|e| {
            let ago = now.saturating_duration_since(e.last_heard);
            json!({
                "id": e.identity.id,
                "region": e.identity.region,
                "address": e.identity.address,
                "connected": e.connected,
                "last_heartbeat_ms_ago": u64::try_from(ago.as_millis()).unwrap_or(u64::MAX),
                "last_applied": e.applied,
                "lag": head.saturating_sub(e.applied),
            })
        })
        .collect();
    json_response(StatusCode::OK, &Value::Array(edges))
}

fn status(ctx: &Control, id: &str) -> Resp {
    let Ok(id) = uuid::Uuid::parse_str(id) else {
        return error(StatusCode::NOT_FOUND, "unknown purge id");
    };
    match ctx.tracker.get(&id) {
        Some(summary) => json_response(
            StatusCode::OK,
            &ctx.tracker.view(&summary, &ctx.registry.snapshot()),
        ),
        None => error(StatusCode::NOT_FOUND, "unknown purge id"),
    }
}
