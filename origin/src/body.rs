//! Response bodies: in-memory, streamed from a file, generated from a
//! repeating pattern, and truncated (a body that fails after N bytes).

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// The body type of every response the origin sends.
pub type ResponseBody = UnsyncBoxBody<Bytes, io::Error>;

/// Size of the chunks streamed from files and generated content.
const CHUNK: u64 = 64 * 1024;

/// How long a truncated body waits after its last byte before failing, so
/// that the bytes already produced are flushed to the client first.
const TRUNCATE_FLUSH_DELAY: Duration = Duration::from_millis(25);

/// An empty body.
pub fn empty() -> ResponseBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A body held in memory.
pub fn full(data: impl Into<Bytes>) -> ResponseBody {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Streams `len` bytes of the file at `path` from offset `start`. The body
/// fails if the file turns out shorter than that.
pub fn file_range(path: PathBuf, start: u64, len: u64) -> ResponseBody {
    struct State {
        path: PathBuf,
        file: Option<tokio::fs::File>,
        start: u64,
        remaining: u64,
    }
    let state = State {
        path,
        file: None,
        start,
        remaining: len,
    };
    let chunks = stream::try_unfold(state, |mut st| async move {
        if st.remaining == 0 {
            return Ok(None);
        }
        let mut file = match st.file.take() {
            Some(file) => file,
            None => {
                let mut file = tokio::fs::File::open(&st.path).await?;
                file.seek(io::SeekFrom::Start(st.start)).await?;
                file
            }
        };
        let want = usize::try_from(st.remaining.min(CHUNK)).unwrap_or(CHUNK as usize);
        let mut buf = vec![0u8; want];
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being sent",
            ));
        }
        buf.truncate(n);
        st.remaining -= n as u64;
        st.file = Some(file);
        Ok(Some((Frame::data(Bytes::from(buf)), st)))
    });
    StreamBody::new(chunks).boxed_unsync()
}

/// Produces `len` bytes of `unit` repeated endlessly, starting at offset
/// `start` of that endless repetition, in chunks.
pub fn pattern_range(unit: Arc<[u8]>, start: u64, len: u64) -> ResponseBody {
    let chunks = stream::unfold((start, len), move |(offset, remaining)| {
        let unit = Arc::clone(&unit);
        async move {
            if remaining == 0 || unit.is_empty() {
                return None;
            }
            let n = remaining.min(CHUNK);
            let data = pattern_bytes(&unit, offset, n);
            Some((
                Ok::<_, io::Error>(Frame::data(data)),
                (offset + n, remaining - n),
            ))
        }
    });
    StreamBody::new(chunks).boxed_unsync()
}

/// `len` bytes of `unit` repeated, starting at `offset`.
pub fn pattern_bytes(unit: &[u8], offset: u64, len: u64) -> Bytes {
    let len = usize::try_from(len).expect("pattern chunks are at most CHUNK bytes");
    let mut out = Vec::with_capacity(len);
    if unit.is_empty() {
        return Bytes::new();
    }
    let mut pos = usize::try_from(offset % unit.len() as u64).expect("less than unit.len()");
    while out.len() < len {
        let take = (unit.len() - pos).min(len - out.len());
        out.extend_from_slice(&unit[pos..pos + take]);
        pos = 0;
    }
    Bytes::from(out)
}

/// Lets `limit` bytes of `inner` through, then fails the body with an error
/// (if `inner` had more), so that the server aborts the connection or stream
/// and the client sees a truncated transfer.
pub fn truncate(inner: ResponseBody, limit: u64) -> ResponseBody {
    Truncated {
        inner,
        remaining: limit,
        flush_delay: None,
        done: false,
    }
    .boxed_unsync()
}

struct Truncated {
    inner: ResponseBody,
    remaining: u64,
    flush_delay: Option<Pin<Box<tokio::time::Sleep>>>,
    done: bool,
}

impl Body for Truncated {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(delay) = this.flush_delay.as_mut() {
            ready!(delay.as_mut().poll(cx));
            this.done = true;
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "body truncated by fault injection",
            ))));
        }
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            other => return Poll::Ready(other),
        };
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
        };
        let len = data.len() as u64;
        if len <= this.remaining {
            this.remaining -= len;
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        let keep = usize::try_from(this.remaining).expect("less than data.len()");
        this.remaining = 0;
        this.flush_delay = Some(Box::pin(tokio::time::sleep(TRUNCATE_FLUSH_DELAY)));
        if keep == 0 {
            // Nothing left to send: go straight to the (delayed) failure.
            return self.poll_frame(cx);
        }
        Poll::Ready(Some(Ok(Frame::data(data.slice(..keep)))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_wraps_around() {
        assert_eq!(&pattern_bytes(b"abc", 0, 7)[..], b"abcabca");
        assert_eq!(&pattern_bytes(b"abc", 4, 4)[..], b"bcab");
    }

    #[tokio::test]
    async fn truncated_body_fails_after_limit() {
        let body = truncate(full(vec![7u8; 100]), 10);
        let mut body = std::pin::pin!(body);
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first.len(), 10);
        assert!(body.frame().await.unwrap().is_err());
    }

    #[tokio::test]
    async fn short_body_is_not_truncated() {
        let body = truncate(full(vec![7u8; 5]), 10);
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(collected.len(), 5);
    }

    #[tokio::test]
    async fn pattern_range_streams_exact_length() {
        let unit: Arc<[u8]> = Arc::from(&b"0123456789"[..]);
        let body = pattern_range(unit, 3, 200_000)
            .collect()
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(body.len(), 200_000);
        assert_eq!(&body[..4], b"3456");
    }
}
