//! The edge node's configuration file (TOML) and its validation.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::route::{Route, RouteTable};
use super::units::{ByteSize, HumanDuration};

/// Why a config file was refused. Every variant names the file; parse and
/// validation errors also name the line and key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read config: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed, or a key is unknown or has the wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// The parser's message, with line, column and key.
        message: String,
    },
    /// A value parsed but makes no sense.
    #[error("{path}:{line}: `{key}`: {reason}")]
    Invalid {
        /// The config file (or `<flags>` for command-line values).
        path: PathBuf,
        /// The 1-based line of the key, 0 when unknown.
        line: usize,
        /// The dotted key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The whole edge configuration. Every command-line flag has a key here.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// Base URL of the origin, e.g. `http://origin.example:8080`.
    #[serde(default)]
    pub origin: Option<String>,
    /// Public HTTP listener.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Admin listener (node endpoints, metrics); none when absent.
    #[serde(default)]
    pub admin_listen: Option<SocketAddr>,
    /// Name used in `Cache-Status` and `Via`.
    #[serde(default = "default_name")]
    pub name: String,
    /// Cache store and HTTP caching behaviour.
    #[serde(default)]
    pub cache: CacheSettings,
    /// Connections to the origin.
    #[serde(default)]
    pub origin_client: OriginClientSettings,
    /// DNS resolution of the origin's host name.
    #[serde(default)]
    pub dns: DnsSettings,
    /// Origin health: failure threshold and heartbeats.
    #[serde(default)]
    pub health: HealthSettings,
    /// Limits on client requests.
    #[serde(default)]
    pub limits: LimitSettings,
    /// Per-route stale-versus-error policy; longest prefix wins.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// The purge control plane this edge follows.
    #[serde(default)]
    pub control: ControlSettings,
    /// `[purge]`: the purge log backend (`backend = "nats"`: follow NATS
    /// JetStream instead of `control.addr`).
    #[serde(default)]
    pub purge: crate::purge::nats::PurgeBusSettings,
    /// The admin listener's own settings.
    #[serde(default)]
    pub admin: AdminSettings,
    /// The HTTPS listener and its certificates.
    #[serde(default)]
    pub tls: super::tls::TlsSettings,
    /// Host names served (`*.example` for subdomains); others get 421.
    /// Empty: any host.
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// `[control]`: the origin's purge control listener and who this edge is.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlSettings {
    /// `HOST:PORT` of the control listener; purge is off when absent.
    pub addr: Option<String>,
    /// This edge's id in the membership (default: `<name>@<public address>`).
    pub id: Option<String>,
    /// This edge's region (default: `default`).
    pub region: Option<String>,
}

/// `[admin]`: settings of the admin endpoints.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// Bearer token for `/_edge/purge` (`EDGECACHE_ADMIN_TOKEN` overrides);
    /// without one the endpoint answers 503.
    pub token: Option<String>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_name() -> String {
    "edgecache".to_string()
}

/// `[cache]`: the store and the HTTP caching rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    /// Total bytes of bodies and headers kept in memory.
    pub capacity: ByteSize,
    /// Larger responses stream through without being buffered or stored.
    pub max_object_size: ByteSize,
    /// Storable responses at least this large (by Content-Length) are
    /// stored while they stream to every waiting client (a streaming miss);
    /// smaller ones are buffered whole first.
    pub stream_threshold: ByteSize,
    /// Stored bodies at least this large are kept in sealed memory files
    /// and sent with `sendfile(2)` on plain HTTP/1.1 connections (no copy
    /// per hit); `0` keeps every body on the heap.
    pub file_body_threshold: ByteSize,
    /// How long an uncacheable key skips request coalescing (hit-for-pass).
    pub hit_for_pass: HumanDuration,
    /// How long past freshness an entry is kept for revalidation and stale
    /// serving (the longer of this and the route's stale windows).
    pub retain_stale: HumanDuration,
    /// Responses with Set-Cookie: `bypass` (never stored), `strip`, `store`.
    pub set_cookie: SetCookieSetting,
    /// Heuristic freshness as a fraction of the time since Last-Modified.
    pub heuristic_fraction: f64,
    /// Upper bound of heuristic freshness.
    pub heuristic_max: HumanDuration,
    /// Targeted cache-control fields (RFC 9213), first match wins.
    pub targeted_fields: Vec<String>,
    /// Whether a client's `Cache-Control: no-cache` forces revalidation.
    pub honor_request_no_cache: bool,
    /// Response headers removed before answering clients (surrogate keys).
    pub strip_response_headers: Vec<String>,
    /// Unkeyed request fields (X-Forwarded-Host and the like) to forward to
    /// the origin anyway; refused, since they are not in the cache key.
    pub forward_unkeyed_headers: Vec<String>,
}

/// How responses carrying Set-Cookie are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SetCookieSetting {
    /// Never store them.
    Bypass,
    /// Store them without the Set-Cookie field.
    Strip,
    /// Store them as they are.
    Store,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            capacity: ByteSize(256 << 20),
            max_object_size: ByteSize(8 << 20),
            stream_threshold: ByteSize(64 << 10),
            file_body_threshold: ByteSize(128 << 10),
            hit_for_pass: HumanDuration(Duration::from_secs(30)),
            retain_stale: HumanDuration(Duration::from_secs(86_400)),
            set_cookie: SetCookieSetting::Bypass,
            heuristic_fraction: 0.1,
            heuristic_max: HumanDuration(Duration::from_secs(86_400)),
            targeted_fields: vec![
                "edgecache-cache-control".into(),
                "cdn-cache-control".into(),
                "surrogate-control".into(),
            ],
            honor_request_no_cache: true,
            strip_response_headers: vec!["surrogate-key".into(), "cache-tag".into()],
            forward_unkeyed_headers: Vec::new(),
        }
    }
}

/// `[origin_client]`: pooled connections to the origin and their timeouts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OriginClientSettings {
    /// TCP connect timeout (per address tried).
    pub connect_timeout: HumanDuration,
    /// Time from sending the request to the response head.
    pub first_byte_timeout: HumanDuration,
    /// Longest pause between two body chunks.
    pub body_timeout: HumanDuration,
    /// Idle pooled connections are closed after this.
    pub pool_idle_timeout: HumanDuration,
    /// Idle pooled connections kept per origin host.
    pub pool_max_idle: usize,
    /// Keep the client's Host header instead of the origin's authority.
    pub preserve_host: bool,
    /// Fixed IP addresses for the origin's host name, tried in order on
    /// connect failure (instead of DNS).
    pub addresses: Vec<std::net::IpAddr>,
    /// A second origin that takes over while the primary is DOWN.
    pub backup: Option<String>,
    /// Extra CA certificates (PEM) trusted for an https origin, beside the
    /// web PKI roots.
    pub ca_file: Option<PathBuf>,
}

impl Default for OriginClientSettings {
    fn default() -> Self {
        OriginClientSettings {
            connect_timeout: HumanDuration(Duration::from_secs(2)),
            first_byte_timeout: HumanDuration(Duration::from_secs(10)),
            body_timeout: HumanDuration(Duration::from_secs(10)),
            pool_idle_timeout: HumanDuration(Duration::from_secs(90)),
            pool_max_idle: 256,
            preserve_host: false,
            addresses: Vec::new(),
            backup: None,
            ca_file: None,
        }
    }
}

/// `[dns]`: how the origin's host name is resolved.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsSettings {
    /// Name servers (`IP:PORT`); the system's resolv.conf when empty.
    pub servers: Vec<SocketAddr>,
    /// Per-query timeout.
    pub timeout: Option<HumanDuration>,
}

/// `[health]`: when an origin is marked down, and how recovery is probed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSettings {
    /// Consecutive failures that mark the origin DOWN.
    pub failure_threshold: u32,
    /// Path requested by the heartbeat.
    pub check_path: String,
    /// Interval between heartbeats.
    pub check_interval: HumanDuration,
    /// Consecutive successful heartbeats that bring a DOWN origin back UP.
    pub recovery_threshold: u32,
    /// Seconds announced in Retry-After on fail-fast answers.
    pub retry_after: HumanDuration,
    /// Send heartbeats while the origin is healthy too (by default they
    /// start with the first failure, so a healthy origin sees only traffic).
    pub check_when_up: bool,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            failure_threshold: 3,
            check_path: "/".into(),
            check_interval: HumanDuration(Duration::from_secs(1)),
            recovery_threshold: 1,
            retry_after: HumanDuration(Duration::from_secs(5)),
            check_when_up: false,
        }
    }
}

/// `[limits]`: bounds on what a client may send.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Largest request head (request line and headers); 431 above.
    pub max_header_bytes: ByteSize,
    /// Longest request target; 414 above.
    pub max_uri_length: usize,
    /// Largest request body forwarded to the origin; 413 above.
    pub max_request_body: ByteSize,
    /// Time allowed to send a request head (slowloris guard).
    pub header_read_timeout: HumanDuration,
    /// Longest a write to a client may make no progress before the
    /// connection is closed (a client that stopped reading).
    pub send_timeout: HumanDuration,
    /// Simultaneous client connections; further ones wait in the backlog.
    pub max_connections: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            max_header_bytes: ByteSize(64 << 10),
            max_uri_length: 8192,
            max_request_body: ByteSize(16 << 20),
            header_read_timeout: HumanDuration(Duration::from_secs(10)),
            send_timeout: HumanDuration(Duration::from_secs(60)),
            max_connections: 10_000,
        }
    }
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            origin: None,
            listen: default_listen(),
            admin_listen: None,
            name: default_name(),
            cache: CacheSettings::default(),
            origin_client: OriginClientSettings::default(),
            dns: DnsSettings::default(),
            health: HealthSettings::default(),
            limits: LimitSettings::default(),
            routes: Vec::new(),
            control: ControlSettings::default(),
            purge: Default::default(),
            admin: AdminSettings::default(),
            tls: super::tls::TlsSettings::default(),
            hosts: Vec::new(),
        }
    }
}

impl EdgeConfig {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<EdgeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates config text; `path` is used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<EdgeConfig, ConfigError> {
        let config: EdgeConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        config.validate(text, path)?;
        Ok(config)
    }

    /// Checks values that parse but make no sense. `text` locates keys.
    pub fn validate(&self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            line: line_of_key(text, key),
            key: key.to_string(),
            reason,
        };
        if let Some(origin) = &self.origin {
            let uri: http::Uri = origin
                .parse()
                .map_err(|e| invalid("origin", format!("not a URL: {e}")))?;
            match uri.scheme_str() {
                Some("http") | Some("https") => {}
                _ => return Err(invalid("origin", "scheme must be http or https".into())),
            }
            if uri.host().is_none() {
                return Err(invalid("origin", "URL has no host".into()));
            }
        }
        if self.cache.capacity.0 == 0 {
            return Err(invalid("capacity", "must be above zero".into()));
        }
        if self.cache.max_object_size.0 > self.cache.capacity.0 {
            return Err(invalid(
                "max_object_size",
                format!(
                    "{} is larger than the cache capacity {}",
                    self.cache.max_object_size, self.cache.capacity
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.cache.heuristic_fraction) {
            return Err(invalid(
                "heuristic_fraction",
                "must be between 0 and 1".into(),
            ));
        }
        for name in self
            .cache
            .targeted_fields
            .iter()
            .chain(&self.cache.strip_response_headers)
        {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(invalid(
                    "targeted_fields",
                    format!("`{name}` is not a header name"),
                ));
            }
        }
        if self.origin_client.connect_timeout.0.is_zero() {
            return Err(invalid("connect_timeout", "must be above zero".into()));
        }
        if self.origin_client.first_byte_timeout.0.is_zero() {
            return Err(invalid("first_byte_timeout", "must be above zero".into()));
        }
        if self.health.failure_threshold == 0 {
            return Err(invalid("failure_threshold", "must be at least 1".into()));
        }
        if !self.health.check_path.starts_with('/') {
            return Err(invalid("check_path", "must start with /".into()));
        }
        if self.limits.max_header_bytes.0 < 8192 {
            return Err(invalid("max_header_bytes", "must be at least 8KiB".into()));
        }
        if let Some(addr) = &self.control.addr {
            let port_ok = addr
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !port_ok {
                return Err(invalid("addr", format!("`{addr}` is not HOST:PORT")));
            }
        }
        if let Err((key, reason)) = super::tls::validate(self) {
            return Err(invalid(key, reason));
        }
        for route in &self.routes {
            if !route.prefix.starts_with('/') {
                return Err(invalid(
                    "prefix",
                    format!("`{}` must start with /", route.prefix),
                ));
            }
            for code in &route.failure_statuses {
                if !(100..=599).contains(code) {
                    return Err(invalid(
                        "failure_statuses",
                        format!("{code} is not a status code"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The routes ready for lookup.
    pub fn route_table(&self) -> RouteTable {
        RouteTable::new(self.routes.clone())
    }
}

/// The 1-based line where `key` is assigned, or 0 when it is not in the text.
fn line_of_key(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<EdgeConfig, ConfigError> {
        EdgeConfig::parse(text, Path::new("edge.toml"))
    }

    #[test]
    fn issue_example_parses() {
        let c = parse(
            r#"
origin = "http://origin.example:8080"
listen = "0.0.0.0:8080"

[[routes]]
prefix = "/api/"
on_origin_failure = "error"

[[routes]]
prefix = "/"
on_origin_failure = "serve-stale"
max_stale = "1d"
stale_while_revalidate = "30s"
"#,
        )
        .unwrap();
        assert_eq!(c.routes.len(), 2);
        let t = c.route_table();
        assert_eq!(
            t.lookup("h", "/api/x").on_origin_failure,
            super::super::OnOriginFailure::Error
        );
        assert_eq!(
            t.lookup("h", "/x").stale_while_revalidate.0,
            Duration::from_secs(30)
        );
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let err = parse("origin = \"http://a:1\"\n[cache]\ncapacityy = \"1MiB\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("edge.toml"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("capacityy"), "{err}");
    }

    #[test]
    fn bad_unit_names_key() {
        let err = parse("[cache]\nhit_for_pass = \"3 weeks\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2") && err.contains("hit_for_pass"),
            "{err}"
        );
    }

    #[test]
    fn invalid_value_names_line() {
        let err = parse("\norigin = \"ftp://x/\"\n").unwrap_err().to_string();
        assert_eq!(err, "edge.toml:2: `origin`: scheme must be http or https");
        let err = parse("[cache]\ncapacity = \"1MiB\"\nmax_object_size = \"2MiB\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("edge.toml:3: `max_object_size`"), "{err}");
    }
}
