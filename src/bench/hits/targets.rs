//! The servers under test, each on its own loopback address and pinned to
//! the server CPUs: edgecache's edge, the bare hyper + moka baseline
//! (`edge-bare`), nginx and Varnish.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::peers::{self, PeerProcess, Tools};
use crate::bench::client::Check;
use crate::bench::node_command;
use crate::lab::NodeProcess;

/// The loopback address of the origin.
pub const ORIGIN_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 88, 1);

/// The names of the targets, in default order.
pub const ALL: [&str; 4] = ["edgecache", "bare", "nginx", "varnish"];

/// The loopback address of a target.
pub fn ip_of(name: &str) -> Ipv4Addr {
    match name {
        "edgecache" => Ipv4Addr::new(127, 0, 88, 2),
        "nginx" => Ipv4Addr::new(127, 0, 88, 3),
        "bare" => Ipv4Addr::new(127, 0, 88, 5),
        _ => Ipv4Addr::new(127, 0, 88, 4),
    }
}

/// The process behind a target.
pub enum Server {
    /// One of ours.
    Node(NodeProcess),
    /// nginx or Varnish.
    Peer(PeerProcess),
}

/// A running server under test.
pub struct Target {
    /// `edgecache`, `nginx` or `varnish`.
    pub name: &'static str,
    /// Its public address.
    pub addr: SocketAddr,
    /// Its admin address (edgecache only).
    pub admin: Option<SocketAddr>,
    /// The process.
    pub server: Server,
}

impl Target {
    /// The root pid of the server's process tree.
    pub fn pid(&self) -> u32 {
        match &self.server {
            Server::Node(n) => n.child.id(),
            Server::Peer(p) => p.pid(),
        }
    }

    /// Stops the server.
    pub fn stop(&mut self) {
        match &mut self.server {
            Server::Node(n) => n.stop(Duration::from_secs(3)),
            Server::Peer(p) => p.stop(Duration::from_secs(3)),
        }
    }

    /// Whether an answer is a cache hit, by this server's own headers.
    pub fn hit_check(&self) -> Check {
        match self.name {
            "edgecache" => Arc::new(|s, h| {
                let cs = h
                    .get("cache-status")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                s.is_success() && cs.contains("; hit") && !cs.contains("fwd=")
            }),
            // The baseline keeps no cache state to show: any 200 after warm-up.
            "bare" => Arc::new(|s, _| s.is_success()),
            "nginx" => Arc::new(|s, h| {
                s.is_success() && h.get("x-cache-status").is_some_and(|v| v == "HIT")
            }),
            // Varnish names two transactions in X-Varnish on a hit.
            _ => Arc::new(|s, h| {
                s.is_success()
                    && h.get("x-varnish")
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| v.trim().contains(' '))
            }),
        }
    }
}

/// Starts the origin (generated content) pinned to `cpus`.
pub fn start_origin(origin_bin: &Path, cpus: &str) -> anyhow::Result<NodeProcess> {
    let (program, mut args) = node_command(Some(cpus));
    args.extend([
        origin_bin.display().to_string(),
        "--listen".into(),
        format!("{ORIGIN_IP}:0"),
    ]);
    NodeProcess::spawn("origin", &program, &args, &["http"])
}

/// What starting a target needs.
pub struct StartContext<'a> {
    /// The edge binary.
    pub edge_bin: &'a Path,
    /// The bare baseline binary (`edge-bare`).
    pub bare_bin: &'a Path,
    /// nginx, varnishd.
    pub tools: &'a Tools,
    /// The origin's address.
    pub origin: SocketAddr,
    /// CPUs for servers.
    pub cpus: &'a str,
    /// Scratch directory; each peer gets a subdirectory.
    pub scratch: &'a Path,
    /// Cache capacity (edgecache) or storage size (Varnish), bytes.
    pub capacity: u64,
}

/// Starts one of our own servers (the edge, or the bare baseline, which has
/// no admin listener) pinned to the server CPUs, caching from the origin.
fn start_node(
    ctx: &StartContext<'_>,
    name: &'static str,
    kind: &str,
    bin: &Path,
    ip: Ipv4Addr,
    admin: bool,
) -> anyhow::Result<Target> {
    let (program, mut args) = node_command(Some(ctx.cpus));
    args.extend([
        bin.display().to_string(),
        "--origin".into(),
        format!("http://{}", ctx.origin),
        "--listen".into(),
        format!("{ip}:0"),
        "--capacity".into(),
        ctx.capacity.to_string(),
    ]);
    let mut listeners = vec!["http"];
    if admin {
        args.extend(["--admin-listen".into(), format!("{ip}:0")]);
        listeners.push("admin");
    }
    let node = NodeProcess::spawn(kind, &program, &args, &listeners)?;
    Ok(Target {
        name,
        addr: node
            .addr("http")
            .with_context(|| format!("{kind} address"))?,
        admin: node.addr("admin"),
        server: Server::Node(node),
    })
}

/// Starts the target `name`; `tag` names its scratch subdirectory.
pub async fn start(name: &str, tag: &str, ctx: &StartContext<'_>) -> anyhow::Result<Target> {
    let ip = ip_of(name);
    let dir: PathBuf = ctx.scratch.join(format!("{name}-{tag}"));
    match name {
        "edgecache" => start_node(ctx, "edgecache", "edge", ctx.edge_bin, ip, true),
        "bare" => start_node(ctx, "bare", "edge-bare", ctx.bare_bin, ip, false),
        "nginx" => {
            let nginx = ctx
                .tools
                .nginx
                .as_deref()
                .context("nginx is not installed")?;
            let addr = peers::free_port(ip)?;
            let p = peers::start_nginx(nginx, &dir, addr, ctx.origin, ctx.cpus).await?;
            Ok(Target {
                name: "nginx",
                addr,
                admin: None,
                server: Server::Peer(p),
            })
        }
        "varnish" => {
            let varnishd = ctx
                .tools
                .varnishd
                .as_deref()
                .context("varnishd is not installed")?;
            let addr = peers::free_port(ip)?;
            let p = peers::start_varnish(varnishd, &dir, addr, ctx.origin, ctx.capacity, ctx.cpus)
                .await?;
            Ok(Target {
                name: "varnish",
                addr,
                admin: None,
                server: Server::Peer(p),
            })
        }
        other => anyhow::bail!("unknown target {other:?} (expected one of {ALL:?})"),
    }
}
