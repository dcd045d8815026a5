//! Building requests to the origin and fixing up origin responses that are
//! passed to the client as they are.

use std::net::SocketAddr;

use edgecache::http_cache::cache_status::CacheStatus;
use edgecache::http_cache::update::strip_hop_by_hop;
use http::{HeaderMap, HeaderValue, Method, Request, Response, header};

use crate::body::EdgeBody;
use crate::origin_client::{OriginClient, OriginError};
use crate::request_id::RequestId;
use crate::state::EdgeState;

/// Request fields that describe one client's view and must not shape a fill
/// shared by many clients.
const CLIENT_ONLY_FIELDS: [header::HeaderName; 8] = [
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_MATCH,
    header::IF_UNMODIFIED_SINCE,
    header::IF_RANGE,
    header::RANGE,
    header::CACHE_CONTROL,
    header::PRAGMA,
];

/// Builds the origin request for a client request. `for_fill` drops the
/// client's conditionals and Range, since the fill is shared.
#[allow(clippy::too_many_arguments)]
pub fn origin_request(
    state: &EdgeState,
    origin: &OriginClient,
    method: &Method,
    client_headers: &HeaderMap,
    path_and_query: &str,
    body: EdgeBody,
    id: &RequestId,
    client: SocketAddr,
    for_fill: bool,
) -> Result<Request<EdgeBody>, OriginError> {
    let uri = origin.uri_for(path_and_query)?;
    let mut headers = client_headers.clone();
    strip_hop_by_hop(&mut headers);
    headers.remove(header::EXPECT);
    // Fields the origin may treat as the URL, host, scheme or method, which
    // are not in the cache key: forwarding them would allow cache poisoning.
    for name in edgecache::config::UNKEYED_HEADERS {
        headers.remove(name);
    }
    if for_fill {
        for name in &CLIENT_ONLY_FIELDS {
            headers.remove(name);
        }
    }
    if !state.config.origin_client.preserve_host {
        if let Ok(host) = HeaderValue::from_str(origin.authority().as_str()) {
            headers.insert(header::HOST, host);
        }
    }
    append_via(&mut headers, &state.via);
    append_forwarded_for(&mut headers, client);
    headers.insert(super::X_REQUEST_ID, id.to_header_value());
    let mut req = Request::new(body);
    *req.method_mut() = method.clone();
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    Ok(req)
}

/// Appends our entry to the Via list.
pub fn append_via(headers: &mut HeaderMap, via: &HeaderValue) {
    // One hash and probe: this runs on every answer.
    match headers.entry(header::VIA) {
        http::header::Entry::Vacant(slot) => {
            slot.insert(via.clone());
        }
        http::header::Entry::Occupied(mut slot) => {
            let combined = slot.get().to_str().ok().and_then(|existing| {
                let ours = via.to_str().unwrap_or("1.1 edgecache");
                HeaderValue::from_str(&format!("{existing}, {ours}")).ok()
            });
            slot.insert(combined.unwrap_or_else(|| via.clone()));
        }
    }
}

fn append_forwarded_for(headers: &mut HeaderMap, client: SocketAddr) {
    let ip = client.ip().to_string();
    let value = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(existing) => format!("{existing}, {ip}"),
        None => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert("x-forwarded-for", v);
    }
}

/// Prepares an origin response that is not served from the cache: hop-by-hop
/// and surrogate fields removed, Via, Age and Cache-Status added.
pub fn pass_response(
    state: &EdgeState,
    mut parts: http::response::Parts,
    body: EdgeBody,
    status: CacheStatus,
) -> Response<EdgeBody> {
    let upstream_status = parts.headers.remove(super::CACHE_STATUS);
    strip_hop_by_hop(&mut parts.headers);
    for name in &state.strip_headers {
        parts.headers.remove(name);
    }
    if !parts.headers.contains_key(header::AGE) {
        parts
            .headers
            .insert(header::AGE, HeaderValue::from_static("0"));
    }
    append_via(&mut parts.headers, &state.via);
    let ours = status.render_for(&state.cache_name);
    let value = edgecache::http_cache::cache_status::append(upstream_status.as_ref(), &ours);
    if let Ok(v) = HeaderValue::from_str(&value) {
        parts.headers.insert(super::CACHE_STATUS, v);
    }
    Response::from_parts(parts, body)
}
