//! The send timeout: a client connection whose writes make no progress for
//! `send_timeout` fails with `TimedOut` (nginx's `send_timeout`, Varnish's
//! `send_timeout`). A client that stops reading would otherwise hold its
//! connection, its answer and the object behind it for as long as it likes.
//!
//! The timer runs only while a write waits on a full socket buffer, and
//! restarts at every byte accepted: a slow download that keeps moving is
//! never cut, however long it takes.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// A client connection with a send timeout on its writes; reads pass
/// through untouched.
pub struct Paced<S> {
    inner: S,
    timeout: Duration,
    /// Armed while a write waits; made on the first wait, reset after.
    stall: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl<S> Paced<S> {
    /// Wraps `inner`; a write that makes no progress for `timeout` fails.
    pub fn new(inner: S, timeout: Duration) -> Paced<S> {
        Paced {
            inner,
            timeout,
            stall: None,
            armed: false,
        }
    }

    /// The longest a write may make no progress.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// What a write that returned `poll` means once the timeout is counted:
    /// progress (or an error) disarms it, a wait arms it, and a wait past it
    /// is an error.
    fn pace<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.armed = false;
            return poll;
        }
        let timeout = self.timeout;
        let was_armed = std::mem::replace(&mut self.armed, true);
        let stall = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if !was_armed {
            stall.as_mut().reset(Instant::now() + timeout);
        }
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.armed = false;
                Poll::Ready(Err(stalled(self.timeout)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The error of a send that made no progress for `timeout`.
pub fn stalled(timeout: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "the client read nothing for {} ms (send_timeout)",
            timeout.as_millis()
        ),
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for Paced<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Paced<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.pace(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.pace(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.pace(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.pace(cx, poll)
    }
}

impl Paced<TcpStream> {
    /// The socket, for writes made around `AsyncWrite` (sendfile), which
    /// apply [`Paced::timeout`] themselves.
    pub fn tcp(&self) -> &TcpStream {
        &self.inner
    }
}
