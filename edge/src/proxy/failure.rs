//! What happens when the origin fails: the route's stale-versus-error
//! policy, bounded by what the origin's own directives allow.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use edgecache::config::OnOriginFailure;
use edgecache::http_cache::cache_status::{CacheStatus, Fwd};
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use super::RequestCtx;
use super::answer::Answer;
use super::forward::append_via;
use super::respond::serve_object;
use crate::body::EdgeBody;
use crate::object::CachedObject;
use crate::origin_client::OriginError;
use crate::state::{Counters, EdgeState};

/// Answers a request whose fetch failed: a stale copy where the policy and
/// the origin's directives allow it, otherwise 504 or 502.
pub fn respond(
    state: &EdgeState,
    ctx: &RequestCtx<'_>,
    base: Option<&Arc<CachedObject>>,
    err: &OriginError,
    fwd: Fwd,
) -> Answer {
    let now = SystemTime::now();
    if let Some(object) = base {
        let purge_lagging = !object.is_fresh(now) && state.control.lag_exceeded(ctx.route);
        if !purge_lagging && stale_allowed(ctx, object, err, now) {
            Counters::bump(&state.counters.stale);
            let status = CacheStatus {
                hit: true,
                fwd: Some(Fwd::Stale),
                ttl: Some(object.ttl_secs(now)),
                detail: Some(detail(err).to_string()),
                ..CacheStatus::default()
            };
            return serve_object(state, ctx, object, status, now);
        }
    }
    error_response(state, err, fwd).into()
}

/// Whether `object` may answer in place of the failed origin.
pub fn stale_allowed(
    ctx: &RequestCtx<'_>,
    object: &CachedObject,
    err: &OriginError,
    now: SystemTime,
) -> bool {
    if object.is_fresh(now) {
        // Still fresh (the client forced revalidation): never past freshness.
        return true;
    }
    let route = ctx.route;
    if route.on_origin_failure != OnOriginFailure::ServeStale
        || !route.counts_as_failure(err.kind, err.status)
        || object.stale.forbidden
    {
        return false;
    }
    let origin_window = Duration::from_secs(object.stale.stale_if_error.unwrap_or(0));
    object.staleness(now) <= route.max_stale.0.max(origin_window)
}

/// The Cache-Status detail for a failure.
pub fn detail(err: &OriginError) -> &'static str {
    if err.is_unreachable() {
        "origin-unreachable"
    } else {
        err.kind.as_str()
    }
}

/// 504 (no answer) or 502 (bad answer) with Retry-After and a short reason.
pub fn error_response(state: &EdgeState, err: &OriginError, fwd: Fwd) -> Response<EdgeBody> {
    let code = if err.fail_fast {
        StatusCode::SERVICE_UNAVAILABLE
    } else if err.is_unreachable() {
        StatusCode::GATEWAY_TIMEOUT
    } else {
        StatusCode::BAD_GATEWAY
    };
    let status = CacheStatus {
        fwd: Some(fwd),
        fwd_status: err.status,
        detail: Some(detail(err).to_string()),
        ..CacheStatus::default()
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::AGE, HeaderValue::from_static("0"));
    headers.insert(
        header::RETRY_AFTER,
        HeaderValue::from(state.config.health.retry_after.0.as_secs().max(1)),
    );
    if let Ok(v) = HeaderValue::from_str(&status.render_for(&state.cache_name)) {
        headers.insert(super::CACHE_STATUS, v);
    }
    append_via(&mut headers, &state.via);
    let body = format!(
        "{} {}: {} ({})\n",
        code.as_u16(),
        code.canonical_reason().unwrap_or(""),
        detail(err),
        err.detail
    );
    let mut resp = Response::new(EdgeBody::from(body));
    *resp.status_mut() = code;
    *resp.headers_mut() = headers;
    resp
}
