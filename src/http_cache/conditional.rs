//! Conditional requests answered from a stored response (RFC 9110 §13,
//! RFC 9111 §4.3.2), and entity-tag parsing.

use http::header::{
    CACHE_CONTROL, CONTENT_LOCATION, DATE, ETAG, EXPIRES, IF_MATCH, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, IF_UNMODIFIED_SINCE, LAST_MODIFIED, VARY,
};
use http::{HeaderMap, HeaderName, Method};

use super::util::{header_date, trim_ows};

/// An entity tag borrowed from a field value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityTag<'a> {
    /// `W/` prefix.
    pub weak: bool,
    /// The opaque tag without its quotes.
    pub opaque: &'a [u8],
}

impl<'a> EntityTag<'a> {
    /// Parses a single entity tag (surrounding whitespace allowed). A bare,
    /// unquoted token is accepted for robustness.
    pub fn parse(value: &'a [u8]) -> Option<EntityTag<'a>> {
        let mut it = EtagList::new(value);
        let tag = it.next()?;
        it.next().is_none().then_some(tag)
    }

    /// Strong comparison: both strong and the same opaque tag.
    pub fn strong_eq(&self, other: &EntityTag<'_>) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    /// Weak comparison: the same opaque tag, weakness ignored.
    pub fn weak_eq(&self, other: &EntityTag<'_>) -> bool {
        self.opaque == other.opaque
    }
}

/// Iterates over the entity tags of a list value (commas inside quoted
/// opaque tags do not split).
#[derive(Debug, Clone)]
pub struct EtagList<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> EtagList<'a> {
    /// A list over one field line.
    pub fn new(s: &'a [u8]) -> Self {
        EtagList { s, pos: 0 }
    }
}

impl<'a> Iterator for EtagList<'a> {
    type Item = EntityTag<'a>;

    fn next(&mut self) -> Option<EntityTag<'a>> {
        let s = self.s;
        loop {
            while self.pos < s.len() && matches!(s[self.pos], b' ' | b'\t' | b',') {
                self.pos += 1;
            }
            if self.pos >= s.len() {
                return None;
            }
            let mut weak = false;
            if s[self.pos..].starts_with(b"W/") || s[self.pos..].starts_with(b"w/") {
                weak = true;
                self.pos += 2;
            }
            let quoted = s.get(self.pos) == Some(&b'"');
            let opaque = if quoted {
                let start = self.pos + 1;
                let Some(len) = s[start..].iter().position(|b| *b == b'"') else {
                    self.pos = s.len();
                    return None;
                };
                self.pos = start + len + 1;
                &s[start..start + len]
            } else {
                let start = self.pos;
                while self.pos < s.len() && s[self.pos] != b',' {
                    self.pos += 1;
                }
                trim_ows(&s[start..self.pos])
            };
            while self.pos < s.len() && s[self.pos] != b',' {
                self.pos += 1;
            }
            if !quoted && opaque.is_empty() {
                continue;
            }
            return Some(EntityTag { weak, opaque });
        }
    }
}

/// The stored response's ETag, if it has a parsable one.
pub fn stored_etag(stored: &HeaderMap) -> Option<EntityTag<'_>> {
    EntityTag::parse(stored.get(ETAG)?.as_bytes())
}

/// The field's value is `*` (on some line).
fn is_star(req: &HeaderMap, name: &HeaderName) -> bool {
    req.get_all(name)
        .iter()
        .any(|v| trim_ows(v.as_bytes()) == b"*")
}

/// Some listed tag matches `stored` under `eq`.
fn any_tag(
    req: &HeaderMap,
    name: &HeaderName,
    stored: Option<EntityTag<'_>>,
    eq: impl Fn(&EntityTag<'_>, &EntityTag<'_>) -> bool,
) -> bool {
    let Some(stored) = stored else {
        return false;
    };
    req.get_all(name)
        .iter()
        .flat_map(|v| EtagList::new(v.as_bytes()))
        .any(|t| eq(&t, &stored))
}

/// The outcome of evaluating a request's preconditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Answer 304 Not Modified from the stored response.
    NotModified,
    /// Answer 412 Precondition Failed.
    PreconditionFailed,
    /// No precondition prevents serving the stored response.
    Proceed,
}

/// Evaluates If-Match, If-Unmodified-Since, If-None-Match and
/// If-Modified-Since against a stored response, in the order of RFC 9110
/// §13.2.2. Unparsable dates are ignored. The caller applies it only to
/// stored 200 responses.
pub fn evaluate(method: &Method, req: &HeaderMap, stored: &HeaderMap) -> Precondition {
    let get_or_head = method == Method::GET || method == Method::HEAD;
    if req.contains_key(IF_MATCH) {
        if !is_star(req, &IF_MATCH)
            && !any_tag(req, &IF_MATCH, stored_etag(stored), |a, b| a.strong_eq(b))
        {
            return Precondition::PreconditionFailed;
        }
    } else if let Some(ius) = header_date(req, &IF_UNMODIFIED_SINCE)
        && let Some(lm) = header_date(stored, &LAST_MODIFIED)
        && lm > ius
    {
        return Precondition::PreconditionFailed;
    }
    if req.contains_key(IF_NONE_MATCH) {
        if is_star(req, &IF_NONE_MATCH)
            || any_tag(req, &IF_NONE_MATCH, stored_etag(stored), |a, b| {
                a.weak_eq(b)
            })
        {
            return if get_or_head {
                Precondition::NotModified
            } else {
                Precondition::PreconditionFailed
            };
        }
        return Precondition::Proceed;
    }
    if get_or_head
        && let Some(ims) = header_date(req, &IF_MODIFIED_SINCE)
        && let Some(lm) = header_date(stored, &LAST_MODIFIED).or_else(|| header_date(stored, &DATE))
        && lm <= ims
    {
        return Precondition::NotModified;
    }
    Precondition::Proceed
}

/// Fields a 304 generated from a stored response carries (RFC 9110 §15.4.5).
const NOT_MODIFIED_FIELDS: [HeaderName; 7] = [
    CACHE_CONTROL,
    CONTENT_LOCATION,
    DATE,
    ETAG,
    EXPIRES,
    VARY,
    LAST_MODIFIED,
];

/// The header fields of a 304 answered from `stored`: Cache-Control,
/// Content-Location, Date, ETag, Expires, Vary and Last-Modified.
pub fn not_modified_headers(stored: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(NOT_MODIFIED_FIELDS.len());
    for name in &NOT_MODIFIED_FIELDS {
        for v in stored.get_all(name) {
            out.append(name.clone(), v.clone());
        }
    }
    out
}

#[cfg(test)]
#[path = "conditional_tests.rs"]
mod tests;
