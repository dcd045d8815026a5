//! Request heads: parsed with httparse from the connection's read buffer,
//! taken only when they are GET or HEAD without a body; the header values
//! are slices of the received bytes, as hyper makes them.

use bytes::{Bytes, BytesMut};
use http::{Method, Uri, Version};

use crate::proxy::RequestHead;
use crate::request_fields::{FieldSpan, RequestFields, Span};

/// As many fields as hyper accepts; a head with more goes to hyper, which
/// answers 431.
const MAX_HEADERS: usize = 100;

/// What the buffer holds.
pub enum Parsed {
    /// A whole head this path answers.
    Head(Head),
    /// The head is not complete yet.
    Partial,
    /// A head for hyper: a body, an upgrade, `Expect`, HTTP/2's preface,
    /// or bytes that do not parse (hyper answers those with its error).
    Handoff,
}

/// A request head's line, ready to become a `Request` with the fields the
/// parser kept.
pub struct Head {
    /// The head's length in the buffer.
    len: usize,
    method: Method,
    version: Version,
    target: Span,
    /// Whether the connection stays open after the answer.
    pub keep_alive: bool,
}

/// Parses heads; keeps the field offsets of the last one (one allocation
/// per connection, not per request).
#[derive(Default)]
pub struct HeadParser {
    fields: Vec<FieldSpan>,
}

impl HeadParser {
    /// Parses the head at the start of `buf`.
    pub fn parse(&mut self, buf: &[u8]) -> Parsed {
        self.fields.clear();
        // Uninitialised slots, as hyper parses: no 3 KiB of empty headers
        // written per request for httparse to overwrite.
        let mut raw =
            [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let len = match req.parse_with_uninit_headers(buf, &mut raw) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Parsed::Partial,
            Err(_) => return Parsed::Handoff,
        };
        let method = match req.method {
            Some("GET") => Method::GET,
            Some("HEAD") => Method::HEAD,
            _ => return Parsed::Handoff,
        };
        let version = match req.version {
            Some(1) => Version::HTTP_11,
            Some(0) => Version::HTTP_10,
            _ => return Parsed::Handoff,
        };
        let Some(target) = req.path else {
            return Parsed::Handoff;
        };
        let mut head = Head {
            len,
            method,
            version,
            target: Span::of(buf, target.as_bytes()),
            keep_alive: version == Version::HTTP_11,
        };
        for field in req.headers.iter() {
            let name = field.name.as_bytes();
            if name.eq_ignore_ascii_case(b"transfer-encoding")
                || name.eq_ignore_ascii_case(b"upgrade")
                || name.eq_ignore_ascii_case(b"expect")
                || (name.eq_ignore_ascii_case(b"content-length")
                    && field.value.trim_ascii() != b"0")
            {
                return Parsed::Handoff;
            }
            if name.eq_ignore_ascii_case(b"connection") {
                for token in field.value.split(|b| *b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        head.keep_alive = false;
                    } else if token.eq_ignore_ascii_case(b"keep-alive")
                        && version == Version::HTTP_10
                    {
                        head.keep_alive = true;
                    }
                }
            }
            self.fields
                .push((Span::of(buf, name), Span::of(buf, field.value)));
        }
        Parsed::Head(head)
    }

    /// Takes `head`'s bytes off `buf` and makes the request of them: its
    /// fields stay slices of those bytes. A target the `http` types refuse
    /// gives the head's bytes back, for hyper.
    pub fn take_request(&self, head: Head, buf: &mut BytesMut) -> Result<RequestHead<'_>, Bytes> {
        let bytes = buf.split_to(head.len).freeze();
        match Uri::from_maybe_shared(head.target.shared(&bytes)) {
            Ok(uri) => Ok(RequestHead {
                method: head.method,
                uri,
                fields: RequestFields::from_head(bytes, &self.fields),
            }),
            Err(_) => Err(bytes),
        }
    }
}

impl Head {
    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The version.
    pub fn version(&self) -> Version {
        self.version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Head {
        match HeadParser::default().parse(text.as_bytes()) {
            Parsed::Head(head) => head,
            Parsed::Partial => panic!("partial: {text:?}"),
            Parsed::Handoff => panic!("handoff: {text:?}"),
        }
    }

    fn is_handoff(text: &str) -> bool {
        matches!(
            HeadParser::default().parse(text.as_bytes()),
            Parsed::Handoff
        )
    }

    #[test]
    fn builds_get_with_fields_as_sent() {
        let text = "GET /a?b=1 HTTP/1.1\r\nHost: cdn.test\r\nAccept: */*\r\nAccept: text/html\r\n\r\nGET /next";
        let mut parser = HeadParser::default();
        let Parsed::Head(parsed) = parser.parse(text.as_bytes()) else {
            panic!("not a head");
        };
        assert!(parsed.keep_alive);
        let mut buf = BytesMut::from(text);
        let req = parser.take_request(parsed, &mut buf).expect("request");
        assert_eq!(req.method, Method::GET);
        assert_eq!(req.uri, "/a?b=1");
        assert_eq!(req.fields.map()["host"], "cdn.test");
        assert_eq!(req.fields.map().get_all("accept").iter().count(), 2);
        assert_eq!(
            &buf[..],
            b"GET /next",
            "the next request stays in the buffer"
        );
    }

    #[test]
    fn keep_alive_follows_version_and_connection() {
        assert!(!head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head("HEAD / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n").keep_alive);
    }

    #[test]
    fn bodies_upgrades_other_methods_and_garbage_go_to_hyper() {
        assert!(is_handoff(
            "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
        ));
        assert!(is_handoff("GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"));
        assert!(is_handoff(
            "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
        assert!(is_handoff("GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n"));
        assert!(is_handoff("GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n"));
        assert!(is_handoff("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
        assert!(is_handoff("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"));
        assert!(!is_handoff("GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"));
        assert!(matches!(
            HeadParser::default().parse(b"GET / HTTP/1.1\r\nHost: a"),
            Parsed::Partial
        ));
    }
}
