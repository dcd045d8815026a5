//! Request path sanitising: percent-decoding and refusal of anything that
//! could escape the content root.

use thiserror::Error;

/// Why a request path was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PathError {
    /// The path does not start with `/`.
    #[error("path must start with '/'")]
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    #[error("invalid percent-encoding")]
    BadEncoding,
    /// The decoded path is not UTF-8.
    #[error("path is not valid UTF-8")]
    NotUtf8,
    /// A `..` segment (plain or encoded).
    #[error("path contains a '..' segment")]
    DotDot,
    /// An encoded `/` (`%2f`) inside a segment.
    #[error("path contains an encoded '/' inside a segment")]
    EncodedSlash,
    /// A backslash (plain or encoded).
    #[error("path contains a backslash")]
    Backslash,
    /// A NUL byte (encoded).
    #[error("path contains a NUL byte")]
    Nul,
}

/// A request path that passed [`sanitize`]: decoded, relative segments with
/// no `.`, `..` or empty segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafePath {
    /// Decoded segments, none empty, none `.` or `..`, none containing `/`,
    /// `\` or NUL.
    pub segments: Vec<String>,
    /// Whether the raw path ended with `/` (a directory request).
    pub trailing_slash: bool,
}

impl SafePath {
    /// The decoded path, `/`-joined with a leading `/`.
    pub fn as_url_path(&self) -> String {
        let mut out = String::from("/");
        out.push_str(&self.segments.join("/"));
        if self.trailing_slash && !self.segments.is_empty() {
            out.push('/');
        }
        out
    }
}

/// Percent-decodes `input`; with `plus_as_space`, `+` becomes a space (query
/// strings).
pub fn percent_decode(input: &str, plus_as_space: bool) -> Result<Vec<u8>, PathError> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|b| hex_value(*b));
                let lo = bytes.get(i + 2).and_then(|b| hex_value(*b));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(PathError::BadEncoding),
                }
                i += 3;
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Checks and decodes a raw request path (without query string).
///
/// Each raw segment is decoded on its own, so an encoded `/` can be told
/// apart from a separator. `.` and empty segments are dropped; `..`, encoded
/// slashes, backslashes and NUL bytes are refused.
pub fn sanitize(raw: &str) -> Result<SafePath, PathError> {
    let rest = raw.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    let mut segments = Vec::new();
    for raw_seg in rest.split('/') {
        let decoded = percent_decode(raw_seg, false)?;
        if decoded.contains(&0) {
            return Err(PathError::Nul);
        }
        if decoded.contains(&b'\\') {
            return Err(PathError::Backslash);
        }
        if decoded.contains(&b'/') {
            return Err(PathError::EncodedSlash);
        }
        let seg = String::from_utf8(decoded).map_err(|_| PathError::NotUtf8)?;
        match seg.as_str() {
            ".." => return Err(PathError::DotDot),
            "" | "." => {}
            _ => segments.push(seg),
        }
    }
    Ok(SafePath {
        segments,
        trailing_slash: raw.ends_with('/'),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_decode() {
        let p = sanitize("/a/b%20c.txt").unwrap();
        assert_eq!(p.segments, vec!["a", "b c.txt"]);
        assert!(!p.trailing_slash);
        assert_eq!(p.as_url_path(), "/a/b c.txt");
        let root = sanitize("/").unwrap();
        assert!(root.segments.is_empty());
        assert!(root.trailing_slash);
        let dir = sanitize("/docs/").unwrap();
        assert_eq!(dir.as_url_path(), "/docs/");
    }

    #[test]
    fn dot_and_empty_segments_are_dropped() {
        assert_eq!(sanitize("/a//./b").unwrap().segments, vec!["a", "b"]);
    }

    #[test]
    fn traversal_is_refused() {
        assert_eq!(sanitize("/../etc/passwd"), Err(PathError::DotDot));
        assert_eq!(sanitize("/a/../../b"), Err(PathError::DotDot));
        assert_eq!(sanitize("/%2e%2e/x"), Err(PathError::DotDot));
        assert_eq!(sanitize("/%2E%2e/x"), Err(PathError::DotDot));
        assert_eq!(sanitize("/.%2e/x"), Err(PathError::DotDot));
        assert_eq!(sanitize("/a/.."), Err(PathError::DotDot));
    }

    #[test]
    fn encoded_separators_and_nul_are_refused() {
        assert_eq!(sanitize("/a/..%2fb"), Err(PathError::EncodedSlash));
        assert_eq!(sanitize("/a%2Fb"), Err(PathError::EncodedSlash));
        assert_eq!(sanitize("/a\\b"), Err(PathError::Backslash));
        assert_eq!(sanitize("/a%5cb"), Err(PathError::Backslash));
        assert_eq!(sanitize("/a%00b"), Err(PathError::Nul));
    }

    #[test]
    fn malformed_input_is_refused() {
        assert_eq!(sanitize("a/b"), Err(PathError::NotAbsolute));
        assert_eq!(sanitize("/a%2"), Err(PathError::BadEncoding));
        assert_eq!(sanitize("/a%zz"), Err(PathError::BadEncoding));
        assert_eq!(sanitize("/%ff"), Err(PathError::NotUtf8));
    }

    #[test]
    fn query_decoding_handles_plus() {
        assert_eq!(percent_decode("a+b%2C", true).unwrap(), b"a b,");
        assert_eq!(percent_decode("a+b", false).unwrap(), b"a+b");
    }
}
