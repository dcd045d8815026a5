//! A selected representation (a file or generated content) and how a GET or
//! HEAD for it is answered: 200, 206, 304, 412 or 416.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};

use crate::body::{self, ResponseBody};
use crate::conditional::{self, Precondition, Validators};
use crate::range::{RangeOutcome, parse_range};

/// Where the bytes of a representation come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Held in memory.
    Bytes(Bytes),
    /// Streamed from a file.
    File(PathBuf),
    /// A unit repeated endlessly, cut to the representation's length.
    Pattern(Arc<[u8]>),
}

impl Source {
    /// A body with `len` bytes from offset `start`.
    pub fn body(&self, start: u64, len: u64) -> ResponseBody {
        match self {
            Source::Bytes(bytes) => {
                let from = usize::try_from(start)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let to = usize::try_from(start.saturating_add(len))
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                body::full(bytes.slice(from..to))
            }
            Source::File(path) => body::file_range(path.clone(), start, len),
            Source::Pattern(unit) => body::pattern_range(Arc::clone(unit), start, len),
        }
    }
}

/// Everything needed to answer a GET or HEAD for one resource.
#[derive(Debug, Clone)]
pub struct Representation {
    /// Status of a full answer; conditional and range handling only apply
    /// when it is 200.
    pub status: StatusCode,
    /// Length in bytes.
    pub len: u64,
    /// ETag and Last-Modified.
    pub validators: Validators,
    /// Headers sent with it: Content-Type, Cache-Control, Vary, ...
    pub headers: HeaderMap,
    /// The bytes.
    pub source: Source,
}

/// Statuses whose responses never carry a body.
pub fn is_bodyless(status: StatusCode) -> bool {
    status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

/// Answers a GET or HEAD request for `rep`, honouring preconditions and a
/// single byte range.
pub fn respond(method: &Method, req: &HeaderMap, rep: Representation) -> Response<ResponseBody> {
    let Representation {
        status,
        len,
        validators,
        mut headers,
        source,
    } = rep;
    if let Some(etag) = validators
        .etag
        .as_deref()
        .and_then(|e| HeaderValue::from_str(e).ok())
    {
        headers.insert(header::ETAG, etag);
    }
    if let Some(lm) = validators.last_modified {
        let value = HeaderValue::from_str(&conditional::fmt_http_date(lm))
            .expect("an HTTP date is a valid header value");
        headers.insert(header::LAST_MODIFIED, value);
    }
    let is_head = method == Method::HEAD;

    if is_bodyless(status) {
        return build(status, headers, body::empty());
    }
    if status != StatusCode::OK {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        let body = if is_head {
            body::empty()
        } else {
            source.body(0, len)
        };
        return build(status, headers, body);
    }

    match conditional::evaluate(req, &validators) {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            headers.remove(header::CONTENT_TYPE);
            headers.remove(header::SET_COOKIE);
            return build(StatusCode::NOT_MODIFIED, headers, body::empty());
        }
        Precondition::Failed => {
            let mut failed = HeaderMap::new();
            failed.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
            return build(StatusCode::PRECONDITION_FAILED, failed, body::empty());
        }
    }

    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let range = req
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| method == Method::GET && conditional::if_range_passes(req, &validators))
        .map_or(RangeOutcome::Full, |v| parse_range(v, len));

    match range {
        RangeOutcome::Full => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            let body = if is_head {
                body::empty()
            } else {
                source.body(0, len)
            };
            build(StatusCode::OK, headers, body)
        }
        RangeOutcome::Partial { start, end } => {
            let part = end - start + 1;
            let content_range = format!("bytes {start}-{end}/{len}");
            headers.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&content_range).expect("digits are a valid header value"),
            );
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(part));
            build(
                StatusCode::PARTIAL_CONTENT,
                headers,
                source.body(start, part),
            )
        }
        RangeOutcome::Unsatisfiable => {
            let content_range = format!("bytes */{len}");
            headers.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&content_range).expect("digits are a valid header value"),
            );
            headers.remove(header::CONTENT_TYPE);
            headers.remove(header::SET_COOKIE);
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
            build(StatusCode::RANGE_NOT_SATISFIABLE, headers, body::empty())
        }
    }
}

fn build(status: StatusCode, headers: HeaderMap, body: ResponseBody) -> Response<ResponseBody> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}
