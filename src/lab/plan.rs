//! The lab's layout, computed from the topology before anything starts:
//! every node's loopback address and role, and every emulated WAN link.
//!
//! Inside the topology's `subnet` 127.N.0.0/16:
//! - 127.N.0.2 the control API, 127.N.0.53 the steering DNS, 127.N.0.10 the
//!   origin, 127.N.0.11 the origin's purge control listener;
//! - 127.N.(100+r).(10+e): edge `e` of region `r`;
//! - 127.N.(150+r).k: the links used from region `r` (its edges' hops to
//!   the shield and the origin, then its clients' hops to every edge).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::topology::{ORIGIN, Topology};

/// What a node does in the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The origin.
    Origin,
    /// An edge that fills from the origin (and that others may fill from).
    Shield,
    /// An edge that fills from its region's shield (or the origin when the
    /// region has none).
    Edge,
}

impl Role {
    /// The role as shown in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Origin => "origin",
            Role::Shield => "shield",
            Role::Edge => "edge",
        }
    }
}

/// A node to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlan {
    /// Node name (`origin` or an edge name).
    pub name: String,
    /// Region.
    pub region: String,
    /// Role.
    pub role: Role,
    /// Loopback address of all its listeners.
    pub ip: Ipv4Addr,
    /// Name of the link leading to the primary upstream (edges only).
    pub upstream_link: Option<String>,
    /// Name of the link leading to the backup upstream (the origin, for
    /// edges behind a shield).
    pub backup_link: Option<String>,
}

/// An emulated WAN link to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkPlan {
    /// Link name, e.g. `eu-west--origin` or `clients-eu-west--edge-us-east-1`.
    pub name: String,
    /// Region the traffic comes from.
    pub from: String,
    /// Whether it carries the region's clients (else the region's edges).
    pub clients: bool,
    /// The node it leads to.
    pub to: String,
    /// Loopback address it listens on.
    pub ip: Ipv4Addr,
    /// Round trip it adds, in milliseconds (one-way delay is half of it).
    pub rtt_ms: u32,
}

impl LinkPlan {
    /// The one-way delay of the link.
    pub fn one_way_delay(&self) -> Duration {
        Duration::from_micros(u64::from(self.rtt_ms) * 500)
    }
}

/// The whole layout.
#[derive(Debug, Clone)]
pub struct LabPlan {
    /// Control API address (port 0 until bound).
    pub control_ip: Ipv4Addr,
    /// Steering DNS address.
    pub dns_ip: Ipv4Addr,
    /// Address of the origin's purge control listener (the purge API and
    /// the edges' purge stream).
    pub purge_control_ip: Ipv4Addr,
    /// Nodes in start order: the origin, the shields, the other edges.
    pub nodes: Vec<NodePlan>,
    /// Links.
    pub links: Vec<LinkPlan>,
}

/// Why a layout cannot be made.
#[derive(Debug, thiserror::Error)]
#[error("the topology is too large for the lab's address plan: {0}")]
pub struct PlanError(String);

/// Name of the link from region `from`'s nodes (or clients) to node `to`.
pub fn link_name(from: &str, clients: bool, to: &str) -> String {
    if clients {
        format!("clients-{from}--{to}")
    } else {
        format!("{from}--{to}")
    }
}

impl LabPlan {
    /// Lays out `topology`.
    pub fn new(topology: &Topology) -> Result<LabPlan, PlanError> {
        let net = topology.subnet.base().octets()[1];
        let ip = |c: usize, d: usize| -> Result<Ipv4Addr, PlanError> {
            let c = u8::try_from(c).map_err(|_| PlanError(format!("third octet {c}")))?;
            let d = u8::try_from(d)
                .ok()
                .filter(|d| *d < 255)
                .ok_or_else(|| PlanError(format!("too many addresses in 127.{net}.{c}.0/24")))?;
            Ok(Ipv4Addr::new(127, net, c, d))
        };
        if topology.regions.len() > 50 {
            return Err(PlanError("more than 50 regions".into()));
        }
        let origin_region = &topology.origin_region;
        let mut nodes = vec![NodePlan {
            name: ORIGIN.to_string(),
            region: origin_region.clone(),
            role: Role::Origin,
            ip: ip(0, 10)?,
            upstream_link: None,
            backup_link: None,
        }];
        let mut links = Vec::new();
        let mut others = Vec::new();
        for (r, region) in topology.regions.iter().enumerate() {
            let mut next_link = 1usize;
            let mut add_link = |links: &mut Vec<LinkPlan>, clients: bool, to: &str, rtt_ms: u32| {
                let plan = LinkPlan {
                    name: link_name(&region.name, clients, to),
                    from: region.name.clone(),
                    clients,
                    to: to.to_string(),
                    ip: ip(150 + r, next_link)?,
                    rtt_ms,
                };
                next_link += 1;
                let name = plan.name.clone();
                links.push(plan);
                Ok::<String, PlanError>(name)
            };
            let to_origin_rtt = topology
                .rtt_ms(&region.name, origin_region)
                .unwrap_or(topology.intra_region_rtt_ms);
            let origin_link = add_link(&mut links, false, ORIGIN, to_origin_rtt)?;
            let shield_link = match &region.shield {
                Some(shield) if region.edges.len() > 1 => Some(add_link(
                    &mut links,
                    false,
                    shield,
                    topology.intra_region_rtt_ms,
                )?),
                _ => None,
            };
            for (target_region, edge) in topology.edges() {
                let rtt = topology
                    .rtt_ms(&region.name, &target_region.name)
                    .unwrap_or(topology.intra_region_rtt_ms);
                add_link(&mut links, true, edge, rtt)?;
            }
            for (e, edge) in region.edges.iter().enumerate() {
                let is_shield = region.shield.as_deref() == Some(edge.as_str());
                let node = NodePlan {
                    name: edge.clone(),
                    region: region.name.clone(),
                    role: if is_shield { Role::Shield } else { Role::Edge },
                    ip: ip(100 + r, 10 + e)?,
                    upstream_link: Some(match (&shield_link, is_shield) {
                        (Some(link), false) => link.clone(),
                        _ => origin_link.clone(),
                    }),
                    backup_link: match (&shield_link, is_shield) {
                        (Some(_), false) => Some(origin_link.clone()),
                        _ => None,
                    },
                };
                if is_shield {
                    nodes.push(node);
                } else {
                    others.push(node);
                }
            }
        }
        nodes.extend(others);
        Ok(LabPlan {
            control_ip: ip(0, 2)?,
            dns_ip: ip(0, 53)?,
            purge_control_ip: ip(0, 11)?,
            nodes,
            links,
        })
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&NodePlan> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The link called `name`.
    pub fn link(&self, name: &str) -> Option<&LinkPlan> {
        self.links.iter().find(|l| l.name == name)
    }
}

/// A socket address on `ip` with `port`.
pub fn on(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_layout() {
        let plan = LabPlan::new(&Topology::builtin()).unwrap();
        assert_eq!(plan.nodes.len(), 7);
        assert_eq!(plan.nodes[0].role, Role::Origin);
        assert_eq!(plan.nodes[1].role, Role::Shield);
        // 3 regions: a link to the origin, one to the shield, six to edges.
        assert_eq!(plan.links.len(), 3 * 8);
        let edge = plan.node("edge-eu-west-2").unwrap();
        assert_eq!(
            edge.upstream_link.as_deref(),
            Some("eu-west--edge-eu-west-1")
        );
        assert_eq!(edge.backup_link.as_deref(), Some("eu-west--origin"));
        let shield = plan.node("edge-ap-south-1").unwrap();
        assert_eq!(shield.upstream_link.as_deref(), Some("ap-south--origin"));
        assert_eq!(plan.link("ap-south--origin").unwrap().rtt_ms, 190);
        let far = plan.link("clients-eu-west--edge-ap-south-2").unwrap();
        assert_eq!(far.rtt_ms, 120);
        assert_eq!(far.one_way_delay(), Duration::from_millis(60));
        let mut ips: Vec<Ipv4Addr> = plan.nodes.iter().map(|n| n.ip).collect();
        ips.extend(plan.links.iter().map(|l| l.ip));
        ips.extend([plan.control_ip, plan.dns_ip, plan.purge_control_ip]);
        let count = ips.len();
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), count, "addresses are distinct");
    }
}
