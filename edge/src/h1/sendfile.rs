//! A response head and a stored body file on a plain TCP connection: the
//! head is sent with `MSG_MORE` so that it leaves in the same segment as
//! the body's first bytes, and the body goes out with `sendfile(2)` from
//! its sealed memory file (no copy of the body into the socket).

use std::io;
use std::time::Duration;

use rustix::net::SendFlags;
use tokio::io::{AsyncWrite, Interest};
use tokio::net::TcpStream;

use crate::body_file::BodyFile;
use crate::paced::{Paced, stalled};

/// A connection an answer is written on. A plain TCP connection exposes
/// its socket, so a body file can be sent from the kernel; others (TLS)
/// are written through `AsyncWrite` only.
pub trait Sink: AsyncWrite + Unpin {
    /// The plain TCP connection the bytes go to unchanged, if there is one.
    fn plain(&self) -> Option<&Paced<TcpStream>> {
        None
    }
}

impl Sink for Paced<TcpStream> {
    fn plain(&self) -> Option<&Paced<TcpStream>> {
        Some(self)
    }
}

impl<S> Sink for tokio_rustls::server::TlsStream<S> where
    S: tokio::io::AsyncRead + AsyncWrite + Unpin
{
}

/// Sends `head`, then `len` bytes of `file` from `offset`; each step may
/// wait for the client at most the connection's send timeout.
pub async fn send(
    conn: &Paced<TcpStream>,
    head: &[u8],
    file: &BodyFile,
    offset: u64,
    len: usize,
) -> io::Result<()> {
    let (tcp, timeout) = (conn.tcp(), conn.timeout());
    let mut written = 0;
    while written < head.len() {
        let n = paced(
            timeout,
            tcp.async_io(Interest::WRITABLE, || {
                rustix::net::send(tcp, &head[written..], SendFlags::MORE | SendFlags::NOSIGNAL)
                    .map_err(io::Error::from)
            }),
        )
        .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        written += n;
    }
    let end = offset + len as u64;
    let mut at = offset;
    while at < end {
        let remaining = usize::try_from(end - at).unwrap_or(usize::MAX);
        let n = paced(
            timeout,
            tcp.async_io(Interest::WRITABLE, || {
                rustix::fs::sendfile(tcp, file, Some(&mut at), remaining).map_err(io::Error::from)
            }),
        )
        .await?;
        if n == 0 {
            // A sealed file cannot shrink; a zero is the socket refusing.
            return Err(io::ErrorKind::WriteZero.into());
        }
    }
    crate::body_file::record_sent(len as u64);
    Ok(())
}

/// `step` (one wait for the socket and one write), failed with the send
/// timeout's error when the client reads nothing for `timeout`.
async fn paced<T>(timeout: Duration, step: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(timeout, step)
        .await
        .unwrap_or_else(|_| Err(stalled(timeout)))
}
