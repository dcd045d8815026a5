//! Responses on the wire (RFC 9112): status line, fields and framing in one
//! buffer, then the body; a body of one buffer goes out with the head in a
//! single vectored write, and a stored body kept in a file goes out from the
//! kernel with `sendfile(2)` when the connection is plain TCP.

use std::io::{self, IoSlice};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, StatusCode, Version, header};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::sendfile::{self, Sink};
use crate::body::EdgeBody;
use crate::body_file::BodyFile;
use crate::proxy::{Answer, EdgeFields};
use crate::stored_headers::StoredHeaders;

/// How the body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client, length unknown).
    UntilClose,
    /// No body can follow (HEAD, 1xx, 204, 304).
    None,
}

/// What the request said that shapes the answer's framing.
#[derive(Debug, Clone, Copy)]
pub struct Exchange {
    /// The request was HEAD: fields as for GET, no body.
    pub head: bool,
    /// The request's version (the answer is sent in it).
    pub version: Version,
    /// Whether the connection stays open; the writer turns it off when the
    /// answer's framing needs a close.
    pub keep_alive: bool,
}

/// Writes answers on one connection, reusing its head buffer.
#[derive(Default)]
pub struct Writer {
    head: Vec<u8>,
}

impl Writer {
    /// Writes `answer` whole; returns whether the connection may carry
    /// another request.
    pub async fn write<S>(
        &mut self,
        io: &mut S,
        answer: Answer,
        exchange: Exchange,
    ) -> io::Result<bool>
    where
        S: Sink,
    {
        let Answer {
            response,
            stored,
            edge,
        } = answer;
        let body_file = stored
            .as_deref()
            .and_then(|object| object.body_file.as_deref());
        let stored = stored.as_deref().map(|object| &object.headers);
        let (parts, body) = response.into_parts();
        let fields = Fields {
            stored,
            added: &parts.headers,
            edge: edge.as_ref(),
        };
        let (framing, keep_alive) = self.encode_head(parts.status, &fields, &body, exchange);
        let sends_body = !exchange.head && framing != Framing::None;
        let complete = match body {
            _ if !sends_body => {
                io.write_all(&self.head).await?;
                true
            }
            EdgeBody::Empty | EdgeBody::Full(None) => {
                self.write_one(io, &Bytes::new(), None, framing).await?
            }
            EdgeBody::Full(Some(data)) => self.write_one(io, &data, body_file, framing).await?,
            EdgeBody::Stream(stream) => {
                io.write_all(&self.head).await?;
                stream_body(io, EdgeBody::Stream(stream), framing).await?
            }
        };
        io.flush().await?;
        Ok(keep_alive && complete)
    }

    /// The head plus a body of one buffer, in one vectored write or, for a
    /// body in `file` on plain TCP, with `sendfile(2)`; returns whether the
    /// body matched its framing.
    async fn write_one<S>(
        &mut self,
        io: &mut S,
        data: &Bytes,
        file: Option<&BodyFile>,
        framing: Framing,
    ) -> io::Result<bool>
    where
        S: Sink,
    {
        match framing {
            Framing::Chunked => {
                if !data.is_empty() {
                    self.head
                        .extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                }
                let end: &[u8] = if data.is_empty() {
                    b"0\r\n\r\n"
                } else {
                    b"\r\n0\r\n\r\n"
                };
                let mut bufs = [
                    IoSlice::new(&self.head),
                    IoSlice::new(data),
                    IoSlice::new(end),
                ];
                write_all_vectored(io, &mut bufs).await?;
                Ok(true)
            }
            Framing::Length(len) => {
                // A declared length shorter than the body: send what was declared.
                let sent = data.len().min(usize::try_from(len).unwrap_or(usize::MAX));
                let body = &data[..sent];
                let from_file = file.and_then(|f| Some((f, f.offset_of(body)?)));
                if let (Some(conn), Some((file, offset))) = (io.plain(), from_file) {
                    sendfile::send(conn, &self.head, file, offset, sent).await?;
                    return Ok(data.len() as u64 == len);
                }
                let mut bufs = [IoSlice::new(&self.head), IoSlice::new(body)];
                write_all_vectored(io, &mut bufs).await?;
                Ok(data.len() as u64 == len)
            }
            Framing::UntilClose | Framing::None => {
                let mut bufs = [IoSlice::new(&self.head), IoSlice::new(data)];
                write_all_vectored(io, &mut bufs).await?;
                Ok(true)
            }
        }
    }

    /// Writes the status line and fields into the head buffer, then the
    /// framing fields, Date when the answer has none, and Connection;
    /// returns the framing and whether the connection stays open.
    fn encode_head(
        &mut self,
        status: StatusCode,
        fields: &Fields<'_>,
        body: &EdgeBody,
        exchange: Exchange,
    ) -> (Framing, bool) {
        let out = &mut self.head;
        out.clear();
        out.extend_from_slice(match exchange.version {
            Version::HTTP_10 => b"HTTP/1.0 ",
            _ => b"HTTP/1.1 ",
        });
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
        out.extend_from_slice(b"\r\n");
        // One pass over the fields: each is written, and the few that
        // decide framing and connection handling are noted on the way.
        let mut noted = Noted {
            stated_length: None,
            dated: false,
            keep_alive: exchange.keep_alive,
        };
        if let Some(stored) = fields.stored {
            let wire = stored.write_wire(out);
            noted.stated_length = wire.content_length.map(parse_length);
            noted.dated = wire.dated;
            noted.keep_alive &= !wire.close;
        }
        for (name, value) in fields.added {
            noted.write(out, name, value.as_bytes());
        }
        if let Some(edge) = fields.edge {
            edge.each(|name, value| field(out, name.as_str().as_bytes(), value));
        }
        let Noted {
            stated_length,
            dated,
            mut keep_alive,
        } = noted;
        let framing = framing(status, stated_length, body, exchange);
        if stated_length.is_none() {
            match framing {
                Framing::Length(len) => {
                    // Rare: stored objects and origin answers state it.
                    field(
                        out,
                        b"content-length",
                        itoa::Buffer::new().format(len).as_bytes(),
                    );
                }
                Framing::Chunked => field(out, b"transfer-encoding", b"chunked"),
                Framing::UntilClose | Framing::None => {}
            }
        }
        if !dated {
            field(out, b"date", &date_now());
        }
        keep_alive &= framing != Framing::UntilClose;
        if !keep_alive {
            field(out, b"connection", b"close");
        } else if exchange.version == Version::HTTP_10 {
            field(out, b"connection", b"keep-alive");
        }
        out.extend_from_slice(b"\r\n");
        (framing, keep_alive)
    }
}

/// What the writer notes while copying an answer's fields.
struct Noted {
    /// The first Content-Length.
    stated_length: Option<u64>,
    /// A Date field was written.
    dated: bool,
    /// No `Connection: close` so far.
    keep_alive: bool,
}

impl Noted {
    /// Writes one field of the answer, noting what framing needs; the
    /// writer's own framing and connection fields replace the answer's.
    fn write(&mut self, out: &mut Vec<u8>, name: &HeaderName, value: &[u8]) {
        if name == header::CONNECTION {
            self.keep_alive &= !value.eq_ignore_ascii_case(b"close");
            return;
        }
        if name == header::TRANSFER_ENCODING {
            return;
        }
        if name == header::CONTENT_LENGTH && self.stated_length.is_none() {
            self.stated_length = Some(parse_length(value));
        }
        self.dated |= name == header::DATE;
        field(out, name.as_str().as_bytes(), value);
    }
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The header section: stored fields first, then the edge's own (those
/// in the response's map, then those kept as values).
struct Fields<'a> {
    stored: Option<&'a StoredHeaders>,
    added: &'a HeaderMap,
    edge: Option<&'a EdgeFields>,
}

/// A Content-Length value; one that is not a number is taken as 0 (the
/// handler never makes one: stored and origin values were checked when
/// they arrived).
fn parse_length(value: &[u8]) -> u64 {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 19 {
        return 0;
    }
    digits
        .iter()
        .try_fold(0u64, |n, d| match d {
            b'0'..=b'9' => Some(n * 10 + u64::from(d - b'0')),
            _ => None,
        })
        .unwrap_or(0)
}

fn framing(status: StatusCode, stated: Option<u64>, body: &EdgeBody, ex: Exchange) -> Framing {
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Framing::None;
    }
    if let Some(len) = stated {
        return Framing::Length(len);
    }
    match body.size_hint().exact() {
        Some(len) => Framing::Length(len),
        None if ex.head => Framing::None,
        None if ex.version == Version::HTTP_11 => Framing::Chunked,
        None => Framing::UntilClose,
    }
}

/// Copies a streamed body out as it arrives; returns whether it ended as
/// its framing said (else the connection must close).
async fn stream_body<S>(io: &mut S, mut body: EdgeBody, framing: Framing) -> io::Result<bool>
where
    S: AsyncWrite + Unpin,
{
    let mut sent = 0u64;
    loop {
        let frame = match body.frame().await {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "response body failed mid-stream");
                return Ok(false);
            }
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        sent += data.len() as u64;
        match framing {
            Framing::Chunked => {
                let size = format!("{:x}\r\n", data.len());
                let mut bufs = [
                    IoSlice::new(size.as_bytes()),
                    IoSlice::new(&data),
                    IoSlice::new(b"\r\n"),
                ];
                write_all_vectored(io, &mut bufs).await?;
            }
            Framing::Length(len) if sent > len => {
                let over = (sent - len) as usize;
                io.write_all(&data[..data.len() - over]).await?;
                return Ok(false);
            }
            _ => io.write_all(&data).await?,
        }
        // Streamed parts go out as they come (a streaming miss).
        io.flush().await?;
    }
    match framing {
        Framing::Chunked => {
            io.write_all(b"0\r\n\r\n").await?;
            Ok(true)
        }
        Framing::Length(len) => Ok(sent == len),
        Framing::UntilClose | Framing::None => Ok(true),
    }
}

async fn write_all_vectored<S>(io: &mut S, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    while !bufs.is_empty() {
        let n = io.write_vectored(bufs).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

thread_local! {
    /// The `Date` field for answers without one, formatted once a second
    /// per worker thread: (the second, its IMF-fixdate text).
    static DATE: std::cell::RefCell<(u64, [u8; 29])> = const { std::cell::RefCell::new((u64::MAX, [b' '; 29])) };
}

fn date_now() -> [u8; 29] {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(at, text)| {
        if *at != secs {
            let formatted = httpdate::fmt_http_date(now);
            let n = formatted.len().min(text.len());
            text[..n].copy_from_slice(&formatted.as_bytes()[..n]);
            *at = secs;
        }
        *text
    })
}

#[cfg(test)]
mod tests {
    use super::parse_length;

    #[test]
    fn content_length_values() {
        assert_eq!(parse_length(b"1024"), 1024);
        assert_eq!(parse_length(b" 7 "), 7);
        assert_eq!(parse_length(b"18446744073709551615"), 0, "20 digits");
        assert_eq!(
            parse_length(b"9999999999999999999"),
            9_999_999_999_999_999_999
        );
        assert_eq!(parse_length(b"12a"), 0);
        assert_eq!(parse_length(b"-1"), 0);
        assert_eq!(parse_length(b""), 0);
    }
}
