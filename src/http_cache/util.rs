//! Small parsing helpers shared by the HTTP cache modules.

use std::time::SystemTime;

use http::{HeaderMap, HeaderName};

/// The largest delta-seconds value a cache must handle; larger values are
/// clamped to it (RFC 9111 §1.2.2).
pub const DELTA_SECONDS_MAX: u64 = 2_147_483_648;

/// Parses delta-seconds (`1*DIGIT`), clamping overflow to
/// [`DELTA_SECONDS_MAX`]. Returns `None` for an empty or non-digit value.
pub fn parse_delta_seconds(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in value {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.saturating_mul(10).saturating_add(u64::from(b - b'0'));
    }
    Some(n.min(DELTA_SECONDS_MAX))
}

/// Trims optional whitespace (SP / HTAB) from both ends.
pub fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| *b != b' ' && *b != b'\t')
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(start, |p| p + 1);
    &s[start..end]
}

/// Parses an HTTP-date from raw bytes.
pub fn parse_date(value: &[u8]) -> Option<SystemTime> {
    let s = std::str::from_utf8(value).ok()?;
    httpdate::parse_http_date(s.trim()).ok()
}

/// The first line of `name` parsed as an HTTP-date.
pub fn header_date(headers: &HeaderMap, name: &HeaderName) -> Option<SystemTime> {
    headers.get(name).and_then(|v| parse_date(v.as_bytes()))
}

/// Iterates over the comma-separated, OWS-trimmed, non-empty elements of all
/// lines of a list-valued field (no quoted-string awareness).
pub fn list_elements<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .get_all(name)
        .into_iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_seconds() {
        assert_eq!(parse_delta_seconds(b"0"), Some(0));
        assert_eq!(parse_delta_seconds(b"60"), Some(60));
        assert_eq!(parse_delta_seconds(b"2147483647"), Some(2_147_483_647));
        assert_eq!(parse_delta_seconds(b"2147483649"), Some(DELTA_SECONDS_MAX));
        assert_eq!(
            parse_delta_seconds(b"99999999999999999999999999"),
            Some(DELTA_SECONDS_MAX)
        );
        assert_eq!(parse_delta_seconds(b""), None);
        assert_eq!(parse_delta_seconds(b"-1"), None);
        assert_eq!(parse_delta_seconds(b"1.5"), None);
        assert_eq!(parse_delta_seconds(b"abc"), None);
    }

    #[test]
    fn trims() {
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(trim_ows(b""), b"");
    }

    #[test]
    fn list() {
        let mut h = HeaderMap::new();
        h.append(http::header::VARY, "a, ,b".parse().unwrap());
        h.append(http::header::VARY, " c ".parse().unwrap());
        let v: Vec<&[u8]> = list_elements(&h, &http::header::VARY).collect();
        assert_eq!(v, vec![&b"a"[..], b"b", b"c"]);
    }
}
