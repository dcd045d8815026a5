//! Routes: which policy applies to a request, by host and path prefix.

use serde::{Deserialize, Serialize};

use super::units::HumanDuration;

/// What an edge does when the origin cannot give a usable answer: the CAP
/// knob, chosen per route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnOriginFailure {
    /// Availability first: serve a stored copy past its freshness, within
    /// `max_stale`, marked as stale.
    #[default]
    ServeStale,
    /// Consistency first: never serve past freshness; answer 502/504 at once.
    Error,
}

/// A kind of origin failure, as named in `failure_kinds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The TCP connection was refused.
    ConnectRefused,
    /// The TCP connection did not complete within `connect_timeout`.
    ConnectTimeout,
    /// No response head within `first_byte_timeout`.
    FirstByteTimeout,
    /// The connection was reset or closed before a complete answer.
    Reset,
    /// The body ended before its declared length, or broke off.
    TruncatedBody,
    /// The origin's host name did not resolve.
    Dns,
    /// The TLS handshake with the origin failed.
    Tls,
    /// The origin answered with one of the `failure_statuses`.
    Status,
}

impl FailureKind {
    /// Every kind: the default set that counts as failure.
    pub const ALL: [FailureKind; 8] = [
        FailureKind::ConnectRefused,
        FailureKind::ConnectTimeout,
        FailureKind::FirstByteTimeout,
        FailureKind::Reset,
        FailureKind::TruncatedBody,
        FailureKind::Dns,
        FailureKind::Tls,
        FailureKind::Status,
    ];

    /// The token used in `Cache-Status` details and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::ConnectRefused => "connect-refused",
            FailureKind::ConnectTimeout => "connect-timeout",
            FailureKind::FirstByteTimeout => "first-byte-timeout",
            FailureKind::Reset => "reset",
            FailureKind::TruncatedBody => "truncated-body",
            FailureKind::Dns => "dns",
            FailureKind::Tls => "tls",
            FailureKind::Status => "bad-status",
        }
    }
}

/// One `[[routes]]` entry: a host (optional) and path prefix with its policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Host this route applies to (any host when absent). Compared without
    /// port, case-insensitively.
    #[serde(default)]
    pub host: Option<String>,
    /// Path prefix; the longest matching prefix wins.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// What to do when the origin fails.
    #[serde(default)]
    pub on_origin_failure: OnOriginFailure,
    /// How long past freshness a stored copy may still be served when the
    /// origin fails (serve-stale routes only).
    #[serde(default = "default_max_stale")]
    pub max_stale: HumanDuration,
    /// A stale entry this far past freshness is served at once and refreshed
    /// in the background.
    #[serde(default)]
    pub stale_while_revalidate: HumanDuration,
    /// Origin answers that count as failure; the rest are passed on.
    #[serde(default = "default_failure_kinds")]
    pub failure_kinds: Vec<FailureKind>,
    /// Origin status codes that count as failure (with kind `status`).
    #[serde(default = "default_failure_statuses")]
    pub failure_statuses: Vec<u16>,
    /// When the edge has been cut off from the purge log longer than this,
    /// this route stops serving stale (it can no longer know what was purged).
    #[serde(default)]
    pub max_purge_lag: Option<HumanDuration>,
}

fn default_prefix() -> String {
    "/".to_string()
}

fn default_max_stale() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(86_400))
}

fn default_failure_kinds() -> Vec<FailureKind> {
    FailureKind::ALL.to_vec()
}

fn default_failure_statuses() -> Vec<u16> {
    vec![500, 502, 503, 504]
}

impl Default for Route {
    fn default() -> Self {
        Route {
            host: None,
            prefix: default_prefix(),
            on_origin_failure: OnOriginFailure::default(),
            max_stale: default_max_stale(),
            stale_while_revalidate: HumanDuration::default(),
            failure_kinds: default_failure_kinds(),
            failure_statuses: default_failure_statuses(),
            max_purge_lag: None,
        }
    }
}

impl Route {
    /// Whether an origin failure of this kind (and status, for `Status`)
    /// counts as a failure on this route.
    pub fn counts_as_failure(&self, kind: FailureKind, status: Option<u16>) -> bool {
        if !self.failure_kinds.contains(&kind) {
            return false;
        }
        match (kind, status) {
            (FailureKind::Status, Some(code)) => self.failure_statuses.contains(&code),
            _ => true,
        }
    }

    fn matches(&self, host: &str, path: &str) -> bool {
        let host_ok = self
            .host
            .as_deref()
            .is_none_or(|h| h.eq_ignore_ascii_case(host));
        host_ok && path.starts_with(&self.prefix)
    }
}

/// The routes of a config, ready for longest-prefix lookup.
#[derive(Debug, Clone)]
pub struct RouteTable {
    // Sorted: host-specific before any-host, then longest prefix first.
    routes: Vec<Route>,
    fallback: Route,
}

impl RouteTable {
    /// Builds the table; requests that match no route get the default route.
    pub fn new(mut routes: Vec<Route>) -> Self {
        routes.sort_by(|a, b| {
            b.host
                .is_some()
                .cmp(&a.host.is_some())
                .then(b.prefix.len().cmp(&a.prefix.len()))
        });
        RouteTable {
            routes,
            fallback: Route::default(),
        }
    }

    /// The route for a request's host (without port) and path.
    pub fn lookup(&self, host: &str, path: &str) -> &Route {
        self.routes
            .iter()
            .find(|r| r.matches(host, path))
            .unwrap_or(&self.fallback)
    }

    /// Every configured route, in match order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: Option<&str>, prefix: &str, p: OnOriginFailure) -> Route {
        Route {
            host: host.map(String::from),
            prefix: prefix.into(),
            on_origin_failure: p,
            ..Route::default()
        }
    }

    #[test]
    fn longest_prefix_and_host_win() {
        let t = RouteTable::new(vec![
            route(None, "/", OnOriginFailure::ServeStale),
            route(None, "/api/", OnOriginFailure::Error),
            route(Some("cdn.example"), "/", OnOriginFailure::Error),
        ]);
        assert_eq!(
            t.lookup("x", "/api/v1").on_origin_failure,
            OnOriginFailure::Error
        );
        assert_eq!(
            t.lookup("x", "/img/a").on_origin_failure,
            OnOriginFailure::ServeStale
        );
        assert_eq!(
            t.lookup("CDN.example", "/img").on_origin_failure,
            OnOriginFailure::Error
        );
    }

    #[test]
    fn failure_statuses_filter() {
        let r = Route::default();
        assert!(r.counts_as_failure(FailureKind::Status, Some(503)));
        assert!(!r.counts_as_failure(FailureKind::Status, Some(501)));
        assert!(r.counts_as_failure(FailureKind::Dns, None));
    }
}
