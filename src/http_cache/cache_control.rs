//! Cache-Control parsing (RFC 9111 §5.2), tolerant of the usual malformations.
//!
//! The parser works on bytes, never allocates for the common directives and
//! treats malformed freshness directives conservatively (as stale).

use http::{HeaderMap, HeaderName};

use super::util::{parse_delta_seconds, trim_ows};

/// Parsed Cache-Control directives (request or response).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// `max-age`: response freshness lifetime, or the request's age limit.
    pub max_age: Option<u64>,
    /// `s-maxage`: freshness lifetime for shared caches.
    pub s_maxage: Option<u64>,
    /// Unqualified `no-cache`: every use needs a successful revalidation.
    pub no_cache: bool,
    /// Fields listed by a qualified `no-cache="..."`.
    pub no_cache_fields: Vec<HeaderName>,
    /// `no-store`.
    pub no_store: bool,
    /// Unqualified `private`: a shared cache must not store the response.
    pub private: bool,
    /// Fields listed by a qualified `private="..."`.
    pub private_fields: Vec<HeaderName>,
    /// `public`.
    pub public: bool,
    /// `must-revalidate`.
    pub must_revalidate: bool,
    /// `proxy-revalidate`.
    pub proxy_revalidate: bool,
    /// `must-understand`.
    pub must_understand: bool,
    /// `immutable` (RFC 8246).
    pub immutable: bool,
    /// `no-transform`.
    pub no_transform: bool,
    /// `stale-while-revalidate` (RFC 5861); the smallest value wins on duplicates.
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error` (RFC 5861); the smallest value wins on duplicates.
    pub stale_if_error: Option<u64>,
    /// Request `max-stale`: `Some(None)` accepts any staleness.
    pub max_stale: Option<Option<u64>>,
    /// Request `min-fresh`; the largest value wins on duplicates.
    pub min_fresh: Option<u64>,
    /// Request `only-if-cached`.
    pub only_if_cached: bool,
    /// A freshness directive (`max-age`, `s-maxage`) was malformed or
    /// duplicated with conflicting values; its value is then 0 (stale).
    pub invalid: bool,
}

/// The value of one directive, as found in the field.
#[derive(Debug, Clone, Copy)]
struct Value<'a> {
    /// The token, or the inside of the quoted-string (escapes not removed).
    raw: &'a [u8],
    /// The value was a quoted-string containing a backslash escape.
    escaped: bool,
    /// The value was syntactically fine (e.g. a closed quoted-string).
    ok: bool,
}

impl Value<'_> {
    fn delta(&self) -> Option<u64> {
        if !self.ok || self.escaped {
            return None;
        }
        parse_delta_seconds(self.raw)
    }
}

/// Splits a field value into `(name, value)` directives; commas inside
/// quoted-strings do not split.
struct DirectiveIter<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> DirectiveIter<'a> {
    fn skip_ows(&mut self) {
        while self.pos < self.s.len() && matches!(self.s[self.pos], b' ' | b'\t') {
            self.pos += 1;
        }
    }

    fn skip_to_comma(&mut self) -> bool {
        let mut clean = true;
        while self.pos < self.s.len() && self.s[self.pos] != b',' {
            if !matches!(self.s[self.pos], b' ' | b'\t') {
                clean = false;
            }
            self.pos += 1;
        }
        clean
    }

    fn quoted(&mut self) -> Value<'a> {
        // self.s[self.pos] is the opening quote.
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        while i < self.s.len() {
            match self.s[i] {
                b'\\' => {
                    escaped = true;
                    i += 2;
                }
                b'"' => {
                    self.pos = i + 1;
                    let clean = self.skip_to_comma();
                    return Value {
                        raw: &self.s[start..i],
                        escaped,
                        ok: clean,
                    };
                }
                _ => i += 1,
            }
        }
        self.pos = self.s.len();
        Value {
            raw: &self.s[start.min(self.s.len())..],
            escaped,
            ok: false,
        }
    }
}

impl<'a> Iterator for DirectiveIter<'a> {
    type Item = (&'a [u8], Option<Value<'a>>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            while self.pos < self.s.len() && matches!(self.s[self.pos], b' ' | b'\t' | b',') {
                self.pos += 1;
            }
            if self.pos >= self.s.len() {
                return None;
            }
            let start = self.pos;
            while self.pos < self.s.len() && !matches!(self.s[self.pos], b' ' | b'\t' | b',' | b'=')
            {
                self.pos += 1;
            }
            let name = &self.s[start..self.pos];
            self.skip_ows();
            let value = if self.s.get(self.pos) == Some(&b'=') {
                self.pos += 1;
                self.skip_ows();
                if self.s.get(self.pos) == Some(&b'"') {
                    Some(self.quoted())
                } else {
                    let vstart = self.pos;
                    self.skip_to_comma();
                    Some(Value {
                        raw: trim_ows(&self.s[vstart..self.pos]),
                        escaped: false,
                        ok: true,
                    })
                }
            } else {
                self.skip_to_comma();
                None
            };
            if name.is_empty() {
                continue;
            }
            return Some((name, value));
        }
    }
}

/// Records a freshness directive: malformed or conflicting -> 0 and invalid.
fn set_freshness(slot: &mut Option<u64>, invalid: &mut bool, value: Option<Value<'_>>) {
    match value.and_then(|v| v.delta()) {
        None => {
            *invalid = true;
            *slot = Some(0);
        }
        Some(v) => match *slot {
            None => *slot = Some(v),
            Some(prev) if prev != v => {
                *invalid = true;
                *slot = Some(0);
            }
            Some(_) => {}
        },
    }
}

/// Records a field-list directive (`no-cache`, `private`); an unqualified or
/// unusable list sets the unqualified flag (the conservative reading).
fn set_fields(flag: &mut bool, fields: &mut Vec<HeaderName>, value: Option<Value<'_>>) {
    let Some(v) = value else {
        *flag = true;
        return;
    };
    if !v.ok {
        *flag = true;
        return;
    }
    let unescaped;
    let list: &[u8] = if v.escaped {
        unescaped = v
            .raw
            .iter()
            .copied()
            .filter(|b| *b != b'\\')
            .collect::<Vec<u8>>();
        &unescaped
    } else {
        v.raw
    };
    let mut any = false;
    for item in list.split(|b| *b == b',').map(trim_ows) {
        if item.is_empty() {
            continue;
        }
        if let Ok(name) = HeaderName::from_bytes(item) {
            any = true;
            if !fields.contains(&name) {
                fields.push(name);
            }
        }
    }
    if !any {
        *flag = true;
    }
}

fn min_opt(slot: &mut Option<u64>, v: u64) {
    *slot = Some(slot.map_or(v, |p| p.min(v)));
}

impl CacheControl {
    /// Parses one Cache-Control field value (all its directives).
    pub fn parse(value: &str) -> CacheControl {
        let mut cc = CacheControl::default();
        cc.merge(value.as_bytes());
        cc
    }

    /// Parses the field `name` from `headers`, combining all its lines.
    /// `None` when the field is absent or holds no recognised directive.
    pub fn from_headers(headers: &HeaderMap, name: &HeaderName) -> Option<CacheControl> {
        let mut cc = CacheControl::default();
        let mut recognised = 0;
        for v in headers.get_all(name) {
            recognised += cc.merge(v.as_bytes());
        }
        (recognised > 0).then_some(cc)
    }

    /// Adds the directives of one more field line to `self` (duplicates are
    /// resolved as if all lines were one list). Returns how many recognised
    /// directives the line held.
    pub fn merge(&mut self, value: &[u8]) -> usize {
        let mut recognised = 0;
        for (name, value) in (DirectiveIter { s: value, pos: 0 }) {
            let mut buf = [0u8; 24];
            if name.len() > buf.len() {
                continue;
            }
            let lower = &mut buf[..name.len()];
            lower.copy_from_slice(name);
            lower.make_ascii_lowercase();
            match &*lower {
                b"max-age" => set_freshness(&mut self.max_age, &mut self.invalid, value),
                b"s-maxage" => set_freshness(&mut self.s_maxage, &mut self.invalid, value),
                b"no-cache" => set_fields(&mut self.no_cache, &mut self.no_cache_fields, value),
                b"private" => set_fields(&mut self.private, &mut self.private_fields, value),
                b"no-store" => self.no_store = true,
                b"public" => self.public = true,
                b"must-revalidate" => self.must_revalidate = true,
                b"proxy-revalidate" => self.proxy_revalidate = true,
                b"must-understand" => self.must_understand = true,
                b"immutable" => self.immutable = true,
                b"no-transform" => self.no_transform = true,
                b"only-if-cached" => self.only_if_cached = true,
                b"stale-while-revalidate" => {
                    if let Some(v) = value.and_then(|v| v.delta()) {
                        min_opt(&mut self.stale_while_revalidate, v);
                    }
                }
                b"stale-if-error" => {
                    if let Some(v) = value.and_then(|v| v.delta()) {
                        min_opt(&mut self.stale_if_error, v);
                    }
                }
                b"min-fresh" => {
                    if let Some(v) = value.and_then(|v| v.delta()) {
                        self.min_fresh = Some(self.min_fresh.map_or(v, |p| p.max(v)));
                    }
                }
                b"max-stale" => match value {
                    None => {
                        if self.max_stale.is_none() {
                            self.max_stale = Some(None);
                        }
                    }
                    Some(v) => {
                        if let Some(n) = v.delta() {
                            let prev = self.max_stale.flatten();
                            self.max_stale = Some(Some(prev.map_or(n, |p| p.min(n))));
                        }
                    }
                },
                _ => continue,
            }
            recognised += 1;
        }
        recognised
    }
}

#[cfg(test)]
#[path = "cache_control_tests.rs"]
mod tests;
