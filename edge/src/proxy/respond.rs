//! The serve phase: a response from a stored object (with conditionals,
//! ranges and HEAD), and small plain-text answers of the edge's own.

use std::sync::Arc;
use std::time::SystemTime;

use edgecache::http_cache::cache_status::CacheStatus;
use edgecache::http_cache::conditional::{Precondition, evaluate, not_modified_headers};
use edgecache::http_cache::range::{RangeAnswer, evaluate_range};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};

use super::answer::{Answer, EdgeFields};
use super::forward::append_via;
use super::{CACHE_STATUS, RequestCtx};
use crate::body::EdgeBody;
use crate::object::CachedObject;
use crate::state::EdgeState;

/// Answers a request from a stored object.
pub fn serve_object(
    state: &EdgeState,
    ctx: &RequestCtx<'_>,
    object: &Arc<CachedObject>,
    status: CacheStatus,
    now: SystemTime,
) -> Answer {
    let finish = |headers: &mut HeaderMap| add_edge_fields(headers, state, object, &status, now);
    if served_as_stored(ctx, object) {
        let body = EdgeBody::full(object.body.clone());
        return as_stored(state, ctx, object, &status, now, body);
    }
    // Sized for the fields added here and by the handler (Age,
    // Cache-Status, Via, X-Request-Id, Content-Range).
    let mut headers = object.headers.to_map(5);
    if object.status == StatusCode::OK {
        match evaluate(&ctx.method, ctx.fields.map(), &headers) {
            Precondition::NotModified => {
                let mut headers = not_modified_headers(&headers);
                finish(&mut headers);
                return with_parts(StatusCode::NOT_MODIFIED, headers, EdgeBody::Empty).into();
            }
            Precondition::PreconditionFailed => {
                let mut headers = HeaderMap::new();
                finish(&mut headers);
                return with_parts(StatusCode::PRECONDITION_FAILED, headers, EdgeBody::Empty)
                    .into();
            }
            Precondition::Proceed => {}
        }
    }
    finish(&mut headers);
    let head = ctx.method == Method::HEAD;
    let len = object.body.len() as u64;
    let range = if object.status == StatusCode::OK {
        evaluate_range(ctx.fields.map(), len, &headers)
    } else {
        RangeAnswer::Full
    };
    let response = match range {
        RangeAnswer::Full => {
            let body = if head {
                EdgeBody::Empty
            } else {
                EdgeBody::full(object.body.clone())
            };
            with_parts(object.status, headers, body)
        }
        RangeAnswer::Partial {
            start,
            end_inclusive,
        } => {
            let content_range = format!("bytes {start}-{end_inclusive}/{len}");
            if let Ok(v) = HeaderValue::from_str(&content_range) {
                headers.insert(header::CONTENT_RANGE, v);
            }
            headers.insert(
                header::CONTENT_LENGTH,
                HeaderValue::from(end_inclusive - start + 1),
            );
            let body = if head {
                EdgeBody::Empty
            } else {
                EdgeBody::full(object.body.slice(start as usize..=end_inclusive as usize))
            };
            with_parts(StatusCode::PARTIAL_CONTENT, headers, body)
        }
        RangeAnswer::Unsatisfiable => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                headers.insert(header::CONTENT_RANGE, v);
            }
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
            with_parts(StatusCode::RANGE_NOT_SATISFIABLE, headers, EdgeBody::Empty)
        }
    };
    response.into()
}

/// Whether the object answers as stored, its fields untouched: no
/// conditional or range in the request (those read the stored validators
/// and may change the status), and no stored Via for ours to extend.
fn served_as_stored(ctx: &RequestCtx<'_>, object: &CachedObject) -> bool {
    !ctx.shaping && !object.headers.contains(&header::VIA)
}

fn with_parts(status: StatusCode, headers: HeaderMap, body: EdgeBody) -> Response<EdgeBody> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

/// A short plain-text answer of the edge's own (400, 413, 414, ...).
pub fn plain(state: &EdgeState, status: StatusCode, text: &'static str) -> Response<EdgeBody> {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    append_via(&mut headers, &state.via);
    with_parts(status, headers, EdgeBody::from(text))
}

/// Our Cache-Status entry; a response that just came through the upstream
/// tier lists that tier's entry first (RFC 9211: one entry per cache, the
/// origin-nearest first).
fn cache_status_value(state: &EdgeState, object: &CachedObject, status: &CacheStatus) -> String {
    let ours = status.render_for(&state.cache_name);
    match object.upstream_status() {
        Some(upstream) if status.stored || status.collapsed => {
            edgecache::http_cache::cache_status::append(Some(upstream), &ours)
        }
        _ => ours,
    }
}

/// Answers from a fill that is still streaming in: the stored head now, the
/// body as it arrives (a streaming miss). Conditionals and ranges are not
/// evaluated here: the complete 200 is always a valid answer.
pub fn serve_streaming(
    state: &EdgeState,
    ctx: &RequestCtx<'_>,
    head: &Arc<CachedObject>,
    body: &Arc<crate::growing::Growing>,
    status: CacheStatus,
    now: SystemTime,
) -> Answer {
    if !head.headers.contains(&header::VIA) {
        return as_stored(state, ctx, head, &status, now, body.reader());
    }
    let mut headers = head.headers.to_map(4);
    add_edge_fields(&mut headers, state, head, &status, now);
    let body = if ctx.method == Method::HEAD {
        EdgeBody::Empty
    } else {
        body.reader()
    };
    with_parts(head.status, headers, body).into()
}

/// The fields the edge adds to every answer from a stored object: Age,
/// Cache-Status and Via (X-Request-Id is the handler's).
fn add_edge_fields(
    headers: &mut HeaderMap,
    state: &EdgeState,
    object: &CachedObject,
    status: &CacheStatus,
    now: SystemTime,
) {
    headers.insert(header::AGE, HeaderValue::from(object.age(now).as_secs()));
    if let Ok(v) = HeaderValue::try_from(cache_status_value(state, object, status)) {
        headers.insert(CACHE_STATUS, v);
    }
    append_via(headers, &state.via);
}

/// An answer with the object's status and stored fields left as stored
/// (written from their bytes by the HTTP/1.1 path), followed by only the
/// edge's own, kept as values; `body` is dropped for HEAD. The object must
/// have no stored Via (ours would have to extend it).
fn as_stored(
    state: &EdgeState,
    ctx: &RequestCtx<'_>,
    object: &Arc<CachedObject>,
    status: &CacheStatus,
    now: SystemTime,
    body: EdgeBody,
) -> Answer {
    let body = if ctx.method == Method::HEAD {
        EdgeBody::Empty
    } else {
        body
    };
    let mut response = Response::new(body);
    *response.status_mut() = object.status;
    Answer {
        response,
        stored: Some(object.clone()),
        edge: Some(EdgeFields {
            age: object.age(now).as_secs(),
            cache_status: cache_status_value(state, object, status),
            via: state.via.clone(),
            request_id: None,
            metrics_class: crate::metrics::status_class(object.status.as_u16(), status),
        }),
    }
}
