//! Whether a shared cache may store a response (RFC 9111 §3, §3.5).

use std::time::Duration;

use http::header::{AUTHORIZATION, EXPIRES, SET_COOKIE};
use http::{HeaderMap, Method, StatusCode};

use super::cache_control::CacheControl;
use super::directives::Directives;
use super::vary::has_star;

/// What to do with responses carrying Set-Cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SetCookiePolicy {
    /// Never store them (the default).
    #[default]
    Bypass,
    /// Store them without their Set-Cookie fields.
    Strip,
    /// Store them as they are (the cookies are then shared by all clients).
    Store,
}

/// Operator choices that shape storage and heuristic freshness.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoreOptions {
    /// Responses with Set-Cookie.
    pub set_cookie: SetCookiePolicy,
    /// Fraction of (Date − Last-Modified) used as heuristic lifetime (0.1).
    pub heuristic_fraction: f64,
    /// Upper bound of a heuristic lifetime (1 day).
    pub heuristic_max: Duration,
    /// Lifetime of heuristically cacheable responses without Last-Modified;
    /// `None` means 0 (stored, but stale at once).
    pub default_ttl: Option<Duration>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            set_cookie: SetCookiePolicy::Bypass,
            heuristic_fraction: 0.1,
            heuristic_max: Duration::from_secs(86_400),
            default_ttl: None,
        }
    }
}

/// Why a response must not be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotStorable {
    /// The request method is neither GET nor HEAD.
    #[error("request method is not cacheable")]
    Method,
    /// The status is not final, is 206 or 304, or is not understood while
    /// `must-understand` is present.
    #[error("response status is not storable")]
    Status,
    /// The request carried `no-store`.
    #[error("request has no-store")]
    RequestNoStore,
    /// The response carried `no-store`.
    #[error("response has no-store")]
    NoStore,
    /// The response is `private`.
    #[error("response is private")]
    Private,
    /// The request had Authorization and the response does not allow sharing.
    #[error("authorized request without public, must-revalidate or s-maxage")]
    Authorization,
    /// The response sets cookies and the policy is to bypass.
    #[error("response sets cookies")]
    SetCookie,
    /// The response has `Vary: *`.
    #[error("response varies on *")]
    VaryStar,
    /// No explicit freshness, no `public`, and not heuristically cacheable.
    #[error("response has no explicit freshness and is not heuristically cacheable")]
    NoExplicitFreshness,
}

impl NotStorable {
    /// A token for Cache-Status `detail=`, e.g. `"no-store"`.
    pub fn reason(&self) -> &'static str {
        match self {
            NotStorable::Method => "method",
            NotStorable::Status => "status",
            NotStorable::RequestNoStore => "request-no-store",
            NotStorable::NoStore => "no-store",
            NotStorable::Private => "private",
            NotStorable::Authorization => "authorization",
            NotStorable::SetCookie => "set-cookie",
            NotStorable::VaryStar => "vary-star",
            NotStorable::NoExplicitFreshness => "no-explicit-freshness",
        }
    }
}

/// Status codes that are heuristically cacheable (RFC 9110 §15.1), minus 206
/// which this cache stores only as part of a complete response.
pub const HEURISTICALLY_CACHEABLE: &[u16] =
    &[200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// `status` is heuristically cacheable (see [`HEURISTICALLY_CACHEABLE`]).
pub fn heuristically_cacheable(status: StatusCode) -> bool {
    HEURISTICALLY_CACHEABLE.contains(&status.as_u16())
}

/// Final status codes whose semantics this cache implements (for
/// `must-understand`): those defined by RFC 9110 and 451.
fn understood(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200..=205 | 300..=303 | 305 | 307 | 308 | 400..=417 | 421 | 422 | 426 | 451 | 500..=505
    )
}

/// Checks RFC 9111 §3 for a shared cache. Qualified `no-cache` / `private`
/// fields do not prevent storage: remove them with [`strip_qualified_fields`].
pub fn check_storable(
    method: &Method,
    req_headers: &HeaderMap,
    req_cc: Option<&CacheControl>,
    status: StatusCode,
    resp_headers: &HeaderMap,
    d: &Directives,
    opts: &StoreOptions,
) -> Result<(), NotStorable> {
    if method != Method::GET && method != Method::HEAD {
        return Err(NotStorable::Method);
    }
    let code = status.as_u16();
    if code < 200 || code == 206 || code == 304 {
        return Err(NotStorable::Status);
    }
    let cc = &d.cc;
    let understood_here = cc.must_understand && understood(status);
    if cc.must_understand && !understood_here {
        return Err(NotStorable::Status);
    }
    if req_cc.is_some_and(|r| r.no_store) {
        return Err(NotStorable::RequestNoStore);
    }
    // must-understand overrides no-store when the status is understood (§5.2.2.3).
    if cc.no_store && !understood_here {
        return Err(NotStorable::NoStore);
    }
    if cc.private {
        return Err(NotStorable::Private);
    }
    if req_headers.contains_key(AUTHORIZATION)
        && !(cc.public || cc.must_revalidate || cc.s_maxage.is_some())
    {
        return Err(NotStorable::Authorization);
    }
    if opts.set_cookie == SetCookiePolicy::Bypass && resp_headers.contains_key(SET_COOKIE) {
        return Err(NotStorable::SetCookie);
    }
    if has_star(resp_headers) {
        return Err(NotStorable::VaryStar);
    }
    let explicit = cc.max_age.is_some()
        || cc.s_maxage.is_some()
        || (!d.targeted && resp_headers.contains_key(EXPIRES));
    if explicit || cc.public || heuristically_cacheable(status) {
        Ok(())
    } else {
        Err(NotStorable::NoExplicitFreshness)
    }
}

/// Removes the fields named by qualified `no-cache` and `private`, and
/// Set-Cookie under [`SetCookiePolicy::Strip`], before storing.
pub fn strip_qualified_fields(headers: &mut HeaderMap, d: &Directives, opts: &StoreOptions) {
    for name in d.cc.no_cache_fields.iter().chain(&d.cc.private_fields) {
        headers.remove(name);
    }
    if opts.set_cookie == SetCookiePolicy::Strip {
        headers.remove(SET_COOKIE);
    }
}

#[cfg(test)]
#[path = "storable_tests.rs"]
mod tests;
