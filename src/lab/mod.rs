//! `edgecache lab`: an origin with a sample site and edges in three regions,
//! each a real process on its own loopback address.

mod process;
mod sample_site;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

pub use process::{NodeProcess, sibling_binary};

/// The regions of the built-in lab, with the loopback subnet of each.
pub const REGIONS: [(&str, u8); 3] = [("us-east", 1), ("eu-west", 2), ("ap-south", 3)];

/// Flags of `edgecache lab`.
#[derive(Debug, clap::Args)]
pub struct LabArgs {
    /// Port of every node's public listener (0: ephemeral ports).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Port of every edge's admin listener (0: ephemeral ports).
    #[arg(long, default_value_t = 9080)]
    pub admin_port: u16,
    /// Scratch directory for the sample site and lab state (default: a new
    /// directory under the system temp dir).
    #[arg(long)]
    pub scratch: Option<PathBuf>,
    /// Start, print the table, and exit at once, stopping every node (a
    /// smoke test of the lab itself).
    #[arg(long)]
    pub check: bool,
}

/// One node of the running lab, for the table and `lab.json`.
#[derive(Debug, serde::Serialize)]
pub struct LabNode {
    /// Node name.
    pub name: String,
    /// `origin` or `edge`.
    pub role: &'static str,
    /// Region.
    pub region: &'static str,
    /// Public address.
    pub http: SocketAddr,
    /// Admin address, for edges.
    pub admin: Option<SocketAddr>,
    /// Process id.
    pub pid: u32,
}

/// Runs the lab until Ctrl-C (or at once with `--check`).
pub async fn run(args: LabArgs) -> anyhow::Result<()> {
    let origin_bin = sibling_binary("origin")?;
    let edge_bin = sibling_binary("edge")?;
    let scratch = match &args.scratch {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("edgecache-lab-{}", std::process::id())),
    };
    let site = scratch.join("site");
    std::fs::create_dir_all(&site).with_context(|| format!("creating {}", site.display()))?;
    sample_site::write(&site).context("writing the sample site")?;

    let mut procs: Vec<NodeProcess> = Vec::new();
    let mut nodes: Vec<LabNode> = Vec::new();
    let origin_ip = Ipv4Addr::new(127, 0, 0, 10);
    let origin = NodeProcess::spawn(
        "origin",
        &origin_bin,
        &[
            "--root".into(),
            site.display().to_string(),
            "--listen".into(),
            SocketAddr::from((origin_ip, args.port)).to_string(),
        ],
        &["http"],
    )?;
    let origin_addr = origin.addr("http").context("origin address")?;
    nodes.push(LabNode {
        name: "origin".into(),
        role: "origin",
        region: REGIONS[0].0,
        http: origin_addr,
        admin: None,
        pid: origin.child.id(),
    });
    procs.push(origin);
    for (region, subnet) in REGIONS {
        let ip = Ipv4Addr::new(127, 0, subnet, 1);
        let name = format!("edge-{region}-1");
        let edge = NodeProcess::spawn(
            &name,
            &edge_bin,
            &[
                "--origin".into(),
                format!("http://{origin_addr}"),
                "--listen".into(),
                SocketAddr::from((ip, args.port)).to_string(),
                "--admin-listen".into(),
                SocketAddr::from((ip, args.admin_port)).to_string(),
            ],
            &["http", "admin"],
        )?;
        nodes.push(LabNode {
            name,
            role: "edge",
            region,
            http: edge.addr("http").context("edge address")?,
            admin: edge.addr("admin"),
            pid: edge.child.id(),
        });
        procs.push(edge);
    }
    let state_file = scratch.join("lab.json");
    std::fs::write(&state_file, serde_json::to_string_pretty(&nodes)?)
        .with_context(|| format!("writing {}", state_file.display()))?;
    print_table(&nodes);
    if !args.check {
        println!("\nPress Ctrl-C to stop the lab.");
        crate::signals::terminated().await;
    }
    println!("stopping {} nodes", procs.len());
    for p in procs.iter_mut().rev() {
        p.stop(Duration::from_secs(5));
    }
    if args.scratch.is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    Ok(())
}

fn print_table(nodes: &[LabNode]) {
    println!(
        "{:<18} {:<7} {:<9} {:<22} {:<22}",
        "NODE", "ROLE", "REGION", "HTTP", "ADMIN"
    );
    for n in nodes {
        let admin = n.admin.map_or_else(|| "-".to_string(), |a| a.to_string());
        println!(
            "{:<18} {:<7} {:<9} {:<22} {:<22}",
            n.name, n.role, n.region, n.http, admin
        );
    }
    if let Some(edge) = nodes.iter().find(|n| n.role == "edge") {
        println!("\nTry:");
        println!(
            "  curl -i http://{}/index.html            # miss, then hit",
            edge.http
        );
        println!("  curl -i http://{}/assets/style.css", edge.http);
        println!(
            "  curl -i http://{}/_gen/1024?ttl=5      # generated content",
            edge.http
        );
        if let Some(admin) = edge.admin {
            println!("  curl http://{admin}/_edge/stats");
        }
    }
}
