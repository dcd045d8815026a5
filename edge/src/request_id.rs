//! The request id: the client's `X-Request-Id` when it sent a usable one,
//! else a new UUID v7. A new id stays sixteen bytes until it is written:
//! a hit formats it straight into the answer's head, and only a request
//! that goes to the origin (or to hyper) makes a header value of it.
//!
//! New ids take their 74 random bits from a per-thread wyrand generator
//! seeded from the operating system: `Uuid::now_v7` (a shared monotonic
//! context and a ChaCha generator) cost 420 instructions per request, a
//! thirtieth of a whole cache hit. An id has to be unique, not secret.

use std::cell::Cell;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderName, HeaderValue};

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
    /// The id of a request whose `X-Request-Id` is `given`: the client's
    /// when it is non-empty and at most 128 bytes, else a new one.
    pub fn from_field(given: Option<&[u8]>) -> RequestId {
        given
            .filter(|v| !v.is_empty() && v.len() <= MAX_GIVEN_LEN)
            .and_then(|v| HeaderValue::from_bytes(v).ok())
            .map_or_else(|| RequestId::Made(new_v7()), RequestId::Given)
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
            // A hyphenated UUID is visible ASCII: always a valid value.
            RequestId::Made(_) => self.with_bytes(|text| {
                HeaderValue::from_bytes(text).unwrap_or_else(|_| HeaderValue::from_static("-"))
            }),
        }
    }
}

thread_local! {
    /// This thread's generator state, seeded from the OS (through uuid's
    /// v4, which draws from a generator the OS seeds).
    static WYRAND: Cell<u64> = Cell::new(u64::from_le_bytes(
        uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap_or([0x5e; 8]),
    ));
}

/// The next 64 bits of this thread's wyrand sequence.
fn next_random() -> u64 {
    WYRAND.with(|state| {
        let s = state.get().wrapping_add(0xa076_1d64_78bd_642f);
        state.set(s);
        let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) ^ t) as u64
    })
}

/// A UUID v7 (RFC 9562 §5.7): Unix time in milliseconds, then random bits.
fn new_v7() -> uuid::Uuid {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&next_random().to_le_bytes());
    random[8..].copy_from_slice(&next_random().to_le_bytes()[..2]);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
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
    use http::HeaderMap;

    fn text(id: &RequestId) -> String {
        id.with_bytes(|b| String::from_utf8(b.to_vec()).expect("ascii"))
    }

    #[test]
    fn a_usable_client_id_is_kept() {
        let mut headers = HeaderMap::new();
        headers.insert(X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        let id = RequestId::from_field(headers.get(X_REQUEST_ID).map(|v| v.as_bytes()));
        assert_eq!(text(&id), "abc-123");
        assert_eq!(id.to_header_value(), "abc-123");
        assert_eq!(id.to_string(), "abc-123");
    }

    #[test]
    fn an_empty_or_overlong_client_id_is_replaced_by_a_v7() {
        for given in [String::new(), "x".repeat(MAX_GIVEN_LEN + 1)] {
            let mut headers = HeaderMap::new();
            headers.insert(X_REQUEST_ID, HeaderValue::from_str(&given).expect("value"));
            let id = RequestId::from_field(headers.get(X_REQUEST_ID).map(|v| v.as_bytes()));
            let parsed = uuid::Uuid::parse_str(&text(&id)).expect("a uuid");
            assert_eq!(parsed.get_version_num(), 7);
        }
    }

    #[test]
    fn made_ids_are_v7_with_the_current_time_and_all_distinct() {
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64;
        let ids: Vec<uuid::Uuid> = (0..10_000).map(|_| new_v7()).collect();
        let after = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64;
        let mut seen = std::collections::HashSet::new();
        for id in &ids {
            assert_eq!(id.get_version_num(), 7);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            let (secs, nanos) = id.get_timestamp().expect("v7 time").to_unix();
            let millis = secs * 1000 + u64::from(nanos) / 1_000_000;
            assert!(
                (before..=after).contains(&millis),
                "{millis} not in {before}..={after}"
            );
            assert!(seen.insert(*id), "duplicate id {id}");
        }
        let other_thread = std::thread::spawn(new_v7).join().expect("thread");
        assert!(!seen.contains(&other_thread));
    }

    #[test]
    fn every_form_of_a_made_id_is_the_same_text() {
        let id = RequestId::from_field(None);
        let bytes = text(&id);
        assert_eq!(bytes.len(), 36);
        assert_eq!(id.to_header_value(), bytes.as_str());
        assert_eq!(id.to_string(), bytes);
        assert_ne!(bytes, text(&RequestId::from_field(None)), "ids are unique");
    }
}
