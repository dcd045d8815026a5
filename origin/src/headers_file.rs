//! The `_headers` file (Netlify / Cloudflare Pages format): path patterns
//! followed by indented `Name: value` lines, applied to matching responses.
//!
//! ```text
//! # comment
//! /assets/*
//!   Cache-Control: public, max-age=31536000, immutable
//! /index.html
//!   Surrogate-Key: home
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use thiserror::Error;

/// Why a `_headers` file was refused.
#[derive(Debug, Error)]
pub enum HeadersFileError {
    /// A line that does not follow the format.
    #[error("invalid headers file {}:{line}: {message}", file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        message: String,
    },
    /// The file exists but cannot be read.
    #[error("cannot read headers file {}: {error}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
}

/// One block: a path pattern and the headers it sets.
#[derive(Debug, Clone)]
struct Rule {
    pattern: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// Parsed `_headers` rules, in file order.
#[derive(Debug, Clone, Default)]
pub struct HeaderRules {
    rules: Vec<Rule>,
}

/// Framing and hop-by-hop headers, which cannot come from `_headers`.
const FORBIDDEN: [&str; 9] = [
    "content-length",
    "transfer-encoding",
    "content-range",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

impl HeaderRules {
    /// Parses the text of a `_headers` file; `file` only names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<HeaderRules, HeadersFileError> {
        let mut rules: Vec<Rule> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let invalid = |message: String| HeadersFileError::Invalid {
                file: file.to_path_buf(),
                line: index + 1,
                message,
            };
            let line = raw.trim_end();
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if trimmed.len() == line.len() {
                if !trimmed.starts_with('/') {
                    return Err(invalid(format!(
                        "expected a path pattern starting with '/', got {trimmed:?}"
                    )));
                }
                if trimmed.contains(char::is_whitespace) {
                    return Err(invalid(format!(
                        "path pattern {trimmed:?} contains whitespace"
                    )));
                }
                rules.push(Rule {
                    pattern: trimmed.to_owned(),
                    headers: Vec::new(),
                });
                continue;
            }
            let Some(rule) = rules.last_mut() else {
                return Err(invalid("header line before any path pattern".into()));
            };
            let Some((name, value)) = trimmed.split_once(':') else {
                return Err(invalid(format!("expected 'Name: value', got {trimmed:?}")));
            };
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| invalid(format!("invalid header name {:?}", name.trim())))?;
            if FORBIDDEN.contains(&name.as_str()) {
                return Err(invalid(format!(
                    "header {name} cannot be set from _headers"
                )));
            }
            let value = HeaderValue::from_str(value.trim())
                .map_err(|_| invalid(format!("invalid value for header {name}")))?;
            rule.headers.push((name, value));
        }
        Ok(HeaderRules { rules })
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no blocks.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Sets the headers of every block matching `path` (a decoded URL path)
    /// on `headers`, in file order: for the same name, the later one wins.
    pub fn apply(&self, path: &str, headers: &mut HeaderMap) {
        for rule in self
            .rules
            .iter()
            .filter(|r| pattern_matches(&r.pattern, path))
        {
            for (name, value) in &rule.headers {
                headers.insert(name.clone(), value.clone());
            }
        }
    }
}

/// Matches `path` against a pattern where `*` matches any run of characters
/// (including `/` and nothing).
pub fn pattern_matches(pattern: &str, path: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = path.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*`: exact match.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// What was loaded, and the file state it came from.
#[derive(Debug)]
struct Loaded {
    stamp: Option<(SystemTime, u64)>,
    rules: Arc<HeaderRules>,
}

/// A `_headers` file that is re-read when its modification time or size
/// changes. A missing file means no rules.
#[derive(Debug)]
pub struct HeadersFile {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

impl HeadersFile {
    /// Loads the file at `path` (absent is fine); an invalid file is an error.
    pub fn load(path: PathBuf) -> Result<HeadersFile, HeadersFileError> {
        let stamp = stamp_of(std::fs::metadata(&path).ok());
        let rules = match stamp {
            None => HeaderRules::default(),
            Some(_) => {
                let text =
                    std::fs::read_to_string(&path).map_err(|error| HeadersFileError::Io {
                        file: path.clone(),
                        error,
                    })?;
                HeaderRules::parse(&text, &path)?
            }
        };
        Ok(HeadersFile {
            path,
            loaded: Mutex::new(Loaded {
                stamp,
                rules: Arc::new(rules),
            }),
        })
    }

    /// The path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current rules, re-reading the file if it changed. An invalid new
    /// version is logged and the previous rules are kept.
    pub async fn current(&self) -> Arc<HeaderRules> {
        let stamp = stamp_of(tokio::fs::metadata(&self.path).await.ok());
        {
            let loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
            if loaded.stamp == stamp {
                return Arc::clone(&loaded.rules);
            }
        }
        let rules = match stamp {
            None => Ok(HeaderRules::default()),
            Some(_) => match tokio::fs::read_to_string(&self.path).await {
                Ok(text) => HeaderRules::parse(&text, &self.path),
                Err(error) => Err(HeadersFileError::Io {
                    file: self.path.clone(),
                    error,
                }),
            },
        };
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        loaded.stamp = stamp;
        match rules {
            Ok(rules) => {
                tracing::info!(file = %self.path.display(), blocks = rules.len(), "reloaded _headers");
                loaded.rules = Arc::new(rules);
            }
            Err(e) => tracing::error!(error = %e, "keeping the previous _headers rules"),
        }
        Arc::clone(&loaded.rules)
    }
}

fn stamp_of(meta: Option<std::fs::Metadata>) -> Option<(SystemTime, u64)> {
    let meta = meta.filter(|m| m.is_file())?;
    Some((
        meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        meta.len(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HeaderRules, HeadersFileError> {
        HeaderRules::parse(text, Path::new("/srv/_headers"))
    }

    fn applied(rules: &HeaderRules, path: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        rules.apply(path, &mut h);
        h
    }

    const SAMPLE: &str = "\
# Global defaults
/*
  X-Frame-Options: DENY
  Cache-Control: public, max-age=10

/assets/*
  Cache-Control: public, max-age=31536000, immutable
\t# an indented comment
/index.html
  Surrogate-Key: home front
";

    #[test]
    fn parses_blocks_and_applies_in_order() {
        let rules = parse(SAMPLE).unwrap();
        assert_eq!(rules.len(), 3);
        let h = applied(&rules, "/assets/app.css");
        assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
        assert_eq!(h["x-frame-options"], "DENY");
        let h = applied(&rules, "/index.html");
        assert_eq!(h["cache-control"], "public, max-age=10");
        assert_eq!(h["surrogate-key"], "home front");
        let rules = parse("/a\n  X: 1\n").unwrap();
        assert!(applied(&rules, "/b").is_empty());
    }

    #[test]
    fn wildcards() {
        assert!(pattern_matches("/assets/*", "/assets/a/b.css"));
        assert!(pattern_matches("/assets/*", "/assets/"));
        assert!(!pattern_matches("/assets/*", "/asset.css"));
        assert!(pattern_matches("/*.css", "/x/y.css"));
        assert!(!pattern_matches("/*.css", "/x/y.js"));
        assert!(pattern_matches("/a/*/c", "/a/b/c"));
        assert!(pattern_matches("/exact", "/exact"));
        assert!(!pattern_matches("/exact", "/exact/more"));
        assert!(pattern_matches("*", "/anything"));
    }

    #[test]
    fn errors_name_file_and_line() {
        let err = parse("/a\n  X-Ok: 1\n  no colon here\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/srv/_headers:3"), "{msg}");
        assert!(matches!(err, HeadersFileError::Invalid { line: 3, .. }));
        let err = parse("  X-A: 1\n").unwrap_err();
        assert!(matches!(err, HeadersFileError::Invalid { line: 1, .. }));
        let err = parse("assets/*\n  X: 1\n").unwrap_err();
        assert!(matches!(err, HeadersFileError::Invalid { line: 1, .. }));
        let err = parse("/a\n  Bad Name: 1\n").unwrap_err();
        assert!(matches!(err, HeadersFileError::Invalid { line: 2, .. }));
        let err = parse("/a\n  Content-Length: 1\n").unwrap_err();
        assert!(matches!(err, HeadersFileError::Invalid { line: 2, .. }));
        let err = parse("/a\n  X: bad\u{7f}value\n").unwrap_err();
        assert!(matches!(err, HeadersFileError::Invalid { line: 2, .. }));
    }

    #[test]
    fn empty_and_comment_only_files() {
        assert!(parse("").unwrap().is_empty());
        assert!(parse("# nothing\n\n").unwrap().is_empty());
    }
}
