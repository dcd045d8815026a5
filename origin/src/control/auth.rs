//! The purge API's bearer token: where it comes from, and a constant-time
//! check. There is never a default token.

use std::path::Path;

use sha2::{Digest, Sha256};

/// Environment variable holding the token.
pub const TOKEN_ENV: &str = "EDGECACHE_PURGE_TOKEN";

/// The operators' bearer token.
#[derive(Clone)]
pub struct PurgeToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for PurgeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PurgeToken(..)")
    }
}

/// Why the token could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token file cannot be read.
    #[error("cannot read purge token file {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// The token file holds no token.
    #[error("purge token file {0} is empty")]
    Empty(String),
}

impl PurgeToken {
    /// A token from its text (surrounding whitespace ignored); `None` when
    /// it is empty.
    pub fn new(text: &str) -> Option<PurgeToken> {
        let text = text.trim();
        (!text.is_empty()).then(|| PurgeToken {
            digest: Sha256::digest(text.as_bytes()).into(),
        })
    }

    /// The token from `file` if given, else from `EDGECACHE_PURGE_TOKEN`;
    /// `None` when neither is set (the purge API then answers 503).
    pub fn load(file: Option<&Path>) -> Result<Option<PurgeToken>, TokenError> {
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|error| TokenError::Read {
                path: path.display().to_string(),
                error,
            })?;
            return PurgeToken::new(&text)
                .map(Some)
                .ok_or_else(|| TokenError::Empty(path.display().to_string()));
        }
        Ok(std::env::var(TOKEN_ENV)
            .ok()
            .and_then(|t| PurgeToken::new(&t)))
    }

    /// Whether an `Authorization` header value carries this token as a
    /// bearer token. The comparison takes the same time wherever the first
    /// difference is (it compares fixed-size digests).
    pub fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        let Some(value) = authorization.and_then(|v| std::str::from_utf8(v).ok()) else {
            return false;
        };
        let Some((scheme, token)) = value.trim().split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return false;
        }
        let given: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
        let diff = given
            .iter()
            .zip(self.digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        diff == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        let t = PurgeToken::new(" s3cret\n").unwrap();
        assert!(t.accepts(Some(b"Bearer s3cret")));
        assert!(t.accepts(Some(b"bearer s3cret")));
        assert!(!t.accepts(Some(b"Bearer s3cre")));
        assert!(!t.accepts(Some(b"Basic s3cret")));
        assert!(!t.accepts(Some(b"s3cret")));
        assert!(!t.accepts(None));
        assert!(PurgeToken::new("  ").is_none());
    }
}
