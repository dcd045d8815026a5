//! The handler's answer: a response, and for a stored object served as it
//! is, the object whose stored fields come first and the edge's own fields
//! as plain values. The edge's HTTP/1.1 path writes both straight into the
//! head (no header map is built for such a hit); hyper gets them merged
//! into the response's map.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Response, header};

use super::{CACHE_STATUS, X_REQUEST_ID};
use crate::body::EdgeBody;
use crate::object::CachedObject;
use crate::request_id::RequestId;

/// A response ready to send.
pub struct Answer {
    /// Status, body and the fields the edge adds. When `stored` is set,
    /// these fields follow the stored ones and none has a stored
    /// counterpart.
    pub response: Response<EdgeBody>,
    /// The object whose stored fields lead the header section.
    pub stored: Option<Arc<CachedObject>>,
    /// For an answer served as stored: the edge's fields, written after
    /// the stored ones and those of `response`.
    pub edge: Option<EdgeFields>,
}

/// The fields the edge adds to an answer served as stored, kept as values
/// until the head is written.
pub struct EdgeFields {
    /// `Age`, seconds.
    pub age: u64,
    /// `Cache-Status` (RFC 9211), rendered: visible ASCII only.
    pub cache_status: String,
    /// `Via`.
    pub via: HeaderValue,
    /// `X-Request-Id`, set by the handler once the answer is made.
    pub request_id: Option<RequestId>,
    /// The answer's outcome for the metrics (an index into
    /// [`crate::metrics::CLASSES`]), known before `cache_status` was
    /// rendered.
    pub metrics_class: usize,
}

impl EdgeFields {
    /// Each field as its name and value bytes, in the order they are
    /// written: the one list both the HTTP/1.1 writer and the merge for
    /// hyper go by.
    pub fn each(&self, mut f: impl FnMut(&HeaderName, &[u8])) {
        f(
            &header::AGE,
            itoa::Buffer::new().format(self.age).as_bytes(),
        );
        f(&CACHE_STATUS, self.cache_status.as_bytes());
        f(&header::VIA, self.via.as_bytes());
        if let Some(id) = &self.request_id {
            id.with_bytes(|text| f(&X_REQUEST_ID, text));
        }
    }
}

impl Answer {
    /// Sets `X-Request-Id`, replacing any the response carried.
    pub fn set_request_id(&mut self, id: RequestId) {
        match &mut self.edge {
            Some(fields) => fields.request_id = Some(id),
            None => {
                self.response
                    .headers_mut()
                    .insert(X_REQUEST_ID, id.to_header_value());
            }
        }
    }

    /// The `Cache-Status` value the answer carries.
    pub fn cache_status(&self) -> Option<&[u8]> {
        match &self.edge {
            Some(fields) => Some(fields.cache_status.as_bytes()),
            None => self
                .response
                .headers()
                .get(CACHE_STATUS)
                .map(HeaderValue::as_bytes),
        }
    }

    /// The answer's outcome for the metrics (an index into
    /// [`crate::metrics::CLASSES`]).
    pub fn metrics_class(&self) -> usize {
        let status = self.response.status().as_u16();
        match &self.edge {
            Some(fields) => fields.metrics_class,
            None => crate::metrics::cache_class(status, self.cache_status()),
        }
    }

    /// One response with every field in its map, for hyper.
    pub fn into_response(self) -> Response<EdgeBody> {
        if self.stored.is_none() && self.edge.is_none() {
            return self.response;
        }
        let (mut parts, body) = self.response.into_parts();
        let added = std::mem::take(&mut parts.headers);
        let mut headers = match &self.stored {
            Some(object) => object.headers.to_map(added.len() + 4),
            None => HeaderMap::with_capacity(added.len() + 4),
        };
        headers.extend(added);
        if let Some(edge) = &self.edge {
            edge.each(|name, value| {
                if let Ok(v) = HeaderValue::from_bytes(value) {
                    headers.insert(name.clone(), v);
                }
            });
        }
        parts.headers = headers;
        Response::from_parts(parts, body)
    }
}

impl From<Response<EdgeBody>> for Answer {
    fn from(response: Response<EdgeBody>) -> Answer {
        Answer {
            response,
            stored: None,
            edge: None,
        }
    }
}
