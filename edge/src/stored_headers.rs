//! The header fields of a stored response, kept compact: every value in one
//! buffer, each field a few bytes naming its header and where its value
//! ends.
//!
//! A `HeaderMap` costs about a hundred bytes per field (hash slot, name,
//! value, links) plus its index table: for a 1 KiB object with eight fields
//! that was as much memory again as the body. Here a field is eight bytes
//! and the values share one allocation; a hit builds the response's
//! `HeaderMap` from it, which it had to do anyway (a stored map is cloned
//! into a map with room for the edge's own fields).

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, header};

/// Field names common in responses, named by their index in a stored
/// field: no copy of the name per object.
static WELL_KNOWN: [HeaderName; 32] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CACHE_CONTROL,
    header::ETAG,
    header::LAST_MODIFIED,
    header::DATE,
    header::EXPIRES,
    header::ACCEPT_RANGES,
    header::SERVER,
    header::VARY,
    header::CONTENT_ENCODING,
    header::CONTENT_LANGUAGE,
    header::CONTENT_DISPOSITION,
    header::CONTENT_LOCATION,
    header::CONTENT_SECURITY_POLICY,
    header::LOCATION,
    header::LINK,
    header::PRAGMA,
    header::ACCESS_CONTROL_ALLOW_ORIGIN,
    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
    header::ACCESS_CONTROL_EXPOSE_HEADERS,
    header::STRICT_TRANSPORT_SECURITY,
    header::X_CONTENT_TYPE_OPTIONS,
    header::X_FRAME_OPTIONS,
    header::X_XSS_PROTECTION,
    header::REFERRER_POLICY,
    header::ALT_SVC,
    header::ACCESS_CONTROL_ALLOW_METHODS,
    header::SET_COOKIE,
    header::WARNING,
    header::CONTENT_RANGE,
    header::TRANSFER_ENCODING,
];

/// The names of [`WELL_KNOWN`] as they start a field on the wire.
static WIRE_NAMES: [&[u8]; 32] = [
    b"content-type: ",
    b"content-length: ",
    b"cache-control: ",
    b"etag: ",
    b"last-modified: ",
    b"date: ",
    b"expires: ",
    b"accept-ranges: ",
    b"server: ",
    b"vary: ",
    b"content-encoding: ",
    b"content-language: ",
    b"content-disposition: ",
    b"content-location: ",
    b"content-security-policy: ",
    b"location: ",
    b"link: ",
    b"pragma: ",
    b"access-control-allow-origin: ",
    b"access-control-allow-credentials: ",
    b"access-control-expose-headers: ",
    b"strict-transport-security: ",
    b"x-content-type-options: ",
    b"x-frame-options: ",
    b"x-xss-protection: ",
    b"referrer-policy: ",
    b"alt-svc: ",
    b"access-control-allow-methods: ",
    b"set-cookie: ",
    b"warning: ",
    b"content-range: ",
    b"transfer-encoding: ",
];

/// Indexes into [`WELL_KNOWN`] of the fields the HTTP/1.1 writer notes.
const CONTENT_LENGTH_AT: u16 = 1;
const DATE_AT: u16 = 5;
const TRANSFER_ENCODING_AT: u16 = 31;

/// What [`StoredHeaders::write_wire`] saw that the answer's framing needs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct WireNotes<'a> {
    /// The first Content-Length value.
    pub content_length: Option<&'a [u8]>,
    /// A Date field was written.
    pub dated: bool,
    /// A stored `Connection` field said `close`.
    pub close: bool,
}

/// Removes from a response about to be stored the fields every answer
/// sets for itself (Age, the request id of the fill's client), so that a
/// stored field never needs merging with one the edge adds per answer.
pub fn remove_per_answer_fields(headers: &mut HeaderMap) {
    headers.remove(header::AGE);
    headers.remove(crate::proxy::X_REQUEST_ID);
}

/// One stored field: its name and the end of its value in the buffer (the
/// value starts where the previous field's ends).
#[derive(Clone, Copy, Debug)]
struct Field {
    /// Index into [`WELL_KNOWN`], or `WELL_KNOWN.len()` plus an index into
    /// the object's own names.
    name: u16,
    /// Marked sensitive (never compressed by HPACK).
    sensitive: bool,
    end: u32,
}

/// The end-to-end header fields of a stored response, in the order the
/// origin's map listed them.
#[derive(Clone, Debug, Default)]
pub struct StoredHeaders {
    values: Bytes,
    fields: Box<[Field]>,
    /// Names not in [`WELL_KNOWN`], each once.
    other_names: Box<[HeaderName]>,
}

impl StoredHeaders {
    /// A compact copy of `headers`. The values are copied (never slices of
    /// a connection's read buffer, which would keep it alive).
    pub fn from_map(headers: &HeaderMap) -> StoredHeaders {
        let total: usize = headers.values().map(|v| v.len()).sum();
        let mut values = Vec::with_capacity(total);
        let mut fields = Vec::with_capacity(headers.len());
        let mut other_names: Vec<HeaderName> = Vec::new();
        for (name, value) in headers {
            let index = match WELL_KNOWN.iter().position(|known| known == name) {
                Some(i) => i,
                None => {
                    let own = match other_names.iter().position(|n| n == name) {
                        Some(i) => i,
                        None => {
                            other_names.push(name.clone());
                            other_names.len() - 1
                        }
                    };
                    WELL_KNOWN.len() + own
                }
            };
            values.extend_from_slice(value.as_bytes());
            let (Ok(name), Ok(end)) = (u16::try_from(index), u32::try_from(values.len())) else {
                // Beyond any header section hyper accepts.
                break;
            };
            fields.push(Field {
                name,
                sensitive: value.is_sensitive(),
                end,
            });
        }
        StoredHeaders {
            values: Bytes::from(values),
            fields: fields.into_boxed_slice(),
            other_names: other_names.into_boxed_slice(),
        }
    }

    /// Number of fields (a name with two values counts twice).
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Every field in stored order.
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, HeaderValue)> + '_ {
        self.spans()
            .map(|(name, span)| (name, self.value(span.0, span.1, span.2)))
    }

    /// Writes the fields as `name: value\r\n` lines into `out`, leaving
    /// out the framing and connection fields the writer sets itself
    /// (Transfer-Encoding, Connection), and notes what framing needs. The
    /// names of well-known fields are written from a table: a hit writes
    /// its stored fields without looking at a `HeaderName`.
    pub fn write_wire(&self, out: &mut Vec<u8>) -> WireNotes<'_> {
        let mut notes = WireNotes::default();
        out.reserve(self.values.len() + self.fields.len() * 24);
        let mut start = 0;
        for field in self.fields.iter() {
            let end = field.end as usize;
            let value = &self.values[start..end];
            start = end;
            match WIRE_NAMES.get(usize::from(field.name)) {
                Some(name) => {
                    match field.name {
                        CONTENT_LENGTH_AT if notes.content_length.is_none() => {
                            notes.content_length = Some(value);
                        }
                        DATE_AT => notes.dated = true,
                        TRANSFER_ENCODING_AT => continue,
                        _ => {}
                    }
                    out.extend_from_slice(name);
                }
                None => {
                    let name = self.name(field);
                    if name == header::CONNECTION {
                        notes.close |= value.eq_ignore_ascii_case(b"close");
                        continue;
                    }
                    out.extend_from_slice(name.as_str().as_bytes());
                    out.extend_from_slice(b": ");
                }
            }
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        notes
    }

    /// The first value of `name`.
    pub fn get(&self, name: &HeaderName) -> Option<HeaderValue> {
        self.get_all(name).next()
    }

    /// Every value of `name`, in stored order.
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = HeaderValue> + 'a {
        self.spans()
            .filter(move |(n, _)| *n == name)
            .map(|(_, span)| self.value(span.0, span.1, span.2))
    }

    /// Whether a field named `name` is stored.
    pub fn contains(&self, name: &HeaderName) -> bool {
        self.spans().any(|(n, _)| n == name)
    }

    /// Each field's name and (start, end, sensitive) of its value: lookups
    /// compare names without making a value (a reference count bump) for
    /// every field they pass.
    fn spans(&self) -> impl Iterator<Item = (&HeaderName, (usize, usize, bool))> + '_ {
        let mut start = 0;
        self.fields.iter().map(move |field| {
            let end = field.end as usize;
            let span = (start, end, field.sensitive);
            start = end;
            (self.name(field), span)
        })
    }

    /// The fields as a `HeaderMap` with room for `extra` more without
    /// growing (the fields a response adds).
    pub fn to_map(&self, extra: usize) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.fields.len() + extra);
        for (name, value) in self.iter() {
            map.append(name.clone(), value);
        }
        map
    }

    /// Bytes held on the heap, for the store's weigher.
    pub fn heap_bytes(&self) -> usize {
        self.values.len()
            + self.fields.len() * std::mem::size_of::<Field>()
            + self
                .other_names
                .iter()
                .map(|n| n.as_str().len() + std::mem::size_of::<HeaderName>())
                .sum::<usize>()
    }

    fn name(&self, field: &Field) -> &HeaderName {
        let index = usize::from(field.name);
        match WELL_KNOWN.get(index) {
            Some(name) => name,
            None => &self.other_names[index - WELL_KNOWN.len()],
        }
    }

    fn value(&self, start: usize, end: usize, sensitive: bool) -> HeaderValue {
        let bytes = self.values.slice(start..end);
        // SAFETY: `values` is immutable and was filled only in `from_map`,
        // by copying whole `HeaderValue`s; the ranges are those copies, so
        // each holds bytes that were already checked as a field value.
        // Checking them again would cost every hit a pass over its header
        // bytes.
        let mut value = unsafe { HeaderValue::from_maybe_shared_unchecked(bytes) };
        value.set_sensitive(sensitive);
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(m: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
        m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    fn sample() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        headers.append("set-cookie", HeaderValue::from_static("a=1"));
        headers.append("set-cookie", HeaderValue::from_static("b=2"));
        let mut secret = HeaderValue::from_static("token");
        secret.set_sensitive(true);
        headers.insert("x-secret", secret);
        headers.insert("x-empty", HeaderValue::from_static(""));
        headers.append("x-multi", HeaderValue::from_static("one"));
        headers.append("x-multi", HeaderValue::from_static("two"));
        headers.insert(header::ETAG, HeaderValue::from_static("\"v1\""));
        headers
    }

    #[test]
    fn round_trip_keeps_every_field_in_order() {
        let headers = sample();
        let stored = StoredHeaders::from_map(&headers);
        assert_eq!(stored.len(), headers.len());
        let map = stored.to_map(4);
        assert_eq!(pairs(&map), pairs(&headers));
        assert!(map["x-secret"].is_sensitive());
        assert!(!map["content-type"].is_sensitive());
        let multi: Vec<_> = map.get_all("x-multi").iter().collect();
        assert_eq!(multi, ["one", "two"]);
    }

    #[test]
    fn values_share_one_buffer_that_is_not_the_original() {
        let headers = sample();
        let stored = StoredHeaders::from_map(&headers);
        let map = stored.to_map(0);
        let mut next = map["content-type"].as_bytes().as_ptr();
        for value in map.values().filter(|v| !v.is_empty()) {
            assert_eq!(value.as_bytes().as_ptr(), next, "values are contiguous");
            next = next.wrapping_add(value.len());
        }
        let original = headers["content-type"].as_bytes().as_ptr();
        assert_ne!(map["content-type"].as_bytes().as_ptr(), original);
    }

    #[test]
    fn the_wire_table_names_the_well_known_fields() {
        for (name, wire) in WELL_KNOWN.iter().zip(WIRE_NAMES) {
            assert_eq!(wire, format!("{}: ", name.as_str()).as_bytes());
        }
        assert_eq!(
            WELL_KNOWN[usize::from(CONTENT_LENGTH_AT)],
            header::CONTENT_LENGTH
        );
        assert_eq!(WELL_KNOWN[usize::from(DATE_AT)], header::DATE);
        assert_eq!(
            WELL_KNOWN[usize::from(TRANSFER_ENCODING_AT)],
            header::TRANSFER_ENCODING
        );
    }

    #[test]
    fn wire_form_writes_fields_in_order_and_notes_framing() {
        let mut headers = sample();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        headers.append(header::CONTENT_LENGTH, HeaderValue::from_static("99"));
        headers.insert(
            header::DATE,
            HeaderValue::from_static("Thu, 01 Jan 2026 00:00:00 GMT"),
        );
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::CONNECTION, HeaderValue::from_static("Close"));
        let stored = StoredHeaders::from_map(&headers);
        let mut out = b"HTTP/1.1 200 OK\r\n".to_vec();
        let notes = stored.write_wire(&mut out);
        assert_eq!(notes.content_length, Some(&b"12"[..]));
        assert!(notes.dated);
        assert!(notes.close);
        let mut expected = String::from("HTTP/1.1 200 OK\r\n");
        for (name, value) in headers.iter() {
            if name != header::TRANSFER_ENCODING && name != header::CONNECTION {
                let value = value.to_str().expect("ascii");
                expected.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        assert_eq!(String::from_utf8(out).expect("ascii"), expected);
        let plain = StoredHeaders::from_map(&sample());
        let notes = plain.write_wire(&mut Vec::new());
        assert_eq!(notes, WireNotes::default());
    }

    #[test]
    fn lookups_by_name() {
        let stored = StoredHeaders::from_map(&sample());
        assert_eq!(stored.get(&header::ETAG).unwrap(), "\"v1\"");
        assert_eq!(
            stored.get(&HeaderName::from_static("x-multi")).unwrap(),
            "one"
        );
        assert!(stored.contains(&HeaderName::from_static("x-empty")));
        assert!(!stored.contains(&header::LAST_MODIFIED));
        assert!(stored.get(&header::VARY).is_none());
        let multi = HeaderName::from_static("x-multi");
        let all: Vec<_> = stored.get_all(&multi).collect();
        assert_eq!(all, ["one", "two"]);
    }

    #[test]
    fn only_names_outside_the_table_are_kept_per_object() {
        let stored = StoredHeaders::from_map(&sample());
        let own: Vec<_> = stored.other_names.iter().map(|n| n.as_str()).collect();
        assert_eq!(own, ["x-secret", "x-empty", "x-multi"]);
        assert!(StoredHeaders::from_map(&HeaderMap::new()).is_empty());
    }
}
