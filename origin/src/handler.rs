//! Request routing: control endpoints (`/_stats`, `/_fault`), fault
//! injection, unsafe methods, generated content and static files.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::body::{self, ResponseBody};
use crate::conditional::{Validators, fmt_http_date};
use crate::faults::{Fault, Faults};
use crate::files::FileStore;
use crate::generated::GenRequest;
use crate::headers_file::HeadersFile;
use crate::mime::content_type_for;
use crate::path::{SafePath, sanitize};
use crate::query::query_param;
use crate::representation::{Representation, is_bodyless, respond};
use crate::stats::Stats;

/// The value of the `Server` header on every response.
pub const SERVER_NAME: &str = "edgecache-origin";

/// Largest request body read for unsafe methods.
const MAX_UNSAFE_BODY: usize = 16 * 1024 * 1024;

/// Largest `PUT /_fault` body.
const MAX_FAULT_BODY: usize = 64 * 1024;

const ALLOW_CONTENT: &str = "GET, HEAD, POST, PUT, PATCH, DELETE";
const ALLOW_FAULT: &str = "GET, HEAD, PUT, POST, DELETE";
const ALLOW_STATS: &str = "GET, HEAD, DELETE";

/// Shared state of a running origin.
#[derive(Debug)]
pub struct State {
    /// The content root, if any.
    pub files: Option<FileStore>,
    /// The root's `_headers` file, if there is a root.
    pub headers_file: Option<HeadersFile>,
    /// Cache-Control when nothing else sets one.
    pub default_cache_control: HeaderValue,
    /// The injected fault.
    pub faults: Faults,
    /// Request counters.
    pub stats: Stats,
}

/// Answers one request; never fails.
pub async fn handle<B>(state: Arc<State>, req: Request<B>) -> Response<ResponseBody>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut resp = match path.as_str() {
        "/_stats" => stats_endpoint(&state, &method),
        "/_fault" => fault_endpoint(&state, req).await,
        _ => {
            state.stats.record(&path);
            with_faults(&state, req).await
        }
    };
    let headers = resp.headers_mut();
    headers.insert(header::SERVER, HeaderValue::from_static(SERVER_NAME));
    if !headers.contains_key(header::DATE) {
        let now = HeaderValue::from_str(&fmt_http_date(std::time::SystemTime::now()))
            .expect("an HTTP date is a valid header value");
        headers.insert(header::DATE, now);
    }
    tracing::debug!(%method, %path, status = resp.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64, "request");
    resp
}

/// Applies the injected fault (delay, status, truncation) around `route`.
async fn with_faults<B>(state: &State, req: Request<B>) -> Response<ResponseBody>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let fault = state.faults.current();
    if let Some(delay) = fault.delay() {
        tokio::time::sleep(delay).await;
    }
    let is_head = req.method() == Method::HEAD;
    let resp = match fault.status_code() {
        Some(status) => text(
            status,
            format!("injected fault: status {}\n", status.as_u16()),
        ),
        None => route(state, req).await,
    };
    match fault.truncate {
        Some(limit) if !is_head => truncate_response(resp, limit),
        _ => resp,
    }
}

async fn route<B>(state: &State, req: Request<B>) -> Response<ResponseBody>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let safe = match sanitize(req.uri().path()) {
        Ok(safe) => safe,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("bad request path: {e}\n")),
    };
    let method = req.method().clone();
    match method {
        Method::GET | Method::HEAD => {}
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE => {
            return unsafe_method(req).await;
        }
        _ => return method_not_allowed(ALLOW_CONTENT),
    }
    let url_path = safe.as_url_path();
    let mut headers = HeaderMap::new();
    if safe.segments.first().is_some_and(|s| s == "_gen") {
        let generated = match GenRequest::parse(&safe.segments[1..], req.uri().query()) {
            Ok(g) => g,
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        };
        apply_rules(state, &url_path, &mut headers).await;
        let mut rep = generated.representation(req.headers(), headers);
        default_cache_control(state, &mut rep.headers);
        if let Some(delay) = generated.delay {
            tokio::time::sleep(delay).await;
        }
        let resp = respond(&method, req.headers(), rep);
        return match generated.truncate {
            Some(limit) if method != Method::HEAD => truncate_response(resp, limit),
            _ => resp,
        };
    }
    serve_file(state, &method, req.headers(), &safe, &url_path).await
}

async fn serve_file(
    state: &State,
    method: &Method,
    req_headers: &HeaderMap,
    safe: &SafePath,
    url_path: &str,
) -> Response<ResponseBody> {
    let Some(files) = &state.files else {
        return not_found();
    };
    let entry = match files.lookup(safe).await {
        Ok(Some(entry)) => entry,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::warn!(path = url_path, error = %e, "cannot read file");
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read file\n".into(),
            );
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type_for(&entry.requested)),
    );
    apply_rules(state, url_path, &mut headers).await;
    default_cache_control(state, &mut headers);
    let rep = Representation {
        status: StatusCode::OK,
        len: entry.len,
        validators: Validators {
            etag: Some(entry.etag),
            last_modified: Some(entry.modified),
        },
        headers,
        source: entry.source,
    };
    respond(method, req_headers, rep)
}

async fn apply_rules(state: &State, url_path: &str, headers: &mut HeaderMap) {
    if let Some(file) = &state.headers_file {
        file.current().await.apply(url_path, headers);
    }
}

fn default_cache_control(state: &State, headers: &mut HeaderMap) {
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, state.default_cache_control.clone());
    }
}

/// POST/PUT/PATCH/DELETE: echo method and path as JSON, never cacheable.
async fn unsafe_method<B>(req: Request<B>) -> Response<ResponseBody>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = req.into_parts();
    let location = match query_param(parts.uri.query(), "location") {
        Some(loc) => match HeaderValue::from_str(&loc) {
            Ok(v) => Some(v),
            Err(_) => return text(StatusCode::BAD_REQUEST, "invalid location\n".into()),
        },
        None => None,
    };
    let body = match read_body(body, MAX_UNSAFE_BODY).await {
        Ok(body) => body,
        Err(resp) => return resp,
    };
    let echo = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "body_bytes": body.len(),
    });
    let mut resp = json(StatusCode::OK, &echo);
    if let Some(location) = location {
        resp.headers_mut().insert(header::LOCATION, location);
    }
    resp
}

fn stats_endpoint(state: &State, method: &Method) -> Response<ResponseBody> {
    match *method {
        Method::GET | Method::HEAD => json(StatusCode::OK, &state.stats.to_json()),
        Method::DELETE => {
            state.stats.reset();
            json(StatusCode::OK, &state.stats.to_json())
        }
        _ => method_not_allowed(ALLOW_STATS),
    }
}

async fn fault_endpoint<B>(state: &State, req: Request<B>) -> Response<ResponseBody>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let method = req.method().clone();
    match method {
        Method::GET | Method::HEAD => {}
        Method::PUT | Method::POST => {
            let body = match read_body(req.into_body(), MAX_FAULT_BODY).await {
                Ok(body) => body,
                Err(resp) => return resp,
            };
            let fault = if body.iter().all(u8::is_ascii_whitespace) {
                Ok(Fault::default())
            } else {
                Fault::from_json(&body)
            };
            match fault {
                Ok(fault) => {
                    tracing::info!(?fault, "fault injection set");
                    state.faults.set(fault);
                }
                Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
            }
        }
        Method::DELETE => {
            tracing::info!("fault injection cleared");
            state.faults.set(Fault::default());
        }
        _ => return method_not_allowed(ALLOW_FAULT),
    }
    let current = serde_json::to_value(state.faults.current()).unwrap_or_default();
    json(StatusCode::OK, &current)
}

/// Reads a request body of at most `limit` bytes; the error is the response
/// to send instead.
async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, Response<ResponseBody>>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body above {limit} bytes\n"),
        )),
        Err(e) => Err(text(
            StatusCode::BAD_REQUEST,
            format!("cannot read request body: {e}\n"),
        )),
    }
}

/// Makes the body fail after `limit` bytes when it declares more.
fn truncate_response(resp: Response<ResponseBody>, limit: u64) -> Response<ResponseBody> {
    let declared = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(len) if len > limit && !is_bodyless(resp.status()) => {
            resp.map(|b| body::truncate(b, limit))
        }
        _ => resp,
    }
}

/// A short `text/plain` response with an explicit Content-Length.
fn text(status: StatusCode, message: String) -> Response<ResponseBody> {
    with_body(status, "text/plain; charset=utf-8", Bytes::from(message))
}

/// A JSON response that caches must not store.
fn json(status: StatusCode, value: &serde_json::Value) -> Response<ResponseBody> {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    bytes.push(b'\n');
    let mut resp = with_body(status, "application/json", Bytes::from(bytes));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn with_body(
    status: StatusCode,
    content_type: &'static str,
    data: Bytes,
) -> Response<ResponseBody> {
    let bodyless = is_bodyless(status);
    let len = data.len();
    let mut resp = Response::new(if bodyless {
        body::empty()
    } else {
        body::full(data)
    });
    *resp.status_mut() = status;
    if !bodyless {
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    resp
}

fn not_found() -> Response<ResponseBody> {
    text(StatusCode::NOT_FOUND, "not found\n".into())
}

fn method_not_allowed(allow: &'static str) -> Response<ResponseBody> {
    let mut resp = text(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed\n".into(),
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}
