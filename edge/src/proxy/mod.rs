//! The request path, as a state machine per request (after Pingora):
//! normalise -> lookup -> (hit: serve | stale or miss: lock, fetch, store)
//! -> serve; with pass-through for what may not be cached.

mod answer;
mod failure;
mod fetch;
mod forward;
mod pass;
mod request;
mod respond;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use edgecache::cache_key::CacheKey;
use edgecache::http_cache::cache_control::CacheControl;
use edgecache::http_cache::cache_status::{CacheStatus, Fwd};
use edgecache::http_cache::freshness::{RequestFreshness, request_allows};
use http::{HeaderMap, HeaderName, Method, Request, Response, StatusCode, header};
use tracing::Instrument;

use crate::body::EdgeBody;
use crate::coalesce::{Outcome, Role};
use crate::object::CachedObject;
use crate::request_id::RequestId;
use crate::state::{Counters, EdgeState};
use crate::store::Lookup;

pub use answer::{Answer, EdgeFields};
pub use fetch::FetchResult;
use request::{Notable, ascii_text};
pub use request::{RequestCtx, RequestHead};

/// `Cache-Status` (RFC 9211), on every answer.
pub(crate) const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");
pub(crate) use crate::request_id::X_REQUEST_ID;

/// A client's request body: hyper's for the requests hyper reads, empty
/// for the GET and HEAD requests the edge's own HTTP/1.1 path reads.
pub trait ClientBody:
    http_body::Body<Data = bytes::Bytes, Error: Into<crate::body::BoxError>> + Send + 'static
{
}

impl<B> ClientBody for B where
    B: http_body::Body<Data = bytes::Bytes, Error: Into<crate::body::BoxError>> + Send + 'static
{
}

/// Handles one request hyper read.
pub async fn handle<B>(state: Arc<EdgeState>, req: Request<B>, client: SocketAddr) -> Answer
where
    B: ClientBody,
{
    let (parts, body) = req.into_parts();
    handle_head(state, RequestHead::from_parts(parts), body, client).await
}

/// Handles one client request end to end, inside a span carrying its id.
pub async fn handle_head<B>(
    state: Arc<EdgeState>,
    req: RequestHead<'_>,
    body: B,
    client: SocketAddr,
) -> Answer
where
    B: ClientBody,
{
    let notable = Notable::scan(&req.fields);
    let id = RequestId::from_field(notable.request_id);
    let span = tracing::info_span!(
        "request",
        id = %id,
        method = %req.method,
        path = %req.uri.path(),
    );
    let started = Instant::now();
    // The access line needs the method and path after the request is
    // consumed; copy them only when the line will be written.
    let access = tracing::enabled!(target: "access", tracing::Level::INFO)
        .then(|| (req.method.clone(), req.uri.path().to_string()));
    // A disabled span records nothing: the request then skips moving its
    // whole future into the instrumenting wrapper (a copy of a few KiB).
    let mut resp = if span.is_disabled() {
        process(&state, &req, notable, body, client, id.clone()).await
    } else {
        process(&state, &req, notable, body, client, id.clone())
            .instrument(span.clone())
            .await
    };
    crate::metrics::request_done(
        resp.response.status().as_u16(),
        resp.metrics_class(),
        started.elapsed(),
    );
    if let Some((method, path)) = access {
        let _enter = span.enter();
        // The id the answer is about to carry, formatted on the stack.
        id.with_bytes(|request_id| {
            tracing::info!(
                target: "access",
                request_id = std::str::from_utf8(request_id)
                    .ok()
                    .filter(|text| text.is_ascii())
                    .unwrap_or("-"),
                %method,
                %path,
                status = resp.response.status().as_u16(),
                cache_status = resp
                    .cache_status()
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .unwrap_or("-"),
                bytes = http_body::Body::size_hint(resp.response.body())
                    .exact()
                    .unwrap_or(0),
                duration_us = started.elapsed().as_micros() as u64,
                "request"
            );
        });
    }
    resp.set_request_id(id);
    resp
}

async fn process<B: ClientBody>(
    state: &Arc<EdgeState>,
    req: &RequestHead<'_>,
    notable: Notable<'_>,
    body: B,
    client: SocketAddr,
    id: RequestId,
) -> Answer {
    let uri = &req.uri;
    let target_len = uri.path_and_query().map_or(1, |pq| pq.as_str().len());
    if target_len > state.config.limits.max_uri_length {
        return respond::plain(state, StatusCode::URI_TOO_LONG, "request target too long\n").into();
    }
    let Some(raw_host) = notable
        .host
        .and_then(ascii_text)
        .or_else(|| uri.authority().map(|a| a.as_str()))
    else {
        return respond::plain(state, StatusCode::BAD_REQUEST, "missing Host header\n").into();
    };
    let host = edgecache::cache_key::normalize_host("http", raw_host);
    let bare_host = edgecache::cache_key::host_without_port(&host);
    // An absolute-form target (or h2 :authority) naming another host than
    // Host, or a host not served here: 421, and nothing is fetched.
    let named_other = uri
        .authority()
        .is_some_and(|a| !a.host().eq_ignore_ascii_case(bare_host));
    if named_other || !edgecache::config::host_allowed(&state.config.hosts, bare_host) {
        return respond::plain(
            state,
            StatusCode::MISDIRECTED_REQUEST,
            "host not served here\n",
        )
        .into();
    }
    let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let route = state.routes.lookup(bare_host, uri.path());
    let req_cc = notable
        .cache_control
        .then(|| CacheControl::from_headers(req.fields.map(), &header::CACHE_CONTROL))
        .flatten();
    let ctx = RequestCtx {
        id,
        client,
        key: CacheKey::from_normalized_host("http", &host, path_and_query),
        method: req.method.clone(),
        uri,
        fields: &req.fields,
        route,
        req_cc,
        pragma_no_cache: notable.pragma_no_cache,
        shaping: notable.shaping,
    };
    match ctx.method {
        Method::GET | Method::HEAD => cached(state, &ctx).await,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE => {
            Box::pin(pass::unsafe_method(state, &ctx, body))
                .await
                .into()
        }
        _ => {
            let status = CacheStatus {
                fwd: Some(Fwd::Method),
                ..CacheStatus::default()
            };
            Box::pin(pass::forward(
                state,
                &ctx,
                pass::request_body(state, &ctx, body),
                status,
            ))
            .await
            .into()
        }
    }
}

/// GET and HEAD: serve from the cache when allowed, else fetch once per key.
///
/// The paths that reach the origin are boxed: their futures hold a whole
/// origin exchange, and unboxed they would make every request's future as
/// large, moved (copied) several times per request on the way into hyper.
async fn cached(state: &Arc<EdgeState>, ctx: &RequestCtx<'_>) -> Answer {
    // A waiter that got another variant than its own looks up again; bounded.
    for _ in 0..3 {
        let now = SystemTime::now();
        let lookup = state.store.lookup(&ctx.key, ctx.fields).await;
        let is_pass = matches!(lookup, Lookup::Pass);
        match lookup {
            Lookup::Pass | Lookup::Uncacheable => {
                // Never answered from the store: straight to the origin,
                // without waiting on the other requests for the URL.
                let (fwd, detail) = if is_pass {
                    (Fwd::Bypass, "hit-for-pass")
                } else {
                    (Fwd::UriMiss, "vary-star")
                };
                let status = CacheStatus {
                    fwd: Some(fwd),
                    detail: Some(detail.into()),
                    ..CacheStatus::default()
                };
                return Box::pin(pass::forward(state, ctx, EdgeBody::Empty, status))
                    .await
                    .into();
            }
            Lookup::Found { object, variant } => {
                let age = object.age(now);
                if usable_now(state, ctx, &object, age) {
                    Counters::bump(&state.counters.hits);
                    let status = CacheStatus {
                        hit: true,
                        ttl: Some(object.ttl_secs_at_age(age)),
                        ..CacheStatus::default()
                    };
                    return respond::serve_object(state, ctx, &object, status, now);
                }
                let key = variant.unwrap_or_else(|| ctx.key.clone());
                if let Some(resp) = stale_while_revalidate(state, ctx, &object, &key, now) {
                    return resp;
                }
                if let Some(resp) = Box::pin(fill(state, ctx, key, Some(object), Fwd::Stale)).await
                {
                    return resp;
                }
            }
            Lookup::Miss { key, vary_miss } => {
                let fwd = if vary_miss {
                    Fwd::VaryMiss
                } else {
                    Fwd::UriMiss
                };
                if let Some(resp) = Box::pin(fill(state, ctx, key, None, fwd)).await {
                    return resp;
                }
            }
        }
    }
    let status = CacheStatus {
        fwd: Some(Fwd::Miss),
        ..CacheStatus::default()
    };
    Box::pin(pass::forward(state, ctx, EdgeBody::Empty, status))
        .await
        .into()
}

/// Whether a stored object, `age` old now, may answer this request
/// without the origin.
fn usable_now(
    state: &EdgeState,
    ctx: &RequestCtx<'_>,
    object: &CachedObject,
    age: Duration,
) -> bool {
    let pragma_no_cache = ctx.req_cc.is_none() && ctx.pragma_no_cache;
    let honor = state.config.cache.honor_request_no_cache;
    if honor && pragma_no_cache {
        return false;
    }
    let req_cc = if honor { ctx.req_cc.as_ref() } else { None };
    let fresh = age < object.lifetime;
    match request_allows(req_cc, age, object.lifetime) {
        RequestFreshness::Fresh => {
            // A client's max-stale may accept a stale copy, unless the origin forbade it.
            fresh || !object.stale.forbidden
        }
        RequestFreshness::Stale | RequestFreshness::MustRevalidate => false,
    }
}

/// Miss or stale: joins (or leads) the one origin fetch for `key`. `None`
/// asks the caller to look up again (a waiter got another variant).
async fn fill(
    state: &Arc<EdgeState>,
    ctx: &RequestCtx<'_>,
    key: CacheKey,
    base: Option<Arc<CachedObject>>,
    fwd: Fwd,
) -> Option<Answer> {
    match state.inflight.join(&key) {
        Role::Leader(guard) => {
            Counters::bump(&state.counters.misses);
            let request = Arc::new(fetch::FetchRequest::from_ctx(ctx, key, fwd));
            let (tx, rx) = tokio::sync::oneshot::channel();
            let task_state = state.clone();
            let task_base = base.clone();
            // The fetch runs on its own so that it completes for the waiters
            // even if this client goes away.
            tokio::spawn(
                async move {
                    let result =
                        fetch::fetch_for_cache(&task_state, &request, task_base, guard).await;
                    let _ = tx.send(result);
                }
                .in_current_span(),
            );
            let result = match rx.await {
                Ok(result) => result,
                Err(_) => FetchResult::Failed(crate::origin_client::OriginError::new(
                    edgecache::config::FailureKind::Reset,
                    "fetch task ended without a result",
                )),
            };
            Some(match result {
                FetchResult::Stored { object, fwd_status } => {
                    let now = SystemTime::now();
                    let status = CacheStatus {
                        fwd: Some(fwd),
                        fwd_status: Some(fwd_status),
                        ttl: Some(object.ttl_secs(now)),
                        stored: true,
                        ..CacheStatus::default()
                    };
                    respond::serve_object(state, ctx, &object, status, now)
                }
                FetchResult::Streaming {
                    head,
                    body,
                    fwd_status,
                    ..
                } => {
                    let now = SystemTime::now();
                    let status = CacheStatus {
                        fwd: Some(fwd),
                        fwd_status: Some(fwd_status),
                        ttl: Some(head.ttl_secs(now)),
                        stored: true,
                        ..CacheStatus::default()
                    };
                    respond::serve_streaming(state, ctx, &head, &body, status, now)
                }
                FetchResult::Pass(resp) => {
                    if ctx.method == Method::HEAD {
                        let (parts, _) = resp.into_parts();
                        Response::from_parts(parts, EdgeBody::Empty).into()
                    } else {
                        resp.into()
                    }
                }
                FetchResult::Failed(err) => failure::respond(state, ctx, base.as_ref(), &err, fwd),
            })
        }
        Role::Waiter(waiter) => {
            Counters::bump(&state.counters.collapsed);
            let head_timeout = state.config.origin_client.first_byte_timeout.0;
            match waiter.wait(head_timeout).await {
                Ok(Outcome::Stored { object, fwd_status }) => {
                    if !variant_matches(&object, ctx.fields.map()) {
                        return None;
                    }
                    let now = SystemTime::now();
                    let status = CacheStatus {
                        fwd: Some(fwd),
                        fwd_status: Some(fwd_status),
                        ttl: Some(object.ttl_secs(now)),
                        collapsed: true,
                        ..CacheStatus::default()
                    };
                    Some(respond::serve_object(state, ctx, &object, status, now))
                }
                Ok(Outcome::Streaming {
                    head,
                    body,
                    fwd_status,
                }) => {
                    if !variant_matches(&head, ctx.fields.map()) {
                        return None;
                    }
                    let now = SystemTime::now();
                    let status = CacheStatus {
                        fwd: Some(fwd),
                        fwd_status: Some(fwd_status),
                        ttl: Some(head.ttl_secs(now)),
                        collapsed: true,
                        ..CacheStatus::default()
                    };
                    Some(respond::serve_streaming(
                        state, ctx, &head, &body, status, now,
                    ))
                }
                Ok(Outcome::Uncacheable) => {
                    let status = CacheStatus {
                        fwd: Some(fwd),
                        collapsed: true,
                        ..CacheStatus::default()
                    };
                    Some(
                        pass::forward(state, ctx, EdgeBody::Empty, status)
                            .await
                            .into(),
                    )
                }
                Ok(Outcome::Failed(err)) | Err(err) => {
                    Some(failure::respond(state, ctx, base.as_ref(), &err, fwd))
                }
            }
        }
    }
}

/// Whether an object fetched by another request is the variant this request
/// selects (its Vary'd headers may differ).
fn variant_matches(object: &CachedObject, headers: &HeaderMap) -> bool {
    let spec = object.vary_spec();
    match (object.variant(), spec.secondary_key(headers)) {
        (None, _) => matches!(spec, edgecache::http_cache::vary::VarySpec::None),
        (Some(stored), Some(ours)) => *stored == ours,
        (Some(_), None) => false,
    }
}

/// Serves a stale object at once when it is inside the stale-while-revalidate
/// window (the route's or the origin's, unless the origin forbids stale),
/// and refreshes it in the background: one refresh per key.
fn stale_while_revalidate(
    state: &Arc<EdgeState>,
    ctx: &RequestCtx<'_>,
    object: &Arc<CachedObject>,
    key: &CacheKey,
    now: SystemTime,
) -> Option<Answer> {
    if object.stale.forbidden
        || object.is_fresh(now)
        || client_demands_revalidation(state, ctx)
        || state.control.lag_exceeded(ctx.route)
    {
        return None;
    }
    let origin_window =
        std::time::Duration::from_secs(object.stale.stale_while_revalidate.unwrap_or(0));
    let window = ctx.route.stale_while_revalidate.0.max(origin_window);
    if object.staleness(now) > window {
        return None;
    }
    if let Role::Leader(guard) = state.inflight.join(key) {
        let request = Arc::new(fetch::FetchRequest::from_ctx(ctx, key.clone(), Fwd::Stale));
        let task_state = state.clone();
        let base = object.clone();
        tokio::spawn(
            async move {
                let _ = fetch::fetch_for_cache(&task_state, &request, Some(base), guard).await;
            }
            .in_current_span(),
        );
    }
    Counters::bump(&state.counters.stale);
    let status = CacheStatus {
        hit: true,
        fwd: Some(Fwd::Stale),
        ttl: Some(object.ttl_secs(now)),
        detail: Some("stale-while-revalidate".into()),
        ..CacheStatus::default()
    };
    Some(respond::serve_object(state, ctx, object, status, now))
}

/// Whether the client asked for a validated answer (no-cache, max-age=0).
fn client_demands_revalidation(state: &EdgeState, ctx: &RequestCtx<'_>) -> bool {
    if !state.config.cache.honor_request_no_cache {
        return false;
    }
    ctx.req_cc
        .as_ref()
        .is_some_and(|cc| cc.no_cache || cc.max_age == Some(0))
}
