//! Resolving the CDN name through the lab's steering DNS with
//! hickory-resolver, from a client address inside a region's subnet, like a
//! client of that region behind its resolver.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;

use crate::topology::Region;

/// Why the CDN name did not resolve.
#[derive(Debug, thiserror::Error)]
#[error("resolving {name} from {client} through {server}: {reason}")]
pub struct ResolveError {
    /// The name.
    pub name: String,
    /// The client address the query came from.
    pub client: Ipv4Addr,
    /// The steering DNS server.
    pub server: SocketAddr,
    /// What went wrong.
    pub reason: String,
}

/// The address a probe uses as a client of `region`: inside its subnet.
pub fn client_ip(region: &Region) -> Ipv4Addr {
    [100, 1, 0]
        .into_iter()
        .find_map(|offset| region.clients.nth(offset))
        .unwrap_or(region.clients.base())
}

/// Resolves `name` through the DNS server at `server`, sending the query
/// from `client` (so the server sees the client's region). Answers the
/// IPv4 addresses, in the server's order.
pub async fn resolve(
    server: SocketAddr,
    client: Ipv4Addr,
    name: &str,
) -> Result<Vec<Ipv4Addr>, ResolveError> {
    let error = |reason: String| ResolveError {
        name: name.to_string(),
        client,
        server,
        reason,
    };
    let mut ns = NameServerConfig::udp_and_tcp(server.ip());
    for conn in &mut ns.connections {
        conn.port = server.port();
        conn.bind_addr = Some(SocketAddr::from((client, 0)));
    }
    let mut options = ResolverOpts::default();
    options.timeout = Duration::from_secs(2);
    options.attempts = 2;
    options.cache_size = 0;
    let resolver = TokioResolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![ns]),
        TokioRuntimeProvider::default(),
    )
    .with_options(options)
    .build()
    .map_err(|e| error(format!("resolver setup: {e}")))?;
    let fqdn = format!("{}.", name.trim_end_matches('.'));
    let lookup = resolver
        .lookup_ip(fqdn.as_str())
        .await
        .map_err(|e| error(e.to_string()))?;
    let ips: Vec<Ipv4Addr> = lookup
        .iter()
        .filter_map(|ip| match ip {
            IpAddr::V4(ip) => Some(ip),
            IpAddr::V6(_) => None,
        })
        .collect();
    if ips.is_empty() {
        return Err(error("no A record in the answer".into()));
    }
    Ok(ips)
}
