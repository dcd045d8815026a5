//! The edge-local purge endpoint (`POST /_edge/purge` on the admin
//! listener) and the control link's status (`GET /_edge/purge/status`).
//!
//! The body is the origin API's: one of `urls`, `prefixes`, `tags` or
//! `"all": true` with `"confirm": "all"`, plus `soft` and `dry_run`. It
//! applies to this edge only and needs `Authorization: Bearer <token>`,
//! the token coming from `EDGECACHE_ADMIN_TOKEN` or `[admin] token`.

use edgecache::purge::PurgeSelector;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;

use super::apply::{Action, apply, parse_url};
use crate::body::EdgeBody;
use crate::state::EdgeState;

/// Environment variable holding the admin token (overrides the config).
pub const TOKEN_ENV: &str = "EDGECACHE_ADMIN_TOKEN";

/// Largest request body accepted.
const MAX_BODY: usize = 256 << 10;

/// The JSON body of a purge request.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeBody {
    /// Exact URLs (absolute, or a path for any host).
    pub urls: Option<Vec<String>>,
    /// URL prefixes (absolute, or a path prefix for any host).
    pub prefixes: Option<Vec<String>>,
    /// Surrogate keys.
    pub tags: Option<Vec<String>>,
    /// Everything (needs `confirm`).
    pub all: Option<bool>,
    /// Must be `"all"` with `all`.
    pub confirm: Option<String>,
    /// Mark stale instead of removing.
    #[serde(default)]
    pub soft: bool,
    /// Count only.
    #[serde(default)]
    pub dry_run: bool,
    /// Accepted for compatibility with the origin's API; an edge-local
    /// purge is synchronous.
    pub wait_ms: Option<u64>,
}

impl PurgeBody {
    /// The selector this body names, or why it names none.
    pub fn selector(&self) -> Result<PurgeSelector, String> {
        let given = [
            self.urls.is_some(),
            self.prefixes.is_some(),
            self.tags.is_some(),
            self.all.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err("give exactly one of urls, prefixes, tags or all".into());
        }
        if let Some(all) = self.all {
            if !all {
                return Err("`all` must be true".into());
            }
            if self.confirm.as_deref() != Some("all") {
                return Err("purging everything needs \"confirm\": \"all\"".into());
            }
            return Ok(PurgeSelector::All);
        }
        let check = |name: &str, list: &[String], absolute: bool| -> Result<(), String> {
            if list.is_empty() {
                return Err(format!("`{name}` is empty"));
            }
            for item in list {
                let ok = !item.is_empty()
                    && item.len() <= 8192
                    && !item.contains(char::is_control)
                    && (!absolute || item.starts_with('/') || parse_url(item).is_some());
                if !ok {
                    return Err(format!(
                        "`{name}`: {item:?} is not an absolute URL or a path"
                    ));
                }
            }
            Ok(())
        };
        if let Some(urls) = &self.urls {
            check("urls", urls, true)?;
            return Ok(PurgeSelector::Urls(urls.clone()));
        }
        if let Some(prefixes) = &self.prefixes {
            check("prefixes", prefixes, true)?;
            return Ok(PurgeSelector::Prefixes(prefixes.clone()));
        }
        let tags = self.tags.clone().unwrap_or_default();
        check("tags", &tags, false)?;
        Ok(PurgeSelector::Tags(tags))
    }
}

/// Handles `POST /_edge/purge`.
pub async fn purge(state: &EdgeState, req: Request<Incoming>) -> Response<EdgeBody> {
    if req.method() != Method::POST {
        let mut resp = error(StatusCode::METHOD_NOT_ALLOWED, "use POST");
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return resp;
    }
    let token = std::env::var(TOKEN_ENV)
        .ok()
        .filter(|t| !t.is_empty())
        .or_else(|| state.config.admin.token.clone().filter(|t| !t.is_empty()));
    let Some(token) = token else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no admin token configured (EDGECACHE_ADMIN_TOKEN or [admin] token)",
        );
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if !presented.is_some_and(|p| constant_time_eq(p.as_bytes(), token.as_bytes())) {
        let mut resp = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return resp;
    }
    let bytes = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("cannot read body: {e}")),
    };
    let body: PurgeBody = match serde_json::from_slice(&bytes) {
        Ok(body) => body,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad JSON: {e}")),
    };
    let selector = match body.selector() {
        Ok(selector) => selector,
        Err(reason) => return error(StatusCode::BAD_REQUEST, &reason),
    };
    let action = if body.dry_run {
        Action::DryRun
    } else {
        Action::from_soft(body.soft)
    };
    let affected = apply(&state.store, &selector, action).await;
    tracing::info!(?selector, ?action, affected, "edge-local purge");
    json(
        StatusCode::OK,
        serde_json::json!({
            "affected": affected,
            "soft": body.soft,
            "dry_run": body.dry_run,
        }),
    )
}

/// Handles `GET /_edge/purge/status`.
pub fn status(state: &EdgeState) -> Response<EdgeBody> {
    let mut snapshot = state.control.snapshot();
    snapshot["indexed"] = serde_json::json!(state.store.index().len());
    json(StatusCode::OK, snapshot)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn error(status: StatusCode, reason: &str) -> Response<EdgeBody> {
    json(status, serde_json::json!({ "error": reason }))
}

fn json(status: StatusCode, body: serde_json::Value) -> Response<EdgeBody> {
    let mut resp = Response::new(EdgeBody::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PurgeSelector, String> {
        serde_json::from_str::<PurgeBody>(text)
            .map_err(|e| e.to_string())?
            .selector()
    }

    #[test]
    fn selectors_are_checked() {
        assert_eq!(
            parse(r#"{"urls": ["http://h/a"]}"#),
            Ok(PurgeSelector::Urls(vec!["http://h/a".into()]))
        );
        assert!(parse(r#"{"all": true}"#).is_err());
        assert_eq!(
            parse(r#"{"all": true, "confirm": "all"}"#),
            Ok(PurgeSelector::All)
        );
        assert!(parse(r#"{"urls": ["h/a"]}"#).is_err());
        assert!(parse(r#"{"urls": []}"#).is_err());
        assert!(parse(r#"{"urls": ["/a"], "tags": ["t"]}"#).is_err());
        assert!(parse(r#"{"tagz": ["t"]}"#).is_err());
        assert!(parse(r#"{}"#).is_err());
        assert!(constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd"));
    }
}
