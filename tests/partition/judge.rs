//! Judging one answer against the expected outcome of its case.

use super::*;

pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) cache_status: String,
    pub(crate) content_type: String,
    pub(crate) retry_after: Option<String>,
    pub(crate) body: Bytes,
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = String::from_utf8_lossy(&self.body[..self.body.len().min(120)]);
        write!(
            f,
            "status {}, cache-status {:?}, {} body bytes {:?}",
            self.status,
            self.cache_status,
            self.body.len(),
            text.trim_end()
        )
    }
}

/// What is wrong with the answer to `case` during `fault`, if anything.
pub(crate) fn judge(
    fault: Fault,
    case: &Case,
    stored: Option<&Bytes>,
    got: &Answer,
) -> Vec<String> {
    let mut wrong = Vec::new();
    let cs = &got.cache_status;
    match case.outcome {
        Outcome::Hit => {
            if got.status != 200 {
                wrong.push("status should be 200".to_string());
            }
            if !cs.starts_with("edgecache; hit; ttl=") || cs.contains("fwd=") {
                wrong.push("cache-status should be a plain hit `edgecache; hit; ttl=N`".into());
            }
            if Some(&got.body) != stored {
                wrong.push("body should be the stored body".into());
            }
        }
        Outcome::ServeStale => {
            let detail = format!("detail={}", fault.shape().detail);
            if got.status != 200 {
                wrong.push("status should be 200".to_string());
            }
            if !cs.starts_with("edgecache; hit; fwd=stale; ttl=-") || !has_param(cs, &detail) {
                wrong.push(format!(
                    "cache-status should be `edgecache; hit; fwd=stale; ttl=-N; {detail}`"
                ));
            }
            if Some(&got.body) != stored {
                wrong.push("body should be the stored body".into());
            }
        }
        Outcome::Error => {
            let shape = fault.shape();
            let fwd = if case.primed() {
                "fwd=stale"
            } else {
                "fwd=uri-miss"
            };
            let detail = format!("detail={}", shape.detail);
            if got.status != shape.status {
                wrong.push(format!("status should be {}", shape.status));
            }
            let mut cs_ok = cs.starts_with("edgecache; fwd=")
                && has_param(cs, fwd)
                && has_param(cs, &detail)
                && !has_param(cs, "hit");
            if let Some(code) = shape.fwd_status {
                cs_ok &= has_param(cs, &format!("fwd-status={code}"));
            }
            if !cs_ok {
                let fwd_status = shape
                    .fwd_status
                    .map(|c| format!("; fwd-status={c}"))
                    .unwrap_or_default();
                wrong.push(format!(
                    "cache-status should be `edgecache; {fwd}{fwd_status}; {detail}` (no hit)"
                ));
            }
            if got.retry_after.is_none() {
                wrong.push("Retry-After missing".into());
            }
            if !got.content_type.starts_with("text/plain") {
                wrong.push(format!(
                    "error body should be text/plain, not {:?}",
                    got.content_type
                ));
            }
            let leaked = stored.is_some_and(|s| got.body == *s)
                || got
                    .body
                    .windows(CONTENT_MARKER.len())
                    .any(|w| w == CONTENT_MARKER.as_bytes());
            if got.body.is_empty() || got.body.len() > MAX_ERROR_BODY || leaked {
                wrong.push("error body should be a short text, never content".into());
            }
        }
    }
    wrong
}

/// Whether a `Cache-Status` value has `param` as one of its `; ` items.
pub(crate) fn has_param(cache_status: &str, param: &str) -> bool {
    cache_status.split(';').any(|p| p.trim() == param)
}
