//! Pseudo-random inputs must never make a parser panic.
//! Compiled only under #[cfg(test)] (declared so in the parent module).

use std::time::{Duration, UNIX_EPOCH};

use http::header::{
    AGE, CACHE_CONTROL, CONTENT_LOCATION, DATE, ETAG, EXPIRES, IF_MATCH, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, IF_RANGE, LAST_MODIFIED, LOCATION, PRAGMA, RANGE, VARY,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};

use super::cache_control::CacheControl;
use super::directives::{Directives, default_targets, request_cache_control};
use super::storable::StoreOptions;
use super::{cache_status, conditional, freshness, invalidate, range, storable, update, vary};

const ALPHABET: &[&[u8]] = &[
    b"\"",
    b"\\",
    b",",
    b"=",
    b" ",
    b"\t",
    b"W/",
    b"-",
    b"*",
    b"/",
    b"?",
    b"#",
    b":",
    b"..",
    b"0",
    b"9",
    b"99999999999999999999",
    b"max-age",
    b"s-maxage",
    b"no-cache",
    b"private",
    b"bytes",
    b"http://",
    b"//",
    b"[::1]",
    b"@",
    b"x",
    b"\xff",
    b"Mon, 01 Jan 2024 00:00:00 GMT",
];

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as usize
    }

    fn value(&mut self) -> HeaderValue {
        let mut v = Vec::new();
        for _ in 0..self.next() % 12 {
            v.extend_from_slice(ALPHABET[self.next() % ALPHABET.len()]);
        }
        HeaderValue::from_bytes(&v).unwrap()
    }
}

#[test]
fn parsers_never_panic() {
    let mut rng = Lcg(42);
    let names = [
        AGE,
        CACHE_CONTROL,
        CONTENT_LOCATION,
        DATE,
        ETAG,
        EXPIRES,
        IF_MATCH,
        IF_MODIFIED_SINCE,
        IF_NONE_MATCH,
        IF_RANGE,
        LAST_MODIFIED,
        LOCATION,
        PRAGMA,
        RANGE,
        VARY,
    ];
    let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let uri: Uri = "/a/b?c".parse().unwrap();
    for _ in 0..3000 {
        let mut h = HeaderMap::new();
        for n in &names {
            if rng.next() % 2 == 0 {
                h.append(n.clone(), rng.value());
            }
        }
        let v = rng.value();
        let _ = CacheControl::parse(&String::from_utf8_lossy(v.as_bytes()));
        let d = Directives::from_response(&h, &default_targets());
        let req_cc = request_cache_control(&h);
        let opts = StoreOptions::default();
        let status = StatusCode::OK;
        let _ = storable::check_storable(&Method::GET, &h, req_cc.as_ref(), status, &h, &d, &opts);
        let life = freshness::freshness_lifetime(status, &h, &d, t, &opts);
        let age = freshness::corrected_initial_age(&h, t, t);
        let _ = freshness::request_allows(req_cc.as_ref(), age, life);
        let spec = vary::VarySpec::from_headers(&h);
        let _ = spec.secondary_key(&h);
        let _ = vary::normalize_accept_encoding(&String::from_utf8_lossy(v.as_bytes()));
        let _ = conditional::evaluate(&Method::GET, &h, &h);
        let _ = update::validators_match(&h, &h);
        let _ = invalidate::invalidation_targets(&uri, "x", status, &h);
        let _ = range::evaluate_range(&h, (rng.next() % 3) as u64, &h);
        let _ = cache_status::append(Some(&v), "edge");
        let mut copy = h.clone();
        update::freshen_from_304(&mut copy, &h);
        update::strip_hop_by_hop(&mut copy);
    }
}
