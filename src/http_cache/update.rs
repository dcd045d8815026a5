//! Updating stored responses from 304s (RFC 9111 §3.2, §4.3.4) and
//! hop-by-hop field removal (RFC 9110 §7.6.1).

use http::header::{
    CONNECTION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, ETAG, LAST_MODIFIED,
    PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, HeaderName};

use super::conditional::{EntityTag, stored_etag};
use super::util::{list_elements, parse_date};

/// Hop-by-hop fields that are never stored nor forwarded.
const HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
];

/// Fields a 304 must not overwrite: they describe the stored body.
const BODY_FIELDS: [HeaderName; 3] = [CONTENT_LENGTH, CONTENT_ENCODING, CONTENT_RANGE];

/// `name` is listed by one of the Connection lines of `headers`.
fn connection_lists(headers: &HeaderMap, name: &HeaderName) -> bool {
    list_elements(headers, &CONNECTION).any(|e| e.eq_ignore_ascii_case(name.as_str().as_bytes()))
}

/// Removes Connection and the fields it names, Keep-Alive,
/// Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade,
/// Proxy-Authenticate and Proxy-Authorization.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(CONNECTION) {
        let listed: Vec<HeaderName> = list_elements(headers, &CONNECTION)
            .filter_map(|e| HeaderName::from_bytes(e).ok())
            .collect();
        for name in listed {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Replaces the stored fields with those of a 304 (all lines of each field
/// it carries), except Content-Length, Content-Encoding, Content-Range and
/// hop-by-hop fields (including those its Connection names). Fields the 304
/// lacks are kept.
pub fn freshen_from_304(stored: &mut HeaderMap, not_modified: &HeaderMap) {
    for name in not_modified.keys() {
        if BODY_FIELDS.contains(name)
            || HOP_BY_HOP.contains(name)
            || connection_lists(not_modified, name)
        {
            continue;
        }
        let mut values = not_modified.get_all(name).iter();
        let Some(first) = values.next() else {
            continue;
        };
        stored.insert(name.clone(), first.clone());
        for v in values {
            stored.append(name.clone(), v.clone());
        }
    }
}

/// The 304 selects the stored response (RFC 9111 §4.3.4): its ETag matches
/// the stored one (strong comparison for a strong tag, weak comparison for
/// a weak one, as a single stored response is the most recent); without an
/// ETag, its Last-Modified equals the stored one; without any validator,
/// the stored response has none either.
pub fn validators_match(stored: &HeaderMap, not_modified: &HeaderMap) -> bool {
    if let Some(v) = not_modified.get(ETAG) {
        let (Some(new), Some(old)) = (EntityTag::parse(v.as_bytes()), stored_etag(stored)) else {
            return false;
        };
        return if new.weak {
            new.weak_eq(&old)
        } else {
            new.strong_eq(&old)
        };
    }
    if let Some(new) = not_modified.get(LAST_MODIFIED) {
        let Some(old) = stored.get(LAST_MODIFIED) else {
            return false;
        };
        return match (parse_date(new.as_bytes()), parse_date(old.as_bytes())) {
            (Some(a), Some(b)) => a == b,
            _ => new == old,
        };
    }
    !stored.contains_key(ETAG) && !stored.contains_key(LAST_MODIFIED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn get<'a>(h: &'a HeaderMap, k: &str) -> Vec<&'a str> {
        h.get_all(k).iter().map(|v| v.to_str().unwrap()).collect()
    }

    #[test]
    fn hop_by_hop() {
        let mut h = map(&[
            ("connection", "close, X-Secret"),
            ("connection", "x-other"),
            ("x-secret", "1"),
            ("x-other", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x-t"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-authenticate", "Basic"),
            ("proxy-authorization", "Basic x"),
            ("content-type", "text/plain"),
            ("cache-control", "max-age=5"),
        ]);
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["content-type", "cache-control"]);
        let mut empty = HeaderMap::new();
        strip_hop_by_hop(&mut empty);
        assert!(empty.is_empty());
    }

    #[test]
    fn freshen_keeps_body_fields() {
        let mut st = map(&[
            ("content-length", "1234"),
            ("content-encoding", "gzip"),
            ("content-type", "text/html"),
            ("cache-control", "max-age=60"),
            ("date", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ("etag", "\"v1\""),
            ("x-kept", "yes"),
        ]);
        let nm = map(&[
            ("content-length", "0"),
            ("content-encoding", "identity"),
            ("transfer-encoding", "chunked"),
            ("content-range", "bytes */10"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=1"),
            ("cache-control", "max-age=600"),
            ("cache-control", "public"),
            ("date", "Tue, 02 Jan 2024 00:00:00 GMT"),
            ("etag", "\"v1\""),
            ("x-new", "1"),
        ]);
        freshen_from_304(&mut st, &nm);
        assert_eq!(get(&st, "content-length"), vec!["1234"]);
        assert_eq!(get(&st, "content-encoding"), vec!["gzip"]);
        assert_eq!(get(&st, "content-type"), vec!["text/html"]);
        assert_eq!(get(&st, "cache-control"), vec!["max-age=600", "public"]);
        assert_eq!(get(&st, "date"), vec!["Tue, 02 Jan 2024 00:00:00 GMT"]);
        assert_eq!(get(&st, "x-kept"), vec!["yes"]);
        assert_eq!(get(&st, "x-new"), vec!["1"]);
        for absent in [
            "transfer-encoding",
            "content-range",
            "connection",
            "x-hop",
            "keep-alive",
        ] {
            assert!(!st.contains_key(absent), "{absent}");
        }
    }

    #[test]
    fn validator_selection() {
        let strong = map(&[
            ("etag", "\"v1\""),
            ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
        ]);
        let weak = map(&[("etag", "W/\"v1\"")]);
        assert!(validators_match(&strong, &map(&[("etag", "\"v1\"")])));
        assert!(!validators_match(&strong, &map(&[("etag", "\"v2\"")])));
        assert!(!validators_match(&weak, &map(&[("etag", "\"v1\"")])));
        assert!(validators_match(&weak, &map(&[("etag", "W/\"v1\"")])));
        assert!(validators_match(&strong, &map(&[("etag", "W/\"v1\"")])));
        assert!(!validators_match(&map(&[]), &map(&[("etag", "\"v1\"")])));
        assert!(!validators_match(
            &strong,
            &map(&[("etag", "\"v1\", \"v2\"")])
        ));
        // Last-Modified when the 304 has no ETag.
        let lm = |v: &str| map(&[("last-modified", v)]);
        assert!(validators_match(
            &strong,
            &lm("Monday, 01-Jan-24 00:00:00 GMT")
        ));
        assert!(!validators_match(
            &strong,
            &lm("Tue, 02 Jan 2024 00:00:00 GMT")
        ));
        assert!(!validators_match(
            &weak,
            &lm("Mon, 01 Jan 2024 00:00:00 GMT")
        ));
        assert!(validators_match(&lm("junk"), &lm("junk")));
        // No validators on either side.
        assert!(validators_match(
            &map(&[("x", "1")]),
            &map(&[("date", "x")])
        ));
        assert!(!validators_match(&strong, &map(&[])));
    }
}
