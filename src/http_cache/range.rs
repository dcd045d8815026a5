//! Serving a single byte range from a complete stored body (RFC 9110 §14).

use std::time::Duration;

use http::HeaderMap;
use http::header::{DATE, IF_RANGE, LAST_MODIFIED, RANGE};

use super::conditional::{EntityTag, stored_etag};
use super::util::{header_date, parse_date, trim_ows};

/// How to answer a request that may carry Range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// Send the whole representation (200): no Range, an ignored Range, or
    /// a failed If-Range.
    Full,
    /// Send 206 with these bytes.
    Partial {
        /// First byte offset.
        start: u64,
        /// Last byte offset, inclusive.
        end_inclusive: u64,
    },
    /// Send 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Parses `1*DIGIT`, saturating on overflow.
fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// Parses a single `bytes=` range against a body of `len` bytes; `None`
/// means the Range field is to be ignored.
fn parse_range(value: &[u8], len: u64) -> Option<RangeAnswer> {
    let eq = value.iter().position(|b| *b == b'=')?;
    if !trim_ows(&value[..eq]).eq_ignore_ascii_case(b"bytes") {
        return None;
    }
    let mut specs = value[eq + 1..]
        .split(|b| *b == b',')
        .map(trim_ows)
        .filter(|s| !s.is_empty());
    let spec = specs.next()?;
    if specs.next().is_some() {
        return None;
    }
    let dash = spec.iter().position(|b| *b == b'-')?;
    let (first, last) = (trim_ows(&spec[..dash]), trim_ows(&spec[dash + 1..]));
    if first.is_empty() {
        let n = digits(last)?;
        if n == 0 || len == 0 {
            return Some(RangeAnswer::Unsatisfiable);
        }
        return Some(RangeAnswer::Partial {
            start: len - n.min(len),
            end_inclusive: len - 1,
        });
    }
    let start = digits(first)?;
    let end = if last.is_empty() {
        u64::MAX
    } else {
        digits(last)?
    };
    if end < start {
        return None;
    }
    if start >= len {
        return Some(RangeAnswer::Unsatisfiable);
    }
    Some(RangeAnswer::Partial {
        start,
        end_inclusive: end.min(len - 1),
    })
}

/// If-Range holds: a strong ETag equal to the stored strong ETag, or a date
/// equal to the stored Last-Modified when that is a strong validator (at
/// least one second before the stored Date).
fn if_range_matches(value: &[u8], stored: &HeaderMap) -> bool {
    let v = trim_ows(value);
    if v.starts_with(b"\"") || v.starts_with(b"W/") {
        return match (EntityTag::parse(v), stored_etag(stored)) {
            (Some(a), Some(b)) => a.strong_eq(&b),
            _ => false,
        };
    }
    let (Some(date), Some(lm), Some(served)) = (
        parse_date(v),
        header_date(stored, &LAST_MODIFIED),
        header_date(stored, &DATE),
    ) else {
        return false;
    };
    date == lm
        && served
            .duration_since(lm)
            .is_ok_and(|d| d >= Duration::from_secs(1))
}

/// Decides how to answer a GET (the caller ignores Range for other methods)
/// from a complete stored body of `len` bytes. Only one range is served;
/// several ranges, other units or invalid syntax give [`RangeAnswer::Full`],
/// as does an If-Range that does not match `stored`.
pub fn evaluate_range(req: &HeaderMap, len: u64, stored: &HeaderMap) -> RangeAnswer {
    let mut lines = req.get_all(RANGE).iter();
    let (Some(range), None) = (lines.next(), lines.next()) else {
        return RangeAnswer::Full;
    };
    let Some(answer) = parse_range(range.as_bytes(), len) else {
        return RangeAnswer::Full;
    };
    if let Some(ir) = req.get(IF_RANGE)
        && !if_range_matches(ir.as_bytes(), stored)
    {
        return RangeAnswer::Full;
    }
    answer
}

/// The Content-Range value of a 206: `bytes start-end/len`.
pub fn content_range(start: u64, end_inclusive: u64, len: u64) -> String {
    format!("bytes {start}-{end_inclusive}/{len}")
}

/// The Content-Range value of a 416: `bytes */len`.
pub fn unsatisfied_range(len: u64) -> String {
    format!("bytes */{len}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};
    use std::time::{SystemTime, UNIX_EPOCH};

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

    fn date(secs: u64) -> String {
        let t: SystemTime = UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs);
        httpdate::fmt_http_date(t)
    }

    fn range(v: &str, len: u64) -> RangeAnswer {
        evaluate_range(&map(&[("range", v)]), len, &HeaderMap::new())
    }

    fn part(start: u64, end_inclusive: u64) -> RangeAnswer {
        RangeAnswer::Partial {
            start,
            end_inclusive,
        }
    }

    #[test]
    fn forms() {
        assert_eq!(range("bytes=0-99", 1000), part(0, 99));
        assert_eq!(range("bytes=500-", 1000), part(500, 999));
        assert_eq!(range("bytes=-100", 1000), part(900, 999));
        assert_eq!(range("bytes=-5000", 1000), part(0, 999));
        assert_eq!(range("bytes=900-5000", 1000), part(900, 999));
        assert_eq!(range("bytes=0-0", 1), part(0, 0));
        assert_eq!(range(" Bytes = 1 - 2 , ", 10), part(1, 2));
        assert_eq!(range("bytes=0-99999999999999999999999", 10), part(0, 9));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(range("bytes=1000-", 1000), RangeAnswer::Unsatisfiable);
        assert_eq!(range("bytes=1000-2000", 1000), RangeAnswer::Unsatisfiable);
        assert_eq!(range("bytes=-0", 1000), RangeAnswer::Unsatisfiable);
        assert_eq!(range("bytes=-10", 0), RangeAnswer::Unsatisfiable);
        assert_eq!(range("bytes=0-", 0), RangeAnswer::Unsatisfiable);
    }

    #[test]
    fn ignored() {
        assert_eq!(
            evaluate_range(&HeaderMap::new(), 10, &HeaderMap::new()),
            RangeAnswer::Full
        );
        for v in [
            "bytes=0-1,5-6",
            "bytes=5-1",
            "items=0-1",
            "bytes=a-b",
            "bytes=-",
            "bytes=",
            "bytes 0-1",
            "bytes=1",
            "bytes=--1",
        ] {
            assert_eq!(range(v, 10), RangeAnswer::Full, "{v}");
        }
        let two = map(&[("range", "bytes=0-1"), ("range", "bytes=2-3")]);
        assert_eq!(
            evaluate_range(&two, 10, &HeaderMap::new()),
            RangeAnswer::Full
        );
    }

    #[test]
    fn if_range_etag() {
        let stored = map(&[("etag", "\"v1\"")]);
        let eval = |ir: &str| {
            evaluate_range(
                &map(&[("range", "bytes=0-1"), ("if-range", ir)]),
                10,
                &stored,
            )
        };
        assert_eq!(eval("\"v1\""), part(0, 1));
        assert_eq!(eval("\"v2\""), RangeAnswer::Full);
        assert_eq!(eval("W/\"v1\""), RangeAnswer::Full);
        let weak = map(&[("etag", "W/\"v1\"")]);
        let req = map(&[("range", "bytes=0-1"), ("if-range", "\"v1\"")]);
        assert_eq!(evaluate_range(&req, 10, &weak), RangeAnswer::Full);
        // A failed If-Range also hides an unsatisfiable range.
        let req = map(&[("range", "bytes=50-"), ("if-range", "\"v2\"")]);
        assert_eq!(evaluate_range(&req, 10, &stored), RangeAnswer::Full);
    }

    #[test]
    fn if_range_date() {
        let (lm, served) = (date(0), date(100));
        let stored = map(&[("last-modified", &lm), ("date", &served)]);
        let req = |ir: &str| map(&[("range", "bytes=0-1"), ("if-range", ir)]);
        assert_eq!(evaluate_range(&req(&lm), 10, &stored), part(0, 1));
        assert_eq!(
            evaluate_range(&req(&date(1)), 10, &stored),
            RangeAnswer::Full
        );
        assert_eq!(
            evaluate_range(&req("garbage"), 10, &stored),
            RangeAnswer::Full
        );
        // Weak Last-Modified (same second as Date) or no Date.
        let weak = map(&[("last-modified", &lm), ("date", &lm)]);
        assert_eq!(evaluate_range(&req(&lm), 10, &weak), RangeAnswer::Full);
        let no_date = map(&[("last-modified", &lm)]);
        assert_eq!(evaluate_range(&req(&lm), 10, &no_date), RangeAnswer::Full);
    }

    #[test]
    fn header_values() {
        assert_eq!(content_range(0, 99, 1000), "bytes 0-99/1000");
        assert_eq!(unsatisfied_range(1000), "bytes */1000");
    }
}
