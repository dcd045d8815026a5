//! Large stored bodies in sealed memory files.
//!
//! A body at or above the configured size is written once into its own
//! `memfd`, sealed against any later write, resize or reseal, and mapped
//! read-only. Every reader gets a [`Bytes`] view of that mapping (HTTP/2,
//! TLS, ranges, revalidation: all unchanged), and the HTTP/1.1 writer on a
//! plain TCP connection sends it with `sendfile(2)`: the kernel attaches
//! the file's pages to the socket instead of copying a quarter megabyte
//! into it on every hit. The seals are what make both safe: the pages can
//! never change under a reader or under a send still queued in the kernel.
//!
//! The mapping is populated at once, so the body counts in the process's
//! resident memory like a heap body would. Each file costs one descriptor
//! and one mapping; when the process runs out of either, the body stays on
//! the heap (the node keeps working, it only copies on send).

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use rustix::fs::{MemfdFlags, SealFlags};

/// Files alive in this process (one per stored large body).
static LIVE_FILES: AtomicU64 = AtomicU64::new(0);
/// Bodies that should have gone to a file but stayed on the heap.
static FALLBACKS: AtomicU64 = AtomicU64::new(0);
/// Body bytes sent from files with `sendfile(2)`.
static SENT_BYTES: AtomicU64 = AtomicU64::new(0);

/// This process's body-file counters, for `/_edge/stats` and `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    /// Sealed body files held now.
    pub files: u64,
    /// Large bodies kept on the heap because no file could be made.
    pub fallbacks: u64,
    /// Body bytes sent from files without copying them into the socket.
    pub sent_bytes: u64,
}

/// The counters now.
pub fn stats() -> Stats {
    Stats {
        files: LIVE_FILES.load(Ordering::Relaxed),
        fallbacks: FALLBACKS.load(Ordering::Relaxed),
        sent_bytes: SENT_BYTES.load(Ordering::Relaxed),
    }
}

/// Counts `len` body bytes sent from a file.
pub fn record_sent(len: u64) {
    SENT_BYTES.fetch_add(len, Ordering::Relaxed);
}

/// Raises this process's soft limit on open descriptors to its hard limit
/// (each connection and each body file holds one); returns the limit now
/// in force, `None` when unlimited.
pub fn raise_descriptor_limit() -> io::Result<Option<u64>> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        )?;
    }
    Ok(limit.maximum)
}

/// A body in a sealed, read-only mapped memory file.
#[derive(Debug)]
pub struct BodyFile {
    file: File,
    map: memmap2::Mmap,
}

impl BodyFile {
    /// Writes `chunks` (`len` bytes in all) into a new sealed memory file.
    pub fn from_chunks(chunks: &[Bytes], len: usize) -> io::Result<Arc<BodyFile>> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an empty body needs no file",
            ));
        }
        let fd = rustix::fs::memfd_create(
            "edgecache-body",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        let mut file = File::from(fd);
        let mut written = 0usize;
        for chunk in chunks {
            file.write_all(chunk)?;
            written += chunk.len();
        }
        if written != len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("body of {written} bytes, {len} expected"),
            ));
        }
        rustix::fs::fcntl_add_seals(
            &file,
            SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL,
        )?;
        // SAFETY: the file is sealed against writes, truncation and growth
        // (and against removing those seals), so the mapped bytes can never
        // change or disappear while the mapping lives.
        let map = unsafe { memmap2::MmapOptions::new().populate().map(&file)? };
        LIVE_FILES.fetch_add(1, Ordering::Relaxed);
        Ok(Arc::new(BodyFile { file, map }))
    }

    /// The whole body as a buffer that shares the mapping (no copy).
    pub fn bytes(self: &Arc<Self>) -> Bytes {
        Bytes::from_owner(View(self.clone()))
    }

    /// Where `data` starts in the file, if it lies wholly inside it (a view
    /// of the whole body or a slice of it, as a range answer takes).
    pub fn offset_of(&self, data: &[u8]) -> Option<u64> {
        let base = self.map.as_ptr() as usize;
        let start = data.as_ptr() as usize;
        let inside = start >= base && start + data.len() <= base + self.map.len();
        (inside && !data.is_empty()).then(|| (start - base) as u64)
    }
}

impl AsFd for BodyFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl Drop for BodyFile {
    fn drop(&mut self) {
        LIVE_FILES.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A [`Bytes`] owner that keeps the file and its mapping alive.
struct View(Arc<BodyFile>);

impl AsRef<[u8]> for View {
    fn as_ref(&self) -> &[u8] {
        &self.0.map
    }
}

/// The sealed file for a body of `len` bytes in `chunks`, when it is at
/// least `file_threshold` bytes (`0`: never) and a file can be made; the
/// caller keeps the body on the heap otherwise.
pub fn for_body(chunks: &[Bytes], len: usize, file_threshold: u64) -> Option<Arc<BodyFile>> {
    if file_threshold == 0 || (len as u64) < file_threshold {
        return None;
    }
    match BodyFile::from_chunks(chunks, len) {
        Ok(file) => Some(file),
        Err(e) => {
            FALLBACKS.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, len, "large body kept on the heap: no memory file");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks() -> Vec<Bytes> {
        vec![Bytes::from(vec![b'a'; 5000]), Bytes::from(vec![b'b'; 3000])]
    }

    #[test]
    fn a_large_body_goes_to_a_sealed_file_with_the_same_bytes() {
        let file = for_body(&chunks(), 8000, 4096).expect("a file above the threshold");
        let body = file.bytes();
        assert_eq!(body.len(), 8000);
        assert!(body[..5000].iter().all(|b| *b == b'a'));
        assert!(body[5000..].iter().all(|b| *b == b'b'));
        assert_eq!(file.offset_of(&body), Some(0));
        assert_eq!(file.offset_of(&body.slice(100..200)), Some(100));
        assert_eq!(file.offset_of(b"elsewhere"), None);
        // The seals refuse any change to the bytes behind the mapping.
        let mut handle = File::from(rustix::io::dup(file.as_fd()).expect("dup"));
        assert!(handle.write_all(b"x").is_err());
        assert!(handle.set_len(10).is_err());
    }

    #[test]
    fn small_bodies_and_a_zero_threshold_get_no_file() {
        assert!(for_body(&chunks(), 8000, 8001).is_none());
        assert!(for_body(&chunks(), 8000, 0).is_none());
        assert!(for_body(&chunks(), 8000, 8000).is_some());
    }

    #[test]
    fn a_body_shorter_than_declared_gets_no_file() {
        assert!(BodyFile::from_chunks(&chunks(), 9000).is_err());
        assert!(BodyFile::from_chunks(&[], 0).is_err());
    }

    #[test]
    fn the_file_lives_while_a_view_does() {
        let file = for_body(&chunks(), 8000, 1).expect("file");
        let body = file.bytes();
        let live = stats().files;
        assert!(live >= 1);
        drop(file);
        // The view still reads the mapping.
        assert_eq!(body[7999], b'b');
    }
}
