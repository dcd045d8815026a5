//! Pass-through: requests that the cache does not answer (unsafe methods,
//! hit-for-pass, uncacheable answers) go to the origin and back unchanged
//! but for hop-by-hop fields; unsafe methods invalidate what they changed.

use edgecache::cache_key::CacheKey;
use edgecache::http_cache::cache_status::{CacheStatus, Fwd};
use edgecache::http_cache::invalidate::invalidation_targets;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};

use super::forward::{origin_request, pass_response};
use super::{ClientBody, RequestCtx};
use super::{failure, respond};
use crate::body::EdgeBody;
use crate::state::{Counters, EdgeState};

/// The client's request body, bounded by `max_request_body`.
pub fn request_body<B: ClientBody>(state: &EdgeState, _ctx: &RequestCtx<'_>, body: B) -> EdgeBody {
    let limit = state.config.limits.max_request_body.0 as usize;
    EdgeBody::stream(Limited::new(body, limit).map_err(|e| -> crate::body::BoxError { e }))
}

/// Forwards a request to the origin and passes the answer back.
pub async fn forward(
    state: &EdgeState,
    ctx: &RequestCtx<'_>,
    body: EdgeBody,
    mut status: CacheStatus,
) -> Response<EdgeBody> {
    Counters::bump(&state.counters.passes);
    let upstream = match state.pick_upstream() {
        Ok(u) => u,
        Err(e) => return failure::error_response(state, &e, status.fwd.unwrap_or(Fwd::Bypass)),
    };
    let req = match origin_request(
        state,
        &upstream.client,
        &ctx.method,
        ctx.fields.map(),
        ctx.path_and_query(),
        body,
        &ctx.id,
        ctx.client,
        false,
    ) {
        Ok(req) => req,
        Err(e) => return failure::error_response(state, &e, status.fwd.unwrap_or(Fwd::Bypass)),
    };
    match upstream.send(req).await {
        Err(e) => {
            Counters::bump(&state.counters.origin_failures);
            tracing::warn!(error = %e, "origin request failed (pass)");
            failure::error_response(state, &e, status.fwd.unwrap_or(Fwd::Bypass))
        }
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            status.fwd_status = Some(parts.status.as_u16());
            let body = if ctx.method == http::Method::HEAD {
                EdgeBody::Empty
            } else {
                EdgeBody::stream(body)
            };
            pass_response(state, parts, body, status)
        }
    }
}

/// POST, PUT, PATCH, DELETE: forwarded; a non-error answer invalidates the
/// target URI and its Location / Content-Location (RFC 9111 §4.4).
pub async fn unsafe_method<B: ClientBody>(
    state: &EdgeState,
    ctx: &RequestCtx<'_>,
    body: B,
) -> Response<EdgeBody> {
    let declared = ctx
        .fields
        .map()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > state.config.limits.max_request_body.0) {
        return respond::plain(
            state,
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large\n",
        );
    }
    let status = CacheStatus {
        fwd: Some(Fwd::Method),
        ..CacheStatus::default()
    };
    let resp = forward(state, ctx, request_body(state, ctx, body), status).await;
    let code = resp.status();
    if code.is_success() || code.is_redirection() {
        let targets = invalidation_targets(ctx.uri, ctx.key.host(), code, resp.headers());
        for target in targets {
            let key = CacheKey::new("http", ctx.key.host(), &target);
            let removed = state.store.remove_url(&key).await;
            tracing::debug!(%key, removed, "invalidated by unsafe method");
        }
    }
    resp
}
