//! The lab's tables: regions, nodes, roles and addresses, the links, and
//! the commands to try.

use std::fmt::Write;

use super::plan::Role;
use super::state::LabFile;

/// The node table (with live state when `live`).
pub fn nodes(lab: &LabFile, live: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:<18} {:<7} {:<22} {:<22} {:>7}{}",
        "REGION",
        "NODE",
        "ROLE",
        "HTTP",
        "ADMIN",
        "PID",
        if live { "  STATE     HEALTHY" } else { "" }
    );
    for region in &lab.topology.regions {
        for n in lab.nodes.iter().filter(|n| n.region == region.name) {
            let admin = n.admin.map_or_else(|| "-".to_string(), |a| a.to_string());
            let _ = write!(
                out,
                "{:<10} {:<18} {:<7} {:<22} {:<22} {:>7}",
                n.region,
                n.name,
                n.role.as_str(),
                n.http.to_string(),
                admin,
                n.pid
            );
            if live {
                let _ = write!(
                    out,
                    "  {:<9} {}",
                    n.state,
                    if n.healthy { "yes" } else { "no" }
                );
            }
            out.push('\n');
        }
    }
    out
}

/// The regions: client subnets and round trips.
pub fn regions(lab: &LabFile) -> String {
    let topology = &lab.topology;
    let mut out = String::new();
    let _ = write!(out, "{:<10} {:<16}", "REGION", "CLIENTS");
    for r in &topology.regions {
        let _ = write!(out, " {:>10}", format!("rtt:{}", r.name));
    }
    out.push('\n');
    for a in &topology.regions {
        let _ = write!(out, "{:<10} {:<16}", a.name, a.clients.to_string());
        for b in &topology.regions {
            let ms = topology.rtt_ms(&a.name, &b.name).unwrap_or(0);
            let _ = write!(out, " {:>10}", format!("{ms} ms"));
        }
        out.push('\n');
    }
    out
}

/// Links that are not up, one per line ("" when all are up).
pub fn faults(lab: &LabFile) -> String {
    let mut out = String::new();
    for l in lab.links.iter().filter(|l| l.mode != "up") {
        let _ = writeln!(out, "  {:<40} {}", l.name, l.mode);
    }
    out
}

/// The commands to try against the running lab.
pub fn commands(lab: &LabFile) -> String {
    let mut out = String::new();
    let name = &lab.cdn_name;
    let _ = writeln!(out, "Steering DNS for {name}: {} (UDP and TCP)", lab.dns);
    let _ = writeln!(out, "Control API: http://{}/status", lab.control);
    if let Some(purge) = lab.purge_control {
        let _ = writeln!(
            out,
            "Purge API: http://{purge}/_purge (bearer token: purge_token in lab.json)"
        );
    }
    let _ = writeln!(out, "\nTry:");
    if let Some(region) = lab.topology.regions.get(1).or(lab.topology.regions.first()) {
        let client = region.clients.nth(100).unwrap_or(region.clients.base());
        let _ = writeln!(
            out,
            "  dig @{} -p {} -b {client} {name} +short   # the edge for a client in {}",
            lab.dns.ip(),
            lab.dns.port(),
            region.name
        );
    }
    if let Some(edge) = lab.nodes.iter().find(|n| n.role != Role::Origin) {
        let base = format!("http://{}", edge.http);
        let _ = writeln!(
            out,
            "  curl -i -H 'Host: {name}' {base}/index.html      # miss, then hit"
        );
        let _ = writeln!(out, "  curl -i -H 'Host: {name}' '{base}/_gen/1024?ttl=5'");
        if let Some(admin) = edge.admin {
            let _ = writeln!(out, "  curl http://{admin}/_edge/stats");
        }
        if let Some(link) = lab
            .links
            .iter()
            .find(|l| l.clients && l.to == edge.name && l.from != edge.region)
        {
            let _ = writeln!(
                out,
                "  curl -i -H 'Host: {name}' http://{}/index.html   # {} from {} ({} ms RTT)",
                link.listen, edge.name, link.from, link.rtt_ms
            );
        }
    }
    let region = lab
        .topology
        .regions
        .get(1)
        .or(lab.topology.regions.first())
        .map_or("REGION", |r| r.name.as_str());
    let edge = lab
        .topology
        .region(region)
        .and_then(|r| r.edges.first())
        .map_or("EDGE", String::as_str);
    let _ = writeln!(
        out,
        "  edgecache purge --url http://{name}/index.html   # every edge drops it; then a miss"
    );
    let _ = writeln!(out, "  edgecache probe --all-regions --all-edges");
    let _ = writeln!(
        out,
        "  edgecache probe --region {region} --scenario partition"
    );
    let _ = writeln!(out, "  edgecache lab status");
    let _ = writeln!(
        out,
        "  edgecache lab partition {region} origin   # then: edgecache lab heal {region} origin"
    );
    let _ = writeln!(
        out,
        "  edgecache lab kill {edge}   # then: edgecache lab restart {edge}"
    );
    out
}
