//! A body that is still arriving from the origin, shared by every client of
//! a streaming miss: each reads it from the start, and waits at its end for
//! the next chunk.

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use http_body::Frame;
use http_body_util::StreamBody;
use tokio::sync::watch;

use crate::body::{BoxError, EdgeBody};
use crate::body_file::BodyFile;

/// The chunks received so far, and how the body ended (if it has).
#[derive(Default)]
struct Received {
    chunks: Vec<Bytes>,
    len: usize,
    end: Option<Result<(), String>>,
}

/// A growing body: the fill appends, readers follow.
pub struct Growing {
    received: Mutex<Received>,
    version: watch::Sender<u64>,
}

/// A reader failed because the origin's body broke off.
#[derive(Debug, thiserror::Error)]
#[error("origin body broke off: {0}")]
pub struct BrokenBody(String);

impl Growing {
    /// An empty growing body.
    pub fn new() -> Arc<Growing> {
        Arc::new(Growing {
            received: Mutex::new(Received::default()),
            version: watch::channel(0).0,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Received> {
        self.received.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a chunk and wakes the readers.
    pub fn push(&self, chunk: Bytes) {
        {
            let mut r = self.lock();
            r.len += chunk.len();
            r.chunks.push(chunk);
        }
        self.version.send_modify(|v| *v += 1);
    }

    /// Ends the body: complete, or broken (readers then fail, so no client
    /// takes a short body for a complete one).
    pub fn finish(&self, result: Result<(), String>) {
        self.lock().end = Some(result);
        self.version.send_modify(|v| *v += 1);
    }

    /// The whole body in one buffer for the store: a sealed memory file
    /// when it is at least `file_threshold` bytes, else copied once into an
    /// exact-size buffer (a chunk may be a slice of a larger read buffer,
    /// which must not stay alive with the object).
    pub fn stored_body(&self, file_threshold: u64) -> (Bytes, Option<Arc<BodyFile>>) {
        let r = self.lock();
        if let Some(file) = crate::body_file::for_body(&r.chunks, r.len, file_threshold) {
            return (file.bytes(), Some(file));
        }
        let mut out = BytesMut::with_capacity(r.len);
        for chunk in &r.chunks {
            out.extend_from_slice(chunk);
        }
        (out.freeze(), None)
    }

    /// A response body that yields every chunk from the first, following
    /// the fill until it ends.
    pub fn reader(self: &Arc<Self>) -> EdgeBody {
        let rx = self.version.subscribe();
        let state = (self.clone(), 0usize, rx, false);
        let stream =
            futures_util::stream::unfold(state, |(growing, next, mut rx, failed)| async move {
                if failed {
                    return None;
                }
                loop {
                    rx.borrow_and_update();
                    {
                        let r = growing.lock();
                        if let Some(chunk) = r.chunks.get(next) {
                            let frame = Ok::<_, BoxError>(Frame::data(chunk.clone()));
                            drop(r);
                            return Some((frame, (growing, next + 1, rx, false)));
                        }
                        match &r.end {
                            Some(Ok(())) => return None,
                            Some(Err(why)) => {
                                let err: BoxError = Box::new(BrokenBody(why.clone()));
                                drop(r);
                                return Some((Err(err), (growing, next, rx, true)));
                            }
                            None => {}
                        }
                    }
                    if rx.changed().await.is_err() {
                        return None;
                    }
                }
            });
        EdgeBody::stream(StreamBody::new(stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn readers_follow_the_fill_from_the_start() {
        let g = Growing::new();
        g.push(Bytes::from_static(b"ab"));
        let early = g.reader();
        let fill = {
            let g = g.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                g.push(Bytes::from_static(b"cd"));
                g.finish(Ok(()));
            })
        };
        let body = early.collect().await.expect("complete body").to_bytes();
        assert_eq!(&body[..], b"abcd");
        fill.await.expect("fill task");
        let late = g.reader().collect().await.expect("late reader").to_bytes();
        assert_eq!(&late[..], b"abcd");
        assert_eq!(&g.stored_body(0).0[..], b"abcd");
    }

    #[tokio::test]
    async fn a_broken_fill_fails_the_readers() {
        let g = Growing::new();
        g.push(Bytes::from_static(b"ab"));
        g.finish(Err("reset".into()));
        assert!(g.reader().collect().await.is_err());
    }
}
