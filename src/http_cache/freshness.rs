//! Freshness lifetime, age and stale-serving rules (RFC 9111 §4.2, RFC 5861).

use std::time::{Duration, SystemTime};

use http::header::{AGE, DATE, EXPIRES, LAST_MODIFIED};
use http::{HeaderMap, StatusCode};

use super::cache_control::CacheControl;
use super::directives::Directives;
use super::storable::{StoreOptions, heuristically_cacheable};
use super::util::{header_date, parse_date, parse_delta_seconds, trim_ows};

/// The freshness lifetime of a response (RFC 9111 §4.2.1) at a shared cache.
///
/// Order: malformed freshness directives -> 0; `s-maxage`; `max-age`;
/// `Expires − Date` (not under a targeted field; Date defaults to
/// `response_time`; an invalid or repeated Expires, or one in the past,
/// gives 0); then, for heuristically cacheable statuses or `public`,
/// `fraction × (Date − Last-Modified)` capped at `heuristic_max`, or
/// `default_ttl` without Last-Modified.
pub fn freshness_lifetime(
    status: StatusCode,
    headers: &HeaderMap,
    d: &Directives,
    response_time: SystemTime,
    opts: &StoreOptions,
) -> Duration {
    let cc = &d.cc;
    if cc.invalid {
        return Duration::ZERO;
    }
    if let Some(s) = cc.s_maxage {
        return Duration::from_secs(s);
    }
    if let Some(m) = cc.max_age {
        return Duration::from_secs(m);
    }
    let date = || header_date(headers, &DATE).unwrap_or(response_time);
    if !d.targeted && headers.contains_key(EXPIRES) {
        let mut lines = headers.get_all(EXPIRES).into_iter();
        let expires = match (lines.next(), lines.next()) {
            (Some(v), None) => parse_date(v.as_bytes()),
            _ => None,
        };
        return expires.map_or(Duration::ZERO, |e| {
            e.duration_since(date()).unwrap_or(Duration::ZERO)
        });
    }
    if !(heuristically_cacheable(status) || cc.public) {
        return Duration::ZERO;
    }
    match header_date(headers, &LAST_MODIFIED) {
        Some(lm) => {
            let since = date().duration_since(lm).unwrap_or(Duration::ZERO);
            let secs = since.as_secs_f64() * opts.heuristic_fraction;
            if secs.is_finite() && secs > 0.0 {
                Duration::try_from_secs_f64(secs)
                    .unwrap_or(Duration::MAX)
                    .min(opts.heuristic_max)
            } else {
                Duration::ZERO
            }
        }
        None => opts.default_ttl.unwrap_or(Duration::ZERO),
    }
}

/// The Age header as delta-seconds (first line; overflow clamps; invalid
/// values are ignored).
pub fn age_value(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(AGE)?;
    parse_delta_seconds(trim_ows(v.as_bytes())).map(Duration::from_secs)
}

/// The corrected initial age (RFC 9111 §4.2.3): the larger of the apparent
/// age (`response_time − Date`, never negative, so a Date in the future
/// counts as 0) and `Age + (response_time − request_time)`.
pub fn corrected_initial_age(
    headers: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Duration {
    let apparent = header_date(headers, &DATE)
        .and_then(|d| response_time.duration_since(d).ok())
        .unwrap_or(Duration::ZERO);
    let delay = response_time
        .duration_since(request_time)
        .unwrap_or(Duration::ZERO);
    let corrected = age_value(headers)
        .unwrap_or(Duration::ZERO)
        .saturating_add(delay);
    apparent.max(corrected)
}

/// The current age: corrected initial age plus the time resident in this
/// cache (`now − response_time`, 0 if the clock went backwards).
pub fn current_age(
    corrected_initial_age: Duration,
    response_time: SystemTime,
    now: SystemTime,
) -> Duration {
    corrected_initial_age
        .saturating_add(now.duration_since(response_time).unwrap_or(Duration::ZERO))
}

/// Remaining freshness in whole seconds, negative once stale (Cache-Status `ttl`).
pub fn ttl_seconds(age: Duration, lifetime: Duration) -> i64 {
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    if lifetime >= age {
        secs(lifetime - age)
    } else {
        -secs(age - lifetime)
    }
}

/// When a stored response may be served stale (RFC 9111 §4.2.4, RFC 5861).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StalePermissions {
    /// Never serve stale: `must-revalidate`, `proxy-revalidate`, `s-maxage`
    /// (shared cache) or unqualified `no-cache`.
    pub forbidden: bool,
    /// `stale-while-revalidate` seconds (`None` when forbidden).
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error` seconds (`None` when forbidden).
    pub stale_if_error: Option<u64>,
}

impl StalePermissions {
    /// May serve a response this stale while revalidating in the background.
    pub fn while_revalidate(&self, staleness: Duration) -> bool {
        !self.forbidden
            && self
                .stale_while_revalidate
                .is_some_and(|s| staleness <= Duration::from_secs(s))
    }

    /// The origin explicitly allows serving a response this stale on error.
    pub fn if_error(&self, staleness: Duration) -> bool {
        !self.forbidden
            && self
                .stale_if_error
                .is_some_and(|s| staleness <= Duration::from_secs(s))
    }
}

/// The stale-serving permissions the response directives grant.
pub fn stale_permissions(d: &Directives) -> StalePermissions {
    let cc = &d.cc;
    let forbidden =
        cc.must_revalidate || cc.proxy_revalidate || cc.s_maxage.is_some() || cc.no_cache;
    StalePermissions {
        forbidden,
        stale_while_revalidate: cc.stale_while_revalidate.filter(|_| !forbidden),
        stale_if_error: cc.stale_if_error.filter(|_| !forbidden),
    }
}

/// Unqualified `no-cache`: every use, fresh or not, needs revalidation.
pub fn always_revalidate(d: &Directives) -> bool {
    d.cc.no_cache
}

/// What the request's own directives allow for a stored response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFreshness {
    /// Usable as is: fresh, or stale within the request's `max-stale`
    /// (the caller must still honour [`StalePermissions::forbidden`]).
    Fresh,
    /// Stale and the request does not accept it: the cache's stale policy
    /// (`stale-while-revalidate`, `stale-if-error`, serve-stale) decides.
    Stale,
    /// The request demands validation with the origin: `no-cache`, an age
    /// above its `max-age`, or less remaining freshness than `min-fresh`.
    MustRevalidate,
}

/// Applies request `no-cache`, `max-age`, `min-fresh` and `max-stale` to a
/// stored response of the given current age and freshness lifetime.
pub fn request_allows(
    req_cc: Option<&CacheControl>,
    age: Duration,
    lifetime: Duration,
) -> RequestFreshness {
    let fresh = lifetime > age;
    let Some(r) = req_cc else {
        return if fresh {
            RequestFreshness::Fresh
        } else {
            RequestFreshness::Stale
        };
    };
    if r.no_cache {
        return RequestFreshness::MustRevalidate;
    }
    if r.max_age.is_some_and(|m| age > Duration::from_secs(m)) {
        return RequestFreshness::MustRevalidate;
    }
    if let Some(mf) = r.min_fresh
        && lifetime.saturating_sub(age) < Duration::from_secs(mf)
    {
        return RequestFreshness::MustRevalidate;
    }
    if fresh {
        return RequestFreshness::Fresh;
    }
    let staleness = age - lifetime;
    match r.max_stale {
        Some(None) => RequestFreshness::Fresh,
        Some(Some(n)) if staleness <= Duration::from_secs(n) => RequestFreshness::Fresh,
        _ => RequestFreshness::Stale,
    }
}

#[cfg(test)]
#[path = "freshness_tests.rs"]
mod tests;
