//! The production surface of the edge config: the HTTPS listener and its
//! certificates, the served host names, and the checks on them.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::EdgeConfig;

/// `[tls]`: the HTTPS listener beside the plain HTTP one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// HTTPS listener address; no HTTPS listener when absent.
    pub listen: Option<SocketAddr>,
    /// Certificates chosen by SNI; the first is the default.
    pub certs: Vec<CertPair>,
}

/// One certificate chain and its private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertPair {
    /// The certificate chain (leaf first).
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Request fields that some frameworks behind a cache treat as the URL, host,
/// scheme or method. They are not part of the cache key, so forwarding them
/// would let one client poison the cached answer for everyone.
pub const UNKEYED_HEADERS: [&str; 6] = [
    "x-forwarded-host",
    "x-original-url",
    "x-rewrite-url",
    "x-forwarded-scheme",
    "x-http-method-override",
    "forwarded",
];

/// Checks the TLS, host and unkeyed-header keys; the error is the key and
/// the reason.
pub fn validate(config: &EdgeConfig) -> Result<(), (&'static str, String)> {
    if config.tls.listen.is_some() && config.tls.certs.is_empty() {
        return Err((
            "listen",
            "[tls] listen needs at least one certificate in `certs` (or --cert and --key)".into(),
        ));
    }
    for host in &config.hosts {
        let ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'*');
        if !ok {
            return Err(("hosts", format!("`{host}` is not a host name")));
        }
    }
    if let Some(name) = config.cache.forward_unkeyed_headers.first() {
        return Err((
            "forward_unkeyed_headers",
            format!(
                "`{name}` cannot be forwarded: edgecache does not put it in the cache key, so \
                 one client could poison the cached answer for all; serve such variants under \
                 distinct URLs or have the origin answer `Vary: {name}`"
            ),
        ));
    }
    Ok(())
}

/// Whether `host` (without port, lowercase) is one the edge serves:
/// any host when `hosts` is empty; `*.example` matches one or more labels.
pub fn host_allowed(hosts: &[String], host: &str) -> bool {
    hosts.is_empty()
        || hosts.iter().any(|h| match h.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix)
                .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
            None => h.eq_ignore_ascii_case(host),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_exactly_or_by_wildcard() {
        let hosts = vec!["cdn.example".to_string(), "*.img.example".to_string()];
        assert!(host_allowed(&hosts, "cdn.example"));
        assert!(host_allowed(&hosts, "a.img.example"));
        assert!(!host_allowed(&hosts, "img.example"));
        assert!(!host_allowed(&hosts, "evil.example"));
        assert!(host_allowed(&[], "anything"));
    }

    #[test]
    fn unkeyed_headers_are_refused_with_a_reason() {
        let text = "[cache]\nforward_unkeyed_headers = [\"x-forwarded-host\"]\n";
        let err = EdgeConfig::parse(text, std::path::Path::new("e.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("e.toml:2: `forward_unkeyed_headers`"),
            "{err}"
        );
        assert!(err.contains("poison"), "{err}");
    }

    #[test]
    fn tls_listen_needs_a_certificate() {
        let err = EdgeConfig::parse("[tls]\nlisten = \"127.0.0.1:0\"\n", "e.toml".as_ref())
            .unwrap_err()
            .to_string();
        assert!(err.contains("`listen`"), "{err}");
    }
}
