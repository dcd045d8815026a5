//! Origin host name resolution with hickory-resolver, plugged into the
//! hyper-util connector. hickory caches answers for their record TTLs.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use edgecache::config::DnsSettings;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hyper_util::client::legacy::connect::dns::Name;

/// A host name that did not resolve.
#[derive(Debug, thiserror::Error)]
#[error("DNS lookup of {name} failed: {reason}")]
pub struct DnsError {
    /// The name looked up.
    pub name: String,
    /// Why it failed.
    pub reason: String,
}

/// A resolver for the origin client: every address of the name, tried in
/// order by the connector.
#[derive(Clone)]
pub struct HickoryResolver {
    inner: Arc<TokioResolver>,
    fixed: Arc<Option<(String, Vec<std::net::IpAddr>)>>,
}

impl HickoryResolver {
    /// Builds a resolver from `[dns]`: the given servers, or the system's.
    pub fn new(settings: &DnsSettings) -> Result<HickoryResolver, DnsError> {
        Self::with_fixed(settings, None)
    }

    /// Like `new`, but `host` resolves to the fixed `addresses` (from the
    /// config) without asking DNS.
    pub fn with_fixed(
        settings: &DnsSettings,
        fixed: Option<(String, Vec<std::net::IpAddr>)>,
    ) -> Result<HickoryResolver, DnsError> {
        let setup_error = |e: &dyn std::fmt::Display| DnsError {
            name: "<resolver setup>".into(),
            reason: e.to_string(),
        };
        let mut builder = if settings.servers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| setup_error(&e))?
        } else {
            let servers = settings
                .servers
                .iter()
                .map(|addr| {
                    let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                    for conn in &mut ns.connections {
                        conn.port = addr.port();
                    }
                    ns
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            )
            .with_options(ResolverOpts::default())
        };
        if let Some(timeout) = settings.timeout {
            builder.options_mut().timeout = timeout.0;
            builder.options_mut().attempts = 1;
        }
        let inner = builder.build().map_err(|e| setup_error(&e))?;
        Ok(HickoryResolver {
            inner: Arc::new(inner),
            fixed: Arc::new(fixed),
        })
    }
}

impl tower_service::Service<Name> for HickoryResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = DnsError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, DnsError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), DnsError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let resolver = self.inner.clone();
        let fixed = self.fixed.clone();
        Box::pin(async move {
            if let Some((host, addrs)) = fixed.as_ref() {
                if host.eq_ignore_ascii_case(name.as_str()) {
                    let addrs: Vec<SocketAddr> =
                        addrs.iter().map(|ip| SocketAddr::new(*ip, 0)).collect();
                    return Ok(addrs.into_iter());
                }
            }
            let lookup = resolver
                .lookup_ip(name.as_str())
                .await
                .map_err(|e| DnsError {
                    name: name.as_str().to_string(),
                    reason: e.to_string(),
                })?;
            // The connector fills in the port from the origin URL.
            let addrs: Vec<SocketAddr> = lookup.iter().map(|ip| SocketAddr::new(ip, 0)).collect();
            if addrs.is_empty() {
                return Err(DnsError {
                    name: name.as_str().to_string(),
                    reason: "no addresses".into(),
                });
            }
            Ok(addrs.into_iter())
        })
    }
}
