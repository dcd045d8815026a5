//! Vary (RFC 9111 §4.1): which request fields select a stored variant.

use std::fmt::Write as _;

use http::header::{ACCEPT_ENCODING, VARY};
use http::{HeaderMap, HeaderName};

use super::util::{list_elements, trim_ows};

/// The request fields a response varies on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarySpec {
    /// No Vary: one variant serves every request.
    None,
    /// `Vary: *`: no stored response can be reused without revalidation.
    Any,
    /// The listed fields, lowercased, deduplicated and sorted.
    Fields(Vec<HeaderName>),
}

/// `Vary` contains the member `*` (on any line).
pub fn has_star(resp: &HeaderMap) -> bool {
    list_elements(resp, &VARY).any(|e| e == b"*")
}

impl VarySpec {
    /// Reads a response's Vary lines. Names that are not valid field names
    /// are ignored (no request can carry them).
    pub fn from_headers(resp: &HeaderMap) -> VarySpec {
        if !resp.contains_key(VARY) {
            return VarySpec::None;
        }
        let mut names = Vec::new();
        for e in list_elements(resp, &VARY) {
            if e == b"*" {
                return VarySpec::Any;
            }
            if let Ok(n) = HeaderName::from_bytes(e) {
                names.push(n);
            }
        }
        if names.is_empty() {
            return VarySpec::None;
        }
        names.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        names.dedup();
        VarySpec::Fields(names)
    }

    /// The secondary cache key a request selects: `None` for [`VarySpec::Any`]
    /// (never matches), `Some("")` for [`VarySpec::None`], otherwise one
    /// `name:value` line per field (values of all lines, list members
    /// whitespace-trimmed and joined with ", ") and `name!` for a field the
    /// request lacks, so a missing field differs from an empty one. Bytes
    /// outside visible ASCII, and `%`, are percent-encoded.
    pub fn secondary_key(&self, req: &HeaderMap) -> Option<String> {
        let fields = match self {
            VarySpec::Any => return None,
            VarySpec::None => return Some(String::new()),
            VarySpec::Fields(f) => f,
        };
        let mut key = String::with_capacity(fields.len() * 32);
        for (i, name) in fields.iter().enumerate() {
            if i > 0 {
                key.push('\n');
            }
            key.push_str(name.as_str());
            if !req.contains_key(name) {
                key.push('!');
                continue;
            }
            key.push(':');
            let mut first = true;
            for v in req.get_all(name) {
                for member in v.as_bytes().split(|b| *b == b',').map(trim_ows) {
                    if member.is_empty() {
                        continue;
                    }
                    if !first {
                        key.push_str(", ");
                    }
                    first = false;
                    push_escaped(&mut key, member);
                }
            }
        }
        Some(key)
    }
}

fn push_escaped(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Maps an Accept-Encoding value to the variant an edge stores: `"br"`,
/// `"gzip"` or `"identity"`, picking the highest q-value (ties favour br,
/// then gzip). `*` stands for any coding not listed explicitly.
pub fn normalize_accept_encoding(value: &str) -> &'static str {
    let (mut br, mut gzip, mut star) = (None::<f32>, None::<f32>, None::<f32>);
    for member in value.split(',') {
        let mut parts = member.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let mut q = 1.0f32;
        for p in parts {
            let p = p.trim();
            if let Some(v) = p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")) {
                q = v
                    .trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|q| q.is_finite())
                    .unwrap_or(0.0);
            }
        }
        let slot = if coding.eq_ignore_ascii_case("br") {
            &mut br
        } else if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            &mut gzip
        } else if coding == "*" {
            &mut star
        } else {
            continue;
        };
        *slot = Some(slot.map_or(q, |p: f32| p.max(q)));
    }
    let br = br.or(star).unwrap_or(0.0);
    let gzip = gzip.or(star).unwrap_or(0.0);
    if br > 0.0 && br >= gzip {
        "br"
    } else if gzip > 0.0 {
        "gzip"
    } else {
        "identity"
    }
}

/// The normalised Accept-Encoding of a request (see [`normalize_accept_encoding`]);
/// `"identity"` when absent or not visible ASCII.
pub fn request_encoding(req: &HeaderMap) -> &'static str {
    let mut best = "identity";
    for v in req.get_all(ACCEPT_ENCODING) {
        if let Ok(s) = v.to_str() {
            match normalize_accept_encoding(s) {
                "br" => return "br",
                "gzip" => best = "gzip",
                _ => {}
            }
        }
    }
    best
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
                HeaderValue::from_bytes(v.as_bytes()).unwrap(),
            );
        }
        h
    }

    fn names(v: &[&'static str]) -> VarySpec {
        VarySpec::Fields(v.iter().map(|s| HeaderName::from_static(s)).collect())
    }

    #[test]
    fn parse_combines_sorts_dedupes() {
        assert_eq!(VarySpec::from_headers(&HeaderMap::new()), VarySpec::None);
        assert_eq!(
            VarySpec::from_headers(&map(&[("vary", " , ")])),
            VarySpec::None
        );
        let h = map(&[
            ("vary", "Accept-Encoding, User-Agent"),
            ("vary", "accept-encoding ,Accept-Language"),
        ]);
        assert_eq!(
            VarySpec::from_headers(&h),
            names(&["accept-encoding", "accept-language", "user-agent"])
        );
    }

    #[test]
    fn star_anywhere() {
        let h = map(&[("vary", "Accept-Encoding"), ("vary", "Cookie, *")]);
        assert_eq!(VarySpec::from_headers(&h), VarySpec::Any);
        assert!(has_star(&h));
        assert!(!has_star(&map(&[("vary", "accept")])));
        assert_eq!(VarySpec::Any.secondary_key(&HeaderMap::new()), None);
    }

    #[test]
    fn none_key_is_empty() {
        assert_eq!(
            VarySpec::None.secondary_key(&map(&[("a", "b")])),
            Some(String::new())
        );
    }

    #[test]
    fn variant_keys() {
        let v = names(&["accept-encoding", "accept-language"]);
        let a = v
            .secondary_key(&map(&[("accept-encoding", " gzip,br ")]))
            .unwrap();
        assert_eq!(a, "accept-encoding:gzip, br\naccept-language!");
        let b = v
            .secondary_key(&map(&[
                ("accept-encoding", "gzip"),
                ("accept-encoding", "br"),
            ]))
            .unwrap();
        assert_eq!(a, b);
        let empty = v.secondary_key(&map(&[
            ("accept-encoding", "gzip, br"),
            ("accept-language", ""),
        ]));
        assert_eq!(
            empty.as_deref(),
            Some("accept-encoding:gzip, br\naccept-language:")
        );
        assert_ne!(Some(a), empty);
        let other = v
            .secondary_key(&map(&[("accept-encoding", "br, gzip")]))
            .unwrap();
        assert_ne!(other, b);
    }

    #[test]
    fn key_escapes_unusual_bytes() {
        let v = names(&["x-a"]);
        let k = v.secondary_key(&map(&[("x-a", "100%\u{e9}")])).unwrap();
        assert_eq!(k, "x-a:100%25%C3%A9");
    }

    #[test]
    fn accept_encoding() {
        assert_eq!(normalize_accept_encoding("gzip, deflate, br, zstd"), "br");
        assert_eq!(normalize_accept_encoding("gzip, deflate"), "gzip");
        assert_eq!(normalize_accept_encoding("x-gzip"), "gzip");
        assert_eq!(normalize_accept_encoding(""), "identity");
        assert_eq!(normalize_accept_encoding("deflate"), "identity");
        assert_eq!(normalize_accept_encoding("br;q=0, gzip"), "gzip");
        assert_eq!(normalize_accept_encoding("br;q=0.5, gzip;q=1.0"), "gzip");
        assert_eq!(normalize_accept_encoding("gzip;q=0, br;q=0"), "identity");
        assert_eq!(normalize_accept_encoding("*"), "br");
        assert_eq!(normalize_accept_encoding("br;q=0, *;q=0.1"), "gzip");
        assert_eq!(normalize_accept_encoding("BR ; Q=0.9"), "br");
        assert_eq!(normalize_accept_encoding("br;q=abc, gzip"), "gzip");
        assert_eq!(
            request_encoding(&map(&[("accept-encoding", "gzip")])),
            "gzip"
        );
        assert_eq!(request_encoding(&HeaderMap::new()), "identity");
    }
}
