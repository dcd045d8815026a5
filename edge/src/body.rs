//! The body type of every response the edge sends, and of requests it
//! forwards: empty, one shared buffer, or a stream passed through.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

/// Any error a body can fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response or request body: no allocation for empty and buffered bodies,
/// and a boxed stream only for pass-through.
pub enum EdgeBody {
    /// No body.
    Empty,
    /// One buffer, shared with the cache (cloning `Bytes` copies nothing).
    Full(Option<Bytes>),
    /// A stream, e.g. an origin body passed through unbuffered.
    Stream(UnsyncBoxBody<Bytes, BoxError>),
}

impl EdgeBody {
    /// A body of one shared buffer.
    pub fn full(bytes: Bytes) -> EdgeBody {
        if bytes.is_empty() {
            EdgeBody::Empty
        } else {
            EdgeBody::Full(Some(bytes))
        }
    }

    /// Wraps any body as a stream.
    pub fn stream<B>(body: B) -> EdgeBody
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        EdgeBody::Stream(body.map_err(Into::into).boxed_unsync())
    }
}

impl From<&'static str> for EdgeBody {
    fn from(s: &'static str) -> EdgeBody {
        EdgeBody::full(Bytes::from_static(s.as_bytes()))
    }
}

impl From<String> for EdgeBody {
    fn from(s: String) -> EdgeBody {
        EdgeBody::full(Bytes::from(s))
    }
}

impl Body for EdgeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            EdgeBody::Empty => Poll::Ready(None),
            EdgeBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            EdgeBody::Stream(s) => Pin::new(s).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            EdgeBody::Empty => true,
            EdgeBody::Full(data) => data.is_none(),
            EdgeBody::Stream(s) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            EdgeBody::Empty => SizeHint::with_exact(0),
            EdgeBody::Full(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            EdgeBody::Stream(s) => s.size_hint(),
        }
    }
}
