//! What the handler knows about a request: its head as received, the
//! fields every request's handling reads (found in one pass), and the
//! context the phases share once it is normalised.

use std::net::SocketAddr;

use edgecache::cache_key::CacheKey;
use edgecache::config::Route;
use edgecache::http_cache::cache_control::CacheControl;
use http::{Method, Uri};

use crate::request_fields::RequestFields;
use crate::request_id::RequestId;

/// What the handler knows about a request once it is normalised.
pub struct RequestCtx<'s> {
    /// The request id (UUID v7), from `X-Request-Id` or new.
    pub id: RequestId,
    /// The client's address.
    pub client: SocketAddr,
    /// The method.
    pub method: Method,
    /// The request target.
    pub uri: &'s Uri,
    /// The request's header fields.
    pub fields: &'s RequestFields<'s>,
    /// The primary cache key.
    pub key: CacheKey,
    /// The route whose policy applies.
    pub route: &'s Route,
    /// The request's Cache-Control.
    pub req_cc: Option<CacheControl>,
    /// The request carries `Pragma: no-cache`.
    pub pragma_no_cache: bool,
    /// The request is conditional or asks for a range: a stored object
    /// may not answer it as stored.
    pub shaping: bool,
}

/// A request's head as the handler takes it.
pub struct RequestHead<'p> {
    /// The method.
    pub method: Method,
    /// The request target.
    pub uri: Uri,
    /// The header fields.
    pub fields: RequestFields<'p>,
}

impl RequestHead<'static> {
    /// The head of a request hyper read.
    pub fn from_parts(parts: http::request::Parts) -> RequestHead<'static> {
        RequestHead {
            method: parts.method,
            uri: parts.uri,
            fields: RequestFields::from_map(parts.headers),
        }
    }
}

/// The request fields every request's handling reads, found in one pass
/// over the fields: a request carries a few, and comparing each name with
/// a handful is cheaper than looking each name up.
#[derive(Default)]
pub(super) struct Notable<'h> {
    /// The first X-Request-Id.
    pub(super) request_id: Option<&'h [u8]>,
    /// The first Host.
    pub(super) host: Option<&'h [u8]>,
    pub(super) cache_control: bool,
    pub(super) pragma_no_cache: bool,
    /// A conditional or Range field.
    pub(super) shaping: bool,
}

/// The fields that make an answer differ from the stored one (they read
/// the stored validators and may change the status).
const SHAPING: [&[u8]; 5] = [
    b"if-match",
    b"if-none-match",
    b"if-modified-since",
    b"if-unmodified-since",
    b"range",
];

impl Notable<'_> {
    pub(super) fn scan<'h>(fields: &'h RequestFields<'_>) -> Notable<'h> {
        let mut notable = Notable::default();
        for (name, value) in fields.iter() {
            if name.eq_ignore_ascii_case(b"host") {
                notable.host = notable.host.or(Some(value));
            } else if name.eq_ignore_ascii_case(b"cache-control") {
                notable.cache_control = true;
            } else if name.eq_ignore_ascii_case(b"pragma") {
                notable.pragma_no_cache |= value.eq_ignore_ascii_case(b"no-cache");
            } else if name.eq_ignore_ascii_case(b"x-request-id") {
                notable.request_id = notable.request_id.or(Some(value));
            } else if SHAPING.iter().any(|s| name.eq_ignore_ascii_case(s)) {
                notable.shaping = true;
            }
        }
        notable
    }
}

impl RequestCtx<'_> {
    /// `path?query` as received (`/` for an authority-only target).
    pub fn path_and_query(&self) -> &str {
        self.uri.path_and_query().map_or("/", |pq| pq.as_str())
    }
}

/// A field value as text when it is ASCII. Field values hold no control
/// bytes but tab (httparse and `HeaderValue` refuse them), so this is
/// `HeaderValue::to_str`'s visible ASCII.
pub(super) fn ascii_text(value: &[u8]) -> Option<&str> {
    std::str::from_utf8(value)
        .ok()
        .filter(|text| text.is_ascii())
}
