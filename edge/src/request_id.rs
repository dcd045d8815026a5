//! The request id: the client's `X-Request-Id` when it sent a usable one,
//! else a new UUID v7. A new id stays sixteen bytes until it is written:
//! a hit formats it straight into the answer's head, and only a request
//! that goes to the origin (or to hyper) makes a header value of it.

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue};

/// `X-Request-Id`, echoed on every answer and forwarded to the origin.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client-sent id kept; a longer one is replaced.
const MAX_GIVEN_LEN: usize = 128;

/// One request's id.
#[derive(Clone, Debug)]
pub enum RequestId {
    /// The client's own, as it sent it.
    Given(HeaderValue),
    /// Made here.
    Made(uuid::Uuid),
}

impl RequestId {
    /// The id of a request with these fields: the client's when it is
    /// non-empty and at most 128 bytes, else a new one.
    pub fn of(headers: &HeaderMap) -> RequestId {
        RequestId::from_field(headers.get(X_REQUEST_ID))
    }

    /// The id of a request whose `X-Request-Id` is `given`.
    pub fn from_field(given: Option<&HeaderValue>) -> RequestId {
        match given.filter(|v| !v.is_empty() && v.len() <= MAX_GIVEN_LEN) {
            Some(given) => RequestId::Given(given.clone()),
            None => RequestId::Made(uuid::Uuid::now_v7()),
        }
    }

    /// Calls `f` with the id's text, formatted on the stack for a made id.
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            RequestId::Given(value) => f(value.as_bytes()),
            RequestId::Made(id) => {
                let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
                f(id.hyphenated().encode_lower(&mut text).as_bytes())
            }
        }
    }

    /// The id as a header value, for requests and answers built as maps.
    pub fn to_header_value(&self) -> HeaderValue {
        match self {
            RequestId::Given(value) => value.clone(),
            RequestId::Made(id) => {
                let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
                // A hyphenated UUID is visible ASCII: always a valid value.
                HeaderValue::from_str(id.hyphenated().encode_lower(&mut text))
                    .unwrap_or_else(|_| HeaderValue::from_static("-"))
            }
        }
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestId::Given(value) => f.write_str(value.to_str().unwrap_or("-")),
            RequestId::Made(id) => fmt::Display::fmt(&id.hyphenated(), f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(id: &RequestId) -> String {
        id.with_bytes(|b| String::from_utf8(b.to_vec()).expect("ascii"))
    }

    #[test]
    fn a_usable_client_id_is_kept() {
        let mut headers = HeaderMap::new();
        headers.insert(X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        let id = RequestId::of(&headers);
        assert_eq!(text(&id), "abc-123");
        assert_eq!(id.to_header_value(), "abc-123");
        assert_eq!(id.to_string(), "abc-123");
    }

    #[test]
    fn an_empty_or_overlong_client_id_is_replaced_by_a_v7() {
        for given in [String::new(), "x".repeat(MAX_GIVEN_LEN + 1)] {
            let mut headers = HeaderMap::new();
            headers.insert(X_REQUEST_ID, HeaderValue::from_str(&given).expect("value"));
            let id = RequestId::of(&headers);
            let parsed = uuid::Uuid::parse_str(&text(&id)).expect("a uuid");
            assert_eq!(parsed.get_version_num(), 7);
        }
    }

    #[test]
    fn every_form_of_a_made_id_is_the_same_text() {
        let id = RequestId::of(&HeaderMap::new());
        let bytes = text(&id);
        assert_eq!(bytes.len(), 36);
        assert_eq!(id.to_header_value(), bytes.as_str());
        assert_eq!(id.to_string(), bytes);
        assert_ne!(
            bytes,
            text(&RequestId::of(&HeaderMap::new())),
            "ids are unique"
        );
    }
}
