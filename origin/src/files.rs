//! Static files under the content root: resolution that never leaves the
//! root, content-hash ETags cached by (path, mtime, length), and the
//! representation of a file.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::path::SafePath;
use crate::representation::Source;

/// Files up to this size are read into memory; larger ones are streamed.
pub const SMALL_FILE: u64 = 1024 * 1024;

/// The name of the headers file, which is never served.
pub const HEADERS_FILE: &str = "_headers";

/// A file found under the root, ready to be served.
#[derive(Debug, Clone)]
pub struct FileEntry {
    /// The path as requested (after `index.html` resolution), for the
    /// Content-Type.
    pub requested: PathBuf,
    /// Length in bytes.
    pub len: u64,
    /// Modification time.
    pub modified: SystemTime,
    /// Strong ETag, quoted.
    pub etag: String,
    /// The bytes.
    pub source: Source,
}

#[derive(Debug, Clone)]
struct CachedHash {
    modified: SystemTime,
    len: u64,
    etag: String,
}

/// The content root and the cache of file hashes.
#[derive(Debug)]
pub struct FileStore {
    root: PathBuf,
    hashes: Mutex<HashMap<PathBuf, CachedHash>>,
}

/// A strong ETag from content bytes: the first 16 bytes of SHA-256, hex, quoted.
pub fn etag_of(bytes: &[u8]) -> String {
    etag_from_digest(&Sha256::digest(bytes))
}

/// Formats a digest as a quoted strong ETag of its first 16 bytes.
pub fn etag_from_digest(digest: &[u8]) -> String {
    let mut s = String::with_capacity(34);
    s.push('"');
    for b in digest.iter().take(16) {
        s.push_str(&format!("{b:02x}"));
    }
    s.push('"');
    s
}

fn hash_file(path: &Path) -> io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(etag_from_digest(&hasher.finalize()))
}

impl FileStore {
    /// A store for `root`, which must be an existing directory.
    pub fn new(root: &Path) -> io::Result<FileStore> {
        let root = std::fs::canonicalize(root)?;
        if !std::fs::metadata(&root)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            ));
        }
        Ok(FileStore {
            root,
            hashes: Mutex::new(HashMap::new()),
        })
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Canonicalizes `candidate` and checks it stays inside the root;
    /// `None` when it does not exist or escapes.
    async fn confine(&self, candidate: &Path) -> io::Result<Option<(PathBuf, std::fs::Metadata)>> {
        let canonical = match tokio::fs::canonicalize(candidate).await {
            Ok(p) => p,
            // Missing, not a directory, name too long, no permission: all
            // look the same from outside.
            Err(e) => {
                tracing::debug!(path = %candidate.display(), error = %e, "cannot resolve");
                return Ok(None);
            }
        };
        if !canonical.starts_with(&self.root) {
            tracing::warn!(path = %candidate.display(), "refusing a path that resolves outside the root");
            return Ok(None);
        }
        let meta = tokio::fs::metadata(&canonical).await?;
        Ok(Some((canonical, meta)))
    }

    /// Finds the file for a request path: `index.html` for directories,
    /// `None` for anything missing, outside the root, or the headers file.
    pub async fn lookup(&self, path: &SafePath) -> io::Result<Option<FileEntry>> {
        let mut requested = self.root.clone();
        requested.extend(&path.segments);
        if path.segments.is_empty() || path.trailing_slash {
            requested.push("index.html");
        }
        let Some((mut canonical, mut meta)) = self.confine(&requested).await? else {
            return Ok(None);
        };
        if meta.is_dir() {
            requested.push("index.html");
            match self.confine(&requested).await? {
                Some(found) => (canonical, meta) = found,
                None => return Ok(None),
            }
        }
        if !meta.is_file() || canonical == self.root.join(HEADERS_FILE) {
            return Ok(None);
        }
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        if meta.len() <= SMALL_FILE {
            let bytes = Bytes::from(tokio::fs::read(&canonical).await?);
            let len = bytes.len() as u64;
            let etag = match self.cached(&canonical, modified, len) {
                Some(etag) => etag,
                None => {
                    let etag = etag_of(&bytes);
                    self.remember(canonical, modified, len, etag.clone());
                    etag
                }
            };
            return Ok(Some(FileEntry {
                requested,
                len,
                modified,
                etag,
                source: Source::Bytes(bytes),
            }));
        }
        let len = meta.len();
        let etag = match self.cached(&canonical, modified, len) {
            Some(etag) => etag,
            None => {
                let target = canonical.clone();
                let etag = tokio::task::spawn_blocking(move || hash_file(&target))
                    .await
                    .map_err(io::Error::other)??;
                self.remember(canonical.clone(), modified, len, etag.clone());
                etag
            }
        };
        Ok(Some(FileEntry {
            requested,
            len,
            modified,
            etag,
            source: Source::File(canonical),
        }))
    }

    fn cached(&self, path: &Path, modified: SystemTime, len: u64) -> Option<String> {
        let hashes = self.hashes.lock().unwrap_or_else(|e| e.into_inner());
        hashes
            .get(path)
            .filter(|c| c.modified == modified && c.len == len)
            .map(|c| c.etag.clone())
    }

    fn remember(&self, path: PathBuf, modified: SystemTime, len: u64, etag: String) {
        let mut hashes = self.hashes.lock().unwrap_or_else(|e| e.into_inner());
        hashes.insert(
            path,
            CachedHash {
                modified,
                len,
                etag,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::sanitize;

    fn temp_root(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("origin-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("index.html"), "home").unwrap();
        std::fs::write(dir.join("sub/index.html"), "sub home").unwrap();
        std::fs::write(dir.join("_headers"), "/*\n  X-A: 1\n").unwrap();
        dir
    }

    #[tokio::test]
    async fn resolves_index_and_hides_headers_file() {
        let dir = temp_root("index");
        let store = FileStore::new(&dir).unwrap();
        let root = store
            .lookup(&sanitize("/").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(root.len, 4);
        assert_eq!(root.etag, etag_of(b"home"));
        let sub = store
            .lookup(&sanitize("/sub").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(sub.len, 8);
        assert!(sub.requested.ends_with("sub/index.html"));
        assert!(
            store
                .lookup(&sanitize("/_headers").unwrap())
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .lookup(&sanitize("/missing").unwrap())
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .lookup(&sanitize("/index.html/x").unwrap())
                .await
                .unwrap()
                .is_none()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn symlinks_outside_the_root_are_not_found() {
        let dir = temp_root("symlink");
        let outside = dir.with_extension("outside");
        std::fs::write(&outside, "secret").unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("leak.txt")).unwrap();
        std::os::unix::fs::symlink(dir.join("index.html"), dir.join("ok.html")).unwrap();
        let store = FileStore::new(&dir).unwrap();
        assert!(
            store
                .lookup(&sanitize("/leak.txt").unwrap())
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .lookup(&sanitize("/ok.html").unwrap())
                .await
                .unwrap()
                .is_some()
        );
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(&outside);
    }
}
