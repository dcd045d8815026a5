//! A request's header fields as the handler reads them: hyper's map for
//! the requests hyper reads, or, for heads the edge's HTTP/1.1 path parsed,
//! the fields as slices of the head's bytes, made into a `HeaderMap` only
//! when something needs one (a fetch, a pass, a conditional, range or
//! Cache-Control request, a Vary'd object).
//!
//! A hit reads a few fields by name; building a map of every field first
//! (a name parsed, hashed and inserted, a value checked, per field) cost a
//! browser's 13-field request about 7,000 instructions, a third of its hit.

use std::sync::OnceLock;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

/// Byte offsets into a request head.
#[derive(Clone, Copy, Debug, Default)]
pub struct Span {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// The span of `part`, a subslice of `base`.
    pub fn of(base: &[u8], part: &[u8]) -> Span {
        let start = part.as_ptr() as usize - base.as_ptr() as usize;
        Span {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }

    fn bytes(self, head: &[u8]) -> &[u8] {
        head.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }

    /// The span of `head` as a slice sharing its buffer.
    pub fn shared(self, head: &Bytes) -> Bytes {
        head.slice(self.start as usize..self.end as usize)
    }
}

/// One field of a parsed head: its name and value.
pub type FieldSpan = (Span, Span);

/// A request's header fields; see the module doc.
pub struct RequestFields<'p> {
    /// The parsed head's bytes and its fields, for a head the edge parsed.
    raw: Option<(Bytes, &'p [FieldSpan])>,
    /// The map: hyper's, or built from `raw` on first need.
    map: OnceLock<HeaderMap>,
}

impl RequestFields<'static> {
    /// The fields of a request hyper read.
    pub fn from_map(map: HeaderMap) -> RequestFields<'static> {
        RequestFields {
            raw: None,
            map: OnceLock::from(map),
        }
    }
}

impl<'p> RequestFields<'p> {
    /// The fields of a head parsed by httparse: `head` holds its bytes and
    /// `fields` their spans in it. httparse checked every name as a token
    /// and every value as field content, the grammar `HeaderName` and
    /// `HeaderValue` check (a test below holds the two to it).
    pub fn from_head(head: Bytes, fields: &'p [FieldSpan]) -> RequestFields<'p> {
        RequestFields {
            raw: Some((head, fields)),
            map: OnceLock::new(),
        }
    }

    /// Every field as name and value bytes, in received order; names in
    /// the case they were sent (compare them ignoring ASCII case).
    pub fn iter(&self) -> Fields<'_> {
        match &self.raw {
            Some((head, spans)) => Fields::Raw {
                head,
                spans: spans.iter(),
            },
            None => Fields::Map(self.map().iter()),
        }
    }

    /// The fields as a map (built once, on the first call, for a parsed
    /// head).
    pub fn map(&self) -> &HeaderMap {
        self.map.get_or_init(|| match &self.raw {
            Some((head, spans)) => build_map(head, spans),
            None => HeaderMap::new(),
        })
    }
}

/// A map of the parsed fields. A field the `http` types refused would be
/// left out, but none is: httparse accepts only what they accept.
fn build_map(head: &Bytes, spans: &[FieldSpan]) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(spans.len());
    for (name, value) in spans {
        let name = HeaderName::from_bytes(name.bytes(head));
        let value = HeaderValue::from_maybe_shared(value.shared(head));
        if let (Ok(name), Ok(value)) = (name, value) {
            map.append(name, value);
        }
    }
    map
}

/// The fields of a [`RequestFields`], as name and value bytes.
pub enum Fields<'a> {
    /// From a parsed head.
    Raw {
        /// The head's bytes.
        head: &'a Bytes,
        /// The fields not yet visited.
        spans: std::slice::Iter<'a, FieldSpan>,
    },
    /// From a map.
    Map(http::header::Iter<'a, HeaderValue>),
}

impl<'a> Iterator for Fields<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Fields::Raw { head, spans } => spans
                .next()
                .map(|(name, value)| (name.bytes(head), value.bytes(head))),
            Fields::Map(iter) => iter
                .next()
                .map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header;

    fn parsed(text: &'static [u8]) -> (Bytes, Vec<FieldSpan>) {
        let mut raw = [httparse::EMPTY_HEADER; 16];
        let mut req = httparse::Request::new(&mut raw);
        assert!(req.parse(text).expect("parses").is_complete());
        let spans = req
            .headers
            .iter()
            .map(|h| (Span::of(text, h.name.as_bytes()), Span::of(text, h.value)))
            .collect();
        (Bytes::from_static(text), spans)
    }

    #[test]
    fn raw_and_map_fields_read_alike() {
        let text = b"GET / HTTP/1.1\r\nHost: a.test\r\nAccept: */*\r\nACCEPT: text/html\r\nIf-None-Match: \"v\"\r\n\r\n";
        let (head, spans) = parsed(text);
        let raw = RequestFields::from_head(head, &spans);
        let map = RequestFields::from_map(raw.map().clone());
        for fields in [&raw, &map] {
            let pairs: Vec<(String, &[u8])> = fields
                .iter()
                .map(|(name, value)| (String::from_utf8_lossy(name).to_lowercase(), value))
                .collect();
            let expected: [(&str, &[u8]); 4] = [
                ("host", b"a.test"),
                ("accept", b"*/*"),
                ("accept", b"text/html"),
                ("if-none-match", b"\"v\""),
            ];
            let expected: Vec<(String, &[u8])> =
                expected.iter().map(|(n, v)| (n.to_string(), *v)).collect();
            assert_eq!(pairs, expected);
        }
        let accepts: Vec<_> = raw.map().get_all(header::ACCEPT).iter().collect();
        assert_eq!(accepts, ["*/*", "text/html"]);
        let names: Vec<_> = raw.iter().map(|(name, _)| name).collect();
        assert_eq!(
            names,
            [&b"Host"[..], b"Accept", b"ACCEPT", b"If-None-Match"]
        );
    }

    /// The first field of `text` as httparse reads it, if the head parses.
    fn first_field(text: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
        let mut raw = [httparse::EMPTY_HEADER; 4];
        let mut req = httparse::Request::new(&mut raw);
        match req.parse(text) {
            Ok(httparse::Status::Complete(_)) => req
                .headers
                .first()
                .map(|h| (h.name.as_bytes().to_vec(), h.value.to_vec())),
            _ => None,
        }
    }

    /// What httparse takes as a field name or value, the `http` types take
    /// too: no field of a parsed head is lost when it becomes a map.
    #[test]
    fn every_byte_httparse_accepts_the_http_types_accept() {
        for byte in 0u8..=255 {
            let in_name = [&b"GET / HTTP/1.1\r\nx"[..], &[byte], b"y: v\r\n\r\n"].concat();
            if let Some((name, _)) = first_field(&in_name) {
                assert!(
                    HeaderName::from_bytes(&name).is_ok(),
                    "name byte {byte:#04x} parsed as {name:?} but refused"
                );
            }
            let in_value = [&b"GET / HTTP/1.1\r\nx: a"[..], &[byte], b"b\r\n\r\n"].concat();
            if let Some((_, value)) = first_field(&in_value) {
                assert!(
                    HeaderValue::from_bytes(&value).is_ok(),
                    "value byte {byte:#04x} parsed as {value:?} but refused"
                );
            }
        }
    }
}
