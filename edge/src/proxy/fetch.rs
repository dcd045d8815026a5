//! The fetch phase of a cache fill: ask the origin (conditionally when a
//! stale copy has validators), decide whether the answer may be stored,
//! read its body under the size limit, store it, and tell the waiters.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use edgecache::cache_key::CacheKey;
use edgecache::config::{FailureKind, Route};
use edgecache::http_cache::cache_control::CacheControl;
use edgecache::http_cache::cache_status::{CacheStatus, Fwd};
use edgecache::http_cache::directives::Directives;
use edgecache::http_cache::freshness::{
    corrected_initial_age, freshness_lifetime, stale_permissions,
};
use edgecache::http_cache::storable::{check_storable, strip_qualified_fields};
use edgecache::http_cache::update::{freshen_from_304, strip_hop_by_hop, validators_match};
use edgecache::http_cache::vary::VarySpec;
use futures_util::stream;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};

use tracing::Instrument;

use super::RequestCtx;
use super::forward::{origin_request, pass_response};
use crate::body::EdgeBody;
use crate::coalesce::{LeaderGuard, Outcome};
use crate::growing::Growing;
use crate::health::Upstream;
use crate::object::{CachedObject, ObjectExtras};
use crate::origin_client::{BodyRead, OriginError};
use crate::state::{Counters, EdgeState};
use crate::stored_headers::StoredHeaders;

/// What a fill needs from the request that leads it; owned, so the fetch
/// can outlive the client connection.
pub struct FetchRequest {
    /// Request id, passed to the origin.
    pub id: crate::request_id::RequestId,
    /// The client's address, for X-Forwarded-For.
    pub client: std::net::SocketAddr,
    /// The URL's primary key.
    pub primary: CacheKey,
    /// The key the fill coalesces on (primary or variant).
    pub key: CacheKey,
    /// The leading request's headers (for forwarding and Vary).
    pub headers: HeaderMap,
    /// `path?query`.
    pub path_and_query: String,
    /// The route in force.
    pub route: Route,
    /// The request's Cache-Control.
    pub req_cc: Option<CacheControl>,
    /// How the cache missed, for Cache-Status.
    pub fwd: Fwd,
}

impl FetchRequest {
    /// Copies what the fill needs out of the request.
    pub fn from_ctx(ctx: &RequestCtx<'_>, key: CacheKey, fwd: Fwd) -> FetchRequest {
        FetchRequest {
            id: ctx.id.clone(),
            client: ctx.client,
            primary: ctx.key.clone(),
            key,
            headers: ctx.fields.map().clone(),
            path_and_query: ctx.path_and_query().to_string(),
            route: ctx.route.clone(),
            req_cc: ctx.req_cc.clone(),
            fwd,
        }
    }
}

/// How a fill ended, for the request that led it.
pub enum FetchResult {
    /// Stored: serve the object.
    Stored {
        /// The new (or freshened) object.
        object: Arc<CachedObject>,
        /// The origin's status (304 after a revalidation).
        fwd_status: u16,
    },
    /// Being stored while it streams in: serve the head now and the body
    /// as it arrives.
    Streaming {
        /// The object's head; its body is empty.
        head: Arc<CachedObject>,
        /// The body as it grows.
        body: Arc<Growing>,
        /// The origin's status.
        fwd_status: u16,
        /// The rest of the fill, taken over by `fetch_for_cache`.
        job: Option<StreamJob>,
    },
    /// Not storable: this response goes to the leader's client as it is.
    Pass(Response<EdgeBody>),
    /// The origin failed; the route policy decides.
    Failed(OriginError),
}

/// Runs a fill and publishes its outcome to the waiters.
pub async fn fetch_for_cache(
    state: &Arc<EdgeState>,
    req: &FetchRequest,
    base: Option<Arc<CachedObject>>,
    guard: LeaderGuard,
) -> FetchResult {
    let mut result = fetch(state, req, base.as_deref(), &guard).await;
    if let FetchResult::Streaming {
        head,
        body,
        fwd_status,
        job,
    } = &mut result
    {
        if let Some(job) = job.take() {
            guard.streaming(Outcome::Streaming {
                head: head.clone(),
                body: body.clone(),
                fwd_status: *fwd_status,
            });
            let fill = run_stream(state.clone(), req.primary.clone(), job, guard);
            tokio::spawn(fill.in_current_span());
            return result;
        }
    }
    match &result {
        FetchResult::Streaming { .. } => guard.finish(Outcome::Uncacheable),
        FetchResult::Stored { object, fwd_status } => guard.finish(Outcome::Stored {
            object: object.clone(),
            fwd_status: *fwd_status,
        }),
        FetchResult::Pass(_) => guard.finish(Outcome::Uncacheable),
        FetchResult::Failed(err) => {
            Counters::bump(&state.counters.origin_failures);
            tracing::warn!(error = %err, key = %req.key, "origin fetch failed");
            guard.finish(Outcome::Failed(err.clone()))
        }
    }
    result
}

async fn fetch(
    state: &Arc<EdgeState>,
    req: &FetchRequest,
    base: Option<&CachedObject>,
    guard: &LeaderGuard,
) -> FetchResult {
    let upstream = match state.pick_upstream() {
        Ok(u) => u,
        Err(e) => return FetchResult::Failed(e),
    };
    // Attempt 0 may be conditional; attempt 1 is unconditional, after a 304
    // whose validators did not select the stored response.
    for attempt in 0..2 {
        let validate = base.filter(|b| attempt == 0 && b.has_validators());
        let origin_req = match origin_request(
            state,
            &upstream.client,
            &Method::GET,
            &req.headers,
            &req.path_and_query,
            EdgeBody::Empty,
            &req.id,
            req.client,
            true,
        ) {
            Ok(mut r) => {
                if let Some(b) = validate {
                    add_validators(r.headers_mut(), &b.headers);
                }
                r
            }
            Err(e) => return FetchResult::Failed(e),
        };
        Counters::bump(&state.counters.origin_fetches);
        let request_time = SystemTime::now();
        let resp = match upstream.send(origin_req).await {
            Ok(resp) => resp,
            Err(e) => return FetchResult::Failed(e),
        };
        let response_time = SystemTime::now();
        guard.head_received();
        let status = resp.status();
        if req
            .route
            .counts_as_failure(FailureKind::Status, Some(status.as_u16()))
        {
            let mut err =
                OriginError::new(FailureKind::Status, format!("origin answered {status}"));
            err.status = Some(status.as_u16());
            upstream.record_failure(&err);
            return FetchResult::Failed(err);
        }
        if status == StatusCode::NOT_MODIFIED {
            match validate {
                Some(b) if validators_match(&b.headers.to_map(0), resp.headers()) => {
                    upstream.record_success();
                    let object =
                        freshen(state, req, b, resp.headers(), request_time, response_time);
                    let object = Arc::new(object);
                    let spec = object.vary_spec();
                    state.store.insert(&req.primary, spec, object.clone()).await;
                    return FetchResult::Stored {
                        object,
                        fwd_status: 304,
                    };
                }
                Some(_) => continue,
                None => {}
            }
        }
        let result = store_or_pass(state, upstream, req, resp, request_time, response_time).await;
        match &result {
            FetchResult::Failed(e) => upstream.record_failure(e),
            _ => upstream.record_success(),
        }
        return result;
    }
    FetchResult::Failed(OriginError::new(
        FailureKind::Status,
        "origin's 304 did not match the stored response twice",
    ))
}

/// Marks a URL whose answer could not be stored: for the configured while,
/// its requests go to the origin without waiting on each other.
async fn mark_hit_for_pass(state: &EdgeState, primary: &CacheKey) {
    let ttl = state.config.cache.hit_for_pass.0;
    state.store.mark_pass(primary, ttl).await;
}

fn add_validators(out: &mut HeaderMap, stored: &StoredHeaders) {
    if let Some(etag) = stored.get(&header::ETAG) {
        out.insert(header::IF_NONE_MATCH, etag);
    }
    if let Some(lm) = stored.get(&header::LAST_MODIFIED) {
        out.insert(header::IF_MODIFIED_SINCE, lm);
    }
}

async fn store_or_pass(
    state: &Arc<EdgeState>,
    upstream: &Arc<Upstream>,
    req: &FetchRequest,
    resp: Response<hyper::body::Incoming>,
    request_time: SystemTime,
    response_time: SystemTime,
) -> FetchResult {
    let (parts, body) = resp.into_parts();
    let directives = Directives::from_response(&parts.headers, &state.targets);
    let storable = check_storable(
        &Method::GET,
        &req.headers,
        req.req_cc.as_ref(),
        parts.status,
        &parts.headers,
        &directives,
        &state.store_opts,
    );
    let pass_status = |detail: &str| CacheStatus {
        fwd: Some(req.fwd),
        fwd_status: Some(parts.status.as_u16()),
        detail: Some(detail.to_string()),
        ..CacheStatus::default()
    };
    if let Err(reason) = storable {
        mark_hit_for_pass(state, &req.primary).await;
        tracing::debug!(key = %req.key, reason = reason.reason(), "not storable: hit-for-pass");
        let status = pass_status(reason.reason());
        return FetchResult::Pass(pass_response(state, parts, EdgeBody::stream(body), status));
    }
    let limit = state.config.cache.max_object_size.0 as usize;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        mark_hit_for_pass(state, &req.primary).await;
        let status = pass_status("too-large");
        return FetchResult::Pass(pass_response(state, parts, EdgeBody::stream(body), status));
    }
    let threshold = state.config.cache.stream_threshold.0;
    if let Some(len) = declared.filter(|len| *len >= threshold) {
        let head = build_object(
            state,
            req,
            parts.status,
            parts.headers,
            &directives,
            Stored::Streaming(len),
            request_time,
            response_time,
        );
        return FetchResult::Streaming {
            head: Arc::new(head),
            body: Growing::new(),
            fwd_status: parts.status.as_u16(),
            job: Some(StreamJob {
                incoming: body,
                upstream: upstream.clone(),
            }),
        };
    }
    match upstream.client.read_body(body, limit).await {
        BodyRead::Complete(bytes) => {
            let object = build_object(
                state,
                req,
                parts.status,
                parts.headers,
                &directives,
                Stored::Complete(bytes),
                request_time,
                response_time,
            );
            let object = Arc::new(object);
            let spec = object.vary_spec();
            state.store.insert(&req.primary, spec, object.clone()).await;
            FetchResult::Stored {
                object,
                fwd_status: parts.status.as_u16(),
            }
        }
        BodyRead::TooLarge(head, rest) => {
            mark_hit_for_pass(state, &req.primary).await;
            let first = stream::iter(
                head.into_iter()
                    .map(|b| Ok::<_, crate::body::BoxError>(http_body::Frame::data(b))),
            );
            let rest = rest.into_data_stream().map_err_into();
            let body = StreamBody::new(futures_util::StreamExt::chain(first, rest));
            let status = pass_status("too-large");
            FetchResult::Pass(pass_response(state, parts, EdgeBody::stream(body), status))
        }
        BodyRead::Failed(e) => FetchResult::Failed(e),
    }
}

/// Turns a data stream's errors into boxed errors and its chunks into frames.
trait MapErrInto {
    fn map_err_into(
        self,
    ) -> futures_util::stream::BoxStream<
        'static,
        Result<http_body::Frame<Bytes>, crate::body::BoxError>,
    >;
}

impl MapErrInto for http_body_util::BodyDataStream<hyper::body::Incoming> {
    fn map_err_into(
        self,
    ) -> futures_util::stream::BoxStream<
        'static,
        Result<http_body::Frame<Bytes>, crate::body::BoxError>,
    > {
        use futures_util::StreamExt;
        self.map(|r| r.map(http_body::Frame::data).map_err(Into::into))
            .boxed()
    }
}

/// The body an object is built with.
enum Stored {
    /// All of it, read.
    Complete(Bytes),
    /// Still arriving; this many bytes in all (Content-Length).
    Streaming(u64),
}

#[allow(clippy::too_many_arguments)]
fn build_object(
    state: &EdgeState,
    req: &FetchRequest,
    status: StatusCode,
    mut headers: HeaderMap,
    directives: &Directives,
    body: Stored,
    request_time: SystemTime,
    response_time: SystemTime,
) -> CachedObject {
    let lifetime = freshness_lifetime(
        status,
        &headers,
        directives,
        response_time,
        &state.store_opts,
    );
    let initial_age = corrected_initial_age(&headers, request_time, response_time);
    strip_hop_by_hop(&mut headers);
    strip_qualified_fields(&mut headers, directives, &state.store_opts);
    let surrogate_keys = take_surrogate_keys(state, &mut headers);
    crate::stored_headers::remove_per_answer_fields(&mut headers);
    let upstream_status = headers.remove(super::CACHE_STATUS);
    let (body, body_file, length) = match body {
        Stored::Complete(bytes) => {
            let length = bytes.len();
            let threshold = state.config.cache.file_body_threshold.0;
            match crate::body_file::for_body(std::slice::from_ref(&bytes), length, threshold) {
                Some(file) => (file.bytes(), Some(file), length as u64),
                None => (bytes, None, length as u64),
            }
        }
        Stored::Streaming(length) => (Bytes::new(), None, length),
    };
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    let variant = match VarySpec::from_headers(&headers) {
        spec @ VarySpec::Fields(_) => spec.secondary_key(&req.headers),
        _ => None,
    };
    let headers = StoredHeaders::from_map(&headers);
    let stale = stale_permissions(directives);
    let retain_stale = retention(state, &req.route, &stale);
    CachedObject {
        status,
        headers,
        body,
        body_file,
        response_time,
        initial_age,
        lifetime,
        stale,
        retain_stale,
        extras: ObjectExtras {
            variant,
            surrogate_keys,
            upstream_status,
        }
        .boxed(),
    }
}

/// A stale object refreshed by a matching 304 (RFC 9111 §4.3.4): new
/// headers and times, the same body buffer.
fn freshen(
    state: &EdgeState,
    req: &FetchRequest,
    base: &CachedObject,
    not_modified: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) -> CachedObject {
    let mut headers = base.headers.to_map(not_modified.len());
    freshen_from_304(&mut headers, not_modified);
    let directives = Directives::from_response(&headers, &state.targets);
    let lifetime = freshness_lifetime(
        base.status,
        &headers,
        &directives,
        response_time,
        &state.store_opts,
    );
    let initial_age = corrected_initial_age(&headers, request_time, response_time);
    strip_hop_by_hop(&mut headers);
    let mut surrogate_keys = take_surrogate_keys(state, &mut headers);
    if surrogate_keys.is_empty() {
        surrogate_keys = base.surrogate_keys().to_vec();
    }
    crate::stored_headers::remove_per_answer_fields(&mut headers);
    let upstream_status = headers.remove(super::CACHE_STATUS);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(base.body.len()));
    let headers = StoredHeaders::from_map(&headers);
    let stale = stale_permissions(&directives);
    CachedObject {
        status: base.status,
        headers,
        body: base.body.clone(),
        body_file: base.body_file.clone(),
        response_time,
        initial_age,
        lifetime,
        stale,
        retain_stale: retention(state, &req.route, &stale),
        extras: ObjectExtras {
            variant: base.variant().map(str::to_string),
            surrogate_keys,
            upstream_status,
        }
        .boxed(),
    }
}

fn retention(
    state: &EdgeState,
    route: &Route,
    stale: &edgecache::http_cache::freshness::StalePermissions,
) -> std::time::Duration {
    let secs = |s: Option<u64>| std::time::Duration::from_secs(s.unwrap_or(0));
    state
        .config
        .cache
        .retain_stale
        .0
        .max(route.max_stale.0)
        .max(route.stale_while_revalidate.0)
        .max(secs(stale.stale_while_revalidate))
        .max(secs(stale.stale_if_error))
}

/// Collects `Surrogate-Key` (space separated) and `Cache-Tag` (comma
/// separated) values, and removes the configured fields from the headers.
fn take_surrogate_keys(state: &EdgeState, headers: &mut HeaderMap) -> Vec<String> {
    let mut keys = Vec::new();
    for v in headers.get_all("surrogate-key") {
        if let Ok(s) = v.to_str() {
            keys.extend(s.split_ascii_whitespace().map(str::to_string));
        }
    }
    for v in headers.get_all("cache-tag") {
        if let Ok(s) = v.to_str() {
            keys.extend(
                s.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string),
            );
        }
    }
    keys.sort();
    keys.dedup();
    for name in &state.strip_headers {
        headers.remove(name);
    }
    keys
}

/// The rest of a streaming fill: the origin body still to read.
pub struct StreamJob {
    incoming: hyper::body::Incoming,
    upstream: Arc<Upstream>,
}

/// Reads a streaming fill's body into its growing buffer (every waiting
/// client follows it), then stores the complete object; a body that breaks
/// off fails the readers and stores nothing.
async fn run_stream(state: Arc<EdgeState>, primary: CacheKey, job: StreamJob, guard: LeaderGuard) {
    let Some(Outcome::Streaming {
        head,
        body: growing,
        fwd_status,
    }) = guard.current()
    else {
        guard.finish(Outcome::Uncacheable);
        return;
    };
    let chunk_timeout = state.config.origin_client.body_timeout.0;
    let mut incoming = job.incoming;
    let mut total = 0usize;
    let ended = loop {
        match tokio::time::timeout(chunk_timeout, incoming.frame()).await {
            Err(_) => {
                break Err(OriginError::new(
                    FailureKind::TruncatedBody,
                    format!(
                        "body stalled for {}ms after {total} bytes",
                        chunk_timeout.as_millis()
                    ),
                ));
            }
            Ok(None) => break Ok(()),
            Ok(Some(Err(e))) => {
                break Err(OriginError::new(
                    FailureKind::TruncatedBody,
                    format!(
                        "body broke off after {total} bytes: {}",
                        crate::origin_client::error_chain(&e)
                    ),
                ));
            }
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    total += data.len();
                    growing.push(data);
                }
            }
        }
    };
    match ended {
        Ok(()) => {
            let (body, body_file) = growing.stored_body(state.config.cache.file_body_threshold.0);
            let object = Arc::new(head.with_body(body, body_file));
            let spec = object.vary_spec();
            state.store.insert(&primary, spec, object.clone()).await;
            job.upstream.record_success();
            growing.finish(Ok(()));
            guard.finish(Outcome::Stored { object, fwd_status });
        }
        Err(err) => {
            job.upstream.record_failure(&err);
            Counters::bump(&state.counters.origin_failures);
            tracing::warn!(error = %err, key = %primary, "streaming fill failed");
            growing.finish(Err(err.detail.clone()));
            guard.finish(Outcome::Failed(err));
        }
    }
}
