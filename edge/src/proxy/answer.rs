//! The handler's answer: a response, and for a stored object served as it
//! is, the object whose stored fields come first. The edge's HTTP/1.1 path
//! writes those fields straight from their stored bytes; hyper gets them
//! merged into the response's map.

use std::sync::Arc;

use http::{HeaderMap, Response};

use crate::body::EdgeBody;
use crate::object::CachedObject;

/// A response ready to send.
pub struct Answer {
    /// Status, body and the fields the edge adds. When `stored` is set,
    /// these fields follow the stored ones and none has a stored
    /// counterpart.
    pub response: Response<EdgeBody>,
    /// The object whose stored fields lead the header section.
    pub stored: Option<Arc<CachedObject>>,
}

impl Answer {
    /// The fields the edge added (all of them when nothing is stored).
    pub fn headers(&self) -> &HeaderMap {
        self.response.headers()
    }

    /// Adds a field of the edge's own.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        self.response.headers_mut()
    }

    /// One response with every field in its map, for hyper.
    pub fn into_response(self) -> Response<EdgeBody> {
        let Some(object) = self.stored else {
            return self.response;
        };
        let (mut parts, body) = self.response.into_parts();
        let added = std::mem::take(&mut parts.headers);
        let mut headers = object.headers.to_map(added.len());
        headers.extend(added);
        parts.headers = headers;
        Response::from_parts(parts, body)
    }
}

impl From<Response<EdgeBody>> for Answer {
    fn from(response: Response<EdgeBody>) -> Answer {
        Answer {
            response,
            stored: None,
        }
    }
}
