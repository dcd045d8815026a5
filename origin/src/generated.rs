//! Generated content: `GET /_gen/<bytes>[/<label>]?ttl=..&cc=..&vary=..`
//! answers exactly `<bytes>` deterministic bytes, with knobs for the headers
//! and failures tests need.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::conditional::Validators;
use crate::files::etag_from_digest;
use crate::query::parse_query;
use crate::representation::{Representation, Source};

/// Largest generated body: 1 GiB.
pub const MAX_SIZE: u64 = 1 << 30;

/// Last-Modified of all generated content: 2026-01-01T00:00:00Z.
pub const LAST_MODIFIED_SECS: u64 = 1_767_225_600;

/// Longest `delay_ms` accepted: ten minutes.
const MAX_DELAY_MS: u64 = 600_000;

/// Why a generated-content request was refused (400).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum GenError {
    /// The size segment is missing or not a number.
    #[error("expected /_gen/<bytes>, got a bad size {0:?}")]
    BadSize(String),
    /// The size is above [`MAX_SIZE`].
    #[error("size {0} is above the 1 GiB limit")]
    TooLarge(u64),
    /// The query string is not decodable.
    #[error("invalid query string")]
    BadQuery,
    /// A parameter has a value it cannot take.
    #[error("invalid value {value:?} for parameter {name}")]
    BadParam {
        /// The parameter.
        name: &'static str,
        /// The refused value.
        value: String,
    },
}

/// A parsed `/_gen` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenRequest {
    /// Body length.
    pub size: u64,
    /// Extra path segments after the size, mixed into the content.
    pub label: String,
    /// `version=`: mixed into the content and ETag.
    pub version: String,
    /// `ttl=N`: `Cache-Control: public, max-age=N`.
    pub ttl: Option<u64>,
    /// `cc=`: the whole Cache-Control value.
    pub cache_control: Option<HeaderValue>,
    /// `vary=`: request headers the content varies on.
    pub vary: Vec<HeaderName>,
    /// `etag=0` turns the ETag off.
    pub etag: bool,
    /// `lm=0` turns Last-Modified off.
    pub last_modified: bool,
    /// `tag=`: a Surrogate-Key.
    pub tag: Option<HeaderValue>,
    /// `setcookie=1`: adds a Set-Cookie.
    pub set_cookie: bool,
    /// `status=`: the response status.
    pub status: StatusCode,
    /// `delay_ms=`: wait before the response head.
    pub delay: Option<Duration>,
    /// `truncate=N`: abort after N body bytes.
    pub truncate: Option<u64>,
}

fn bad(name: &'static str, value: &str) -> GenError {
    GenError::BadParam {
        name,
        value: value.to_owned(),
    }
}

fn flag(name: &'static str, value: &str) -> Result<bool, GenError> {
    match value {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(bad(name, value)),
    }
}

fn number(name: &'static str, value: &str) -> Result<u64, GenError> {
    value.parse().map_err(|_| bad(name, value))
}

impl GenRequest {
    /// Parses the path segments after `_gen` and the raw query string.
    pub fn parse(segments: &[String], query: Option<&str>) -> Result<GenRequest, GenError> {
        let size_text = segments.first().map(String::as_str).unwrap_or("");
        let size: u64 = size_text
            .parse()
            .map_err(|_| GenError::BadSize(size_text.to_owned()))?;
        if size > MAX_SIZE {
            return Err(GenError::TooLarge(size));
        }
        let mut req = GenRequest {
            size,
            label: segments.get(1..).unwrap_or_default().join("/"),
            version: String::new(),
            ttl: None,
            cache_control: None,
            vary: Vec::new(),
            etag: true,
            last_modified: true,
            tag: None,
            set_cookie: false,
            status: StatusCode::OK,
            delay: None,
            truncate: None,
        };
        let pairs = parse_query(query.unwrap_or("")).map_err(|_| GenError::BadQuery)?;
        for (name, value) in &pairs {
            let v = value.as_str();
            match name.as_str() {
                "ttl" => req.ttl = Some(number("ttl", v)?),
                "cc" => {
                    req.cache_control = Some(HeaderValue::from_str(v).map_err(|_| bad("cc", v))?)
                }
                "vary" => {
                    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                        let name =
                            HeaderName::from_bytes(part.as_bytes()).map_err(|_| bad("vary", v))?;
                        req.vary.push(name);
                    }
                }
                "etag" => req.etag = flag("etag", v)?,
                "lm" => req.last_modified = flag("lm", v)?,
                "tag" => req.tag = Some(HeaderValue::from_str(v).map_err(|_| bad("tag", v))?),
                "setcookie" => req.set_cookie = flag("setcookie", v)?,
                "status" => {
                    req.status = number("status", v)
                        .ok()
                        .filter(|c| (200..=599).contains(c))
                        .and_then(|c| StatusCode::from_u16(c as u16).ok())
                        .ok_or_else(|| bad("status", v))?;
                }
                "delay_ms" => {
                    let ms = number("delay_ms", v)?;
                    if ms > MAX_DELAY_MS {
                        return Err(bad("delay_ms", v));
                    }
                    req.delay = Some(Duration::from_millis(ms));
                }
                "truncate" => req.truncate = Some(number("truncate", v)?),
                "version" => req.version = value.clone(),
                // Anything else (cache busters, ...) is ignored.
                _ => {}
            }
        }
        Ok(req)
    }

    /// The repeating unit of the content: names the request's values of the
    /// Vary'd headers, the version and the path, so variants differ visibly.
    pub fn unit(&self, req_headers: &HeaderMap) -> Vec<u8> {
        let mut unit = Vec::new();
        for name in &self.vary {
            unit.extend_from_slice(name.as_str().as_bytes());
            unit.push(b'=');
            for (i, value) in req_headers.get_all(name).iter().enumerate() {
                if i > 0 {
                    unit.extend_from_slice(b", ");
                }
                unit.extend_from_slice(value.as_bytes());
            }
            unit.push(b' ');
        }
        unit.extend_from_slice(b"version=");
        unit.extend_from_slice(self.version.as_bytes());
        unit.extend_from_slice(format!(" size={}", self.size).as_bytes());
        if !self.label.is_empty() {
            unit.extend_from_slice(b" label=");
            unit.extend_from_slice(self.label.as_bytes());
        }
        unit.extend_from_slice(b" edgecache-origin\n");
        unit
    }

    /// The representation: `headers` holds what `_headers` rules set;
    /// query parameters override them.
    pub fn representation(
        &self,
        req_headers: &HeaderMap,
        mut headers: HeaderMap,
    ) -> Representation {
        let unit = self.unit(req_headers);
        let mut hasher = Sha256::new();
        hasher.update(self.size.to_be_bytes());
        hasher.update(&unit);
        let etag = etag_from_digest(&hasher.finalize());

        if !headers.contains_key(header::CONTENT_TYPE) {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
        }
        if let Some(cc) = &self.cache_control {
            headers.insert(header::CACHE_CONTROL, cc.clone());
        } else if let Some(ttl) = self.ttl {
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_str(&format!("public, max-age={ttl}"))
                    .expect("digits are a valid header value"),
            );
        }
        if !self.vary.is_empty() {
            let names: Vec<&str> = self.vary.iter().map(HeaderName::as_str).collect();
            headers.insert(
                header::VARY,
                HeaderValue::from_str(&names.join(", "))
                    .expect("header names are valid header values"),
            );
        }
        if let Some(tag) = &self.tag {
            headers.insert(HeaderName::from_static("surrogate-key"), tag.clone());
        }
        if self.set_cookie {
            let cookie = format!("gen={}; Path=/; HttpOnly", etag.trim_matches('"'));
            headers.insert(
                header::SET_COOKIE,
                HeaderValue::from_str(&cookie).expect("hex digits are a valid header value"),
            );
        }
        Representation {
            status: self.status,
            len: self.size,
            validators: Validators {
                etag: self.etag.then_some(etag),
                last_modified: self.last_modified.then(last_modified),
            },
            headers,
            source: Source::Pattern(Arc::from(unit)),
        }
    }
}

/// The fixed Last-Modified of generated content.
pub fn last_modified() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(LAST_MODIFIED_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_parameters() {
        let q = "ttl=5&vary=Accept-Language&etag=0&tag=a+b&status=404&delay_ms=10&truncate=3&version=v2&zz=1";
        let r = GenRequest::parse(&segs(&["1000"]), Some(q)).unwrap();
        assert_eq!(r.size, 1000);
        assert_eq!(r.ttl, Some(5));
        assert_eq!(r.vary, vec![HeaderName::from_static("accept-language")]);
        assert!(!r.etag && r.last_modified);
        assert_eq!(r.tag.unwrap(), "a b");
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.delay, Some(Duration::from_millis(10)));
        assert_eq!(r.truncate, Some(3));
        assert_eq!(r.version, "v2");
    }

    #[test]
    fn refuses_bad_input() {
        assert_eq!(
            GenRequest::parse(&segs(&["x"]), None),
            Err(GenError::BadSize("x".into()))
        );
        assert_eq!(
            GenRequest::parse(&segs(&[]), None),
            Err(GenError::BadSize(String::new()))
        );
        let too_big = (MAX_SIZE + 1).to_string();
        assert_eq!(
            GenRequest::parse(&segs(&[&too_big]), None),
            Err(GenError::TooLarge(MAX_SIZE + 1))
        );
        assert!(GenRequest::parse(&segs(&["1"]), Some("status=99")).is_err());
        assert!(GenRequest::parse(&segs(&["1"]), Some("ttl=-1")).is_err());
        assert!(GenRequest::parse(&segs(&["1"]), Some("vary=bad%20name")).is_err());
    }

    #[test]
    fn etag_depends_on_version_and_vary_value() {
        let a = GenRequest::parse(&segs(&["10"]), Some("vary=x-v")).unwrap();
        let b = GenRequest::parse(&segs(&["10"]), Some("vary=x-v&version=2")).unwrap();
        let mut h1 = HeaderMap::new();
        h1.insert("x-v", HeaderValue::from_static("one"));
        let mut h2 = HeaderMap::new();
        h2.insert("x-v", HeaderValue::from_static("two"));
        let e =
            |r: &GenRequest, h: &HeaderMap| r.representation(h, HeaderMap::new()).validators.etag;
        assert_eq!(e(&a, &h1), e(&a, &h1));
        assert_ne!(e(&a, &h1), e(&a, &h2));
        assert_ne!(e(&a, &h1), e(&b, &h1));
        assert!(String::from_utf8(a.unit(&h1)).unwrap().contains("x-v=one"));
    }
}
