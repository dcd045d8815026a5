//! Nearest-edge steering: an authoritative DNS server (hickory-server) for
//! the CDN name that answers each client with the healthy edges of the
//! nearest region. The client's region comes from its source address (the
//! topology's client subnets); nearest is the lowest round-trip time from
//! that region to a region with at least one healthy edge; edge health
//! comes from polling each edge's `/_edge/ready`.

mod health;
mod server;

use std::net::{IpAddr, Ipv4Addr};

pub use health::{EdgeTarget, Health, check, poll};
pub use server::{DNS_TTL_SECS, SteeringHandler, SteeringServer};

use crate::topology::Topology;

/// The answer for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Steered {
    /// The client's region (the origin's when its address is in no client
    /// subnet).
    pub client_region: String,
    /// The region answered.
    pub region: String,
    /// The healthy edges of that region, in topology order.
    pub edges: Vec<(String, Ipv4Addr)>,
}

/// Picks the edges for a client at `client`: the healthy edges of the
/// nearest region that has any. `None` when no edge is healthy.
pub fn choose(
    topology: &Topology,
    targets: &[EdgeTarget],
    health: &Health,
    client: IpAddr,
) -> Option<Steered> {
    let client_region = match client {
        IpAddr::V4(ip) => topology.region_of_client(ip),
        IpAddr::V6(_) => None,
    }
    .map_or_else(|| topology.origin_region.clone(), |r| r.name.clone());
    for (region, _) in topology.regions_by_distance(&client_region) {
        let edges: Vec<(String, Ipv4Addr)> = targets
            .iter()
            .filter(|t| t.region == region.name && health.is_healthy(&t.name))
            .map(|t| (t.name.clone(), t.ip))
            .collect();
        if !edges.is_empty() {
            return Some(Steered {
                client_region,
                region: region.name.clone(),
                edges,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(topology: &Topology) -> Vec<EdgeTarget> {
        topology
            .edges()
            .enumerate()
            .map(|(i, (region, name))| EdgeTarget {
                name: name.to_string(),
                region: region.name.clone(),
                ip: Ipv4Addr::new(127, 0, 100, i as u8 + 1),
                admin: "127.0.0.1:1".parse().unwrap(),
            })
            .collect()
    }

    #[test]
    fn nearest_healthy_region_wins() {
        let topology = Topology::builtin();
        let targets = targets(&topology);
        let health = Health::default();
        let eu_client: IpAddr = "127.0.2.9".parse().unwrap();
        assert_eq!(choose(&topology, &targets, &health, eu_client), None);
        for t in &targets {
            health.set(&t.name, true);
        }
        let s = choose(&topology, &targets, &health, eu_client).unwrap();
        assert_eq!(s.client_region, "eu-west");
        assert_eq!(s.region, "eu-west");
        assert_eq!(s.edges.len(), 2);
        health.set("edge-eu-west-1", false);
        let s = choose(&topology, &targets, &health, eu_client).unwrap();
        assert_eq!(s.edges[0].0, "edge-eu-west-2");
        health.set("edge-eu-west-2", false);
        let s = choose(&topology, &targets, &health, eu_client).unwrap();
        assert_eq!(s.region, "us-east", "next nearest from eu-west");
        let ap = choose(&topology, &targets, &health, "127.0.3.1".parse().unwrap()).unwrap();
        assert_eq!(ap.region, "ap-south");
        let unknown = choose(&topology, &targets, &health, "127.9.9.9".parse().unwrap()).unwrap();
        assert_eq!(unknown.client_region, "us-east");
    }
}
