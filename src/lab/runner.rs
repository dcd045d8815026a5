//! Starting and stopping the lab: the origin, the edges tier by tier, the
//! emulated links, the steering DNS and the control API; then waiting for
//! Ctrl-C, SIGTERM, SIGHUP or the death of the lab's parent.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, watch};

use super::StartArgs;
use super::nodes::{EdgeAddrs, Node, Spawner, edge_args, edge_config, origin_args};
use super::plan::{LabPlan, LinkPlan, NodePlan, Role, on};
use super::shared::LabShared;
use super::state::{random_token, remove_pointer, write_pointer};
use super::{control, process::sibling_binary, sample_site, table};
use crate::purge_cli::TOKEN_ENV;
use crate::steering::{EdgeTarget, SteeringServer};
use crate::topology::Topology;
use crate::wan::{Link, LinkConfig, LinkHandle, Mode};

/// How long the nodes get to become healthy.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a stopping node gets before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What has been started so far, to stop on any failure.
struct Started {
    nodes: Vec<Node>,
    links: Vec<(LinkPlan, LinkHandle)>,
}

impl Started {
    fn stop(&mut self) {
        // Edges first, so none logs its purge control link dropping.
        for node in self
            .nodes
            .iter_mut()
            .filter(|n| n.plan.role != Role::Origin)
        {
            node.terminate();
        }
        for node in self.nodes.iter_mut().rev() {
            node.stop(STOP_GRACE);
        }
        for (_, link) in &self.links {
            link.shutdown();
        }
    }

    fn link_addr(&self, name: &str) -> anyhow::Result<SocketAddr> {
        self.links
            .iter()
            .find(|(p, _)| p.name == name)
            .map(|(_, h)| h.local_addr())
            .with_context(|| format!("link {name} is not started"))
    }

    /// Starts every link of `plan` leading to one of `targets`.
    async fn start_links_to(
        &mut self,
        plan: &LabPlan,
        targets: &[&NodePlan],
        port: u16,
    ) -> anyhow::Result<()> {
        let upstreams: HashMap<&str, SocketAddr> = self
            .nodes
            .iter()
            .map(|n| (n.plan.name.as_str(), n.http))
            .collect();
        for link in plan
            .links
            .iter()
            .filter(|l| targets.iter().any(|t| t.name == l.to))
        {
            let upstream = *upstreams
                .get(link.to.as_str())
                .with_context(|| format!("node {} is not started", link.to))?;
            let handle = Link::start(LinkConfig {
                name: link.name.clone(),
                listen: on(link.ip, port),
                upstream,
                delay: link.one_way_delay(),
                jitter: Duration::ZERO,
                mode: Mode::Up,
            })
            .await
            .with_context(|| format!("starting link {}", link.name))?;
            self.links.push((link.clone(), handle));
        }
        Ok(())
    }
}

/// Runs the lab until asked to stop (or at once with `--check`).
pub async fn run(args: &StartArgs) -> anyhow::Result<()> {
    // Installed first, so a signal sent while starting is not lost.
    let end = EndSignals::install()?;
    let topology = match &args.topology {
        Some(path) => Topology::load(path)?,
        None => Topology::builtin(),
    };
    let plan = LabPlan::new(&topology)?;
    let origin_bin = sibling_binary("origin")?;
    let edge_bin = sibling_binary("edge")?;
    let scratch = match &args.scratch {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("edgecache-lab-{}", std::process::id())),
    };
    let site = scratch.join("site");
    std::fs::create_dir_all(scratch.join("edges"))
        .with_context(|| format!("creating {}", scratch.display()))?;
    std::fs::create_dir_all(&site).with_context(|| format!("creating {}", site.display()))?;
    sample_site::write(&site).context("writing the sample site")?;
    let spawner = Spawner::start()?;
    let mut started = Started {
        nodes: Vec::new(),
        links: Vec::new(),
    };
    // Lives until the lab stops (after the nodes).
    let nats = match args.purge_bus {
        crate::purge::nats::PurgeBackend::Nats => {
            let [a, b, c, d] = plan.purge_control_ip.octets();
            let ip = std::net::Ipv4Addr::new(a, b, c, d.wrapping_add(1));
            Some(super::nats::LabNats::start(ip, &scratch)?)
        }
        crate::purge::nats::PurgeBackend::Builtin => None,
    };
    let bins = Binaries {
        origin: origin_bin,
        edge: edge_bin,
        purge_token: random_token()?,
        purge_bus_args: nats.as_ref().map(|n| n.node_args()).unwrap_or_default(),
    };
    let result = start_nodes(
        args,
        &topology,
        &plan,
        &bins,
        &scratch,
        &spawner,
        &mut started,
    )
    .await;
    if let Err(e) = result {
        started.stop();
        return Err(e);
    }
    let topology = Arc::new(topology);
    let targets: Vec<EdgeTarget> = started
        .nodes
        .iter()
        .filter_map(|n| {
            let ip = match n.http.ip() {
                std::net::IpAddr::V4(ip) => ip,
                std::net::IpAddr::V6(_) => return None,
            };
            Some(EdgeTarget {
                name: n.plan.name.clone(),
                region: n.plan.region.clone(),
                ip,
                admin: n.admin?,
            })
        })
        .collect();
    let servers = async {
        let steering = SteeringServer::start(
            Arc::clone(&topology),
            targets,
            on(plan.dns_ip, args.dns_port),
        )
        .await?;
        let control_addr = on(plan.control_ip, args.control_port);
        let control = TcpListener::bind(control_addr)
            .await
            .with_context(|| format!("lab control API: cannot listen on {control_addr}"))?;
        anyhow::Ok((steering, control))
    }
    .await;
    let (steering, control_listener) = match servers {
        Ok(s) => s,
        Err(e) => {
            started.stop();
            return Err(e);
        }
    };
    let purge_control = match started.nodes.iter().find_map(|n| n.control) {
        Some(addr) => addr,
        None => {
            started.stop();
            steering.shutdown().await;
            bail!("the origin reported no purge control listener");
        }
    };
    let lab = Arc::new(LabShared {
        topology,
        nodes: Mutex::new(std::mem::take(&mut started.nodes)),
        links: std::mem::take(&mut started.links),
        health: steering.health(),
        spawner,
        control: control_listener.local_addr()?,
        dns: steering.addr(),
        purge_control,
        purge_token: bins.purge_token.clone(),
        scratch: scratch.clone(),
        lab_json: scratch.join("lab.json"),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let control_task = tokio::spawn(control::serve(control_listener, Arc::clone(&lab), stop_rx));
    let outcome = announce_and_wait(args, &lab, end).await;
    stop_tx.send_replace(true);
    let _ = control_task.await;
    steering.shutdown().await;
    lab.stop_all(STOP_GRACE).await;
    if !args.no_pointer {
        remove_pointer();
    }
    if args.scratch.is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    println!("lab stopped");
    outcome
}

/// The node binaries, and the purge token the lab generated for this run.
struct Binaries {
    origin: PathBuf,
    edge: PathBuf,
    purge_token: String,
    /// Extra flags of every node for the purge bus (`--purge-bus nats`).
    purge_bus_args: Vec<String>,
}

/// Starts the origin, the shields, the other edges and the links, tier by
/// tier, then waits until every node answers its health check.
async fn start_nodes(
    args: &StartArgs,
    topology: &Topology,
    plan: &LabPlan,
    bins: &Binaries,
    scratch: &Path,
    spawner: &Spawner,
    started: &mut Started,
) -> anyhow::Result<()> {
    let max_rtt = topology
        .rtt_ms
        .values()
        .copied()
        .chain([topology.intra_region_rtt_ms])
        .max()
        .unwrap_or(0);
    for role in [Role::Origin, Role::Shield, Role::Edge] {
        let tier: Vec<&NodePlan> = plan.nodes.iter().filter(|n| n.role == role).collect();
        for node in &tier {
            let started_node = if role == Role::Origin {
                let mut node_args = origin_args(
                    &scratch.join("site"),
                    on(node.ip, args.port),
                    on(plan.purge_control_ip, args.purge_port),
                    &scratch.join("purge.log"),
                );
                node_args.extend(bins.purge_bus_args.iter().cloned());
                let envs = vec![(TOKEN_ENV.to_string(), bins.purge_token.clone())];
                Node::start(
                    spawner,
                    (*node).clone(),
                    bins.origin.clone(),
                    node_args,
                    envs,
                )
                .await?
            } else {
                let control = started
                    .nodes
                    .iter()
                    .find_map(|n| n.control)
                    .context("the origin reported no purge control listener")?;
                let primary_link = node
                    .upstream_link
                    .as_deref()
                    .context("edge without upstream")?;
                let primary = started.link_addr(primary_link)?;
                let backup = match &node.backup_link {
                    Some(link) => Some(started.link_addr(link)?),
                    None => None,
                };
                let config = scratch.join("edges").join(format!("{}.toml", node.name));
                std::fs::write(&config, edge_config(&node.name, primary, backup, max_rtt))
                    .with_context(|| format!("writing {}", config.display()))?;
                let addrs = EdgeAddrs {
                    listen: on(node.ip, args.port),
                    admin: on(node.ip, args.admin_port),
                    control,
                };
                let mut node_args = edge_args(&config, &addrs, &node.name, &node.region);
                node_args.extend(bins.purge_bus_args.iter().cloned());
                Node::start(
                    spawner,
                    (*node).clone(),
                    bins.edge.clone(),
                    node_args,
                    Vec::new(),
                )
                .await?
            };
            started.nodes.push(started_node);
        }
        started.start_links_to(plan, &tier, args.port).await?;
    }
    wait_ready(&started.nodes).await
}

/// Waits until the origin answers `/_stats`, every edge `/_edge/ready`,
/// and every edge has joined the origin's purge control plane (so that a
/// purge issued as soon as the lab is up reaches every edge).
async fn wait_ready(nodes: &[Node]) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    for node in nodes {
        let (addr, path) = match node.admin {
            Some(admin) => (admin, "/_edge/ready"),
            None => (node.http, "/_stats"),
        };
        loop {
            let ok = matches!(
                super::http::get(addr, path, Duration::from_secs(1)).await,
                Ok((status, _)) if status.is_success()
            );
            if ok {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not become healthy within {READY_TIMEOUT:?}",
                    node.plan.name
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let edges = nodes.iter().filter(|n| n.plan.role != Role::Origin).count();
    for control in nodes.iter().filter_map(|n| n.control) {
        loop {
            let connected = edges_connected(control).await;
            if connected >= edges as u64 {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "only {connected} of {edges} edges joined the purge control plane \
                     within {READY_TIMEOUT:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// How many edges the purge control listener at `control` reports
/// connected (0 when it does not answer).
async fn edges_connected(control: SocketAddr) -> u64 {
    match super::http::get(control, "/_control/health", Duration::from_secs(1)).await {
        Ok((status, body)) if status.is_success() => {
            serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["edges_connected"].as_u64())
                .unwrap_or(0)
        }
        _ => 0,
    }
}

/// Writes `lab.json` and the pointer, prints the tables, then waits for the
/// end.
async fn announce_and_wait(
    args: &StartArgs,
    lab: &LabShared,
    end: EndSignals,
) -> anyhow::Result<()> {
    // Let the steering DNS see every edge before anyone asks it.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let all = lab
            .nodes
            .lock()
            .await
            .iter()
            .all(|n| n.plan.role == Role::Origin || lab.health.is_healthy(&n.plan.name));
        if all || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let snapshot = lab.snapshot().await;
    snapshot.write(&lab.lab_json)?;
    if !args.no_pointer {
        write_pointer(&lab.lab_json)?;
    }
    println!("{}", table::regions(&snapshot));
    println!("{}", table::nodes(&snapshot, false));
    println!(
        "{} emulated WAN links; lab state in {}",
        snapshot.links.len(),
        lab.lab_json.display()
    );
    println!("{}", table::commands(&snapshot));
    println!("listening control {}", lab.control);
    println!("listening purge-control {}", lab.purge_control);
    println!("listening dns {}", lab.dns);
    use std::io::Write;
    let _ = std::io::stdout().flush();
    if args.check {
        return Ok(());
    }
    println!("Press Ctrl-C to stop the lab.");
    let _ = std::io::stdout().flush();
    end.wait().await;
    Ok(())
}

/// The signals that stop the lab: SIGINT (Ctrl-C), SIGTERM and SIGHUP.
struct EndSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl EndSignals {
    fn install() -> anyhow::Result<EndSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(EndSignals {
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
        })
    }

    /// Completes on one of the signals, or when the lab's parent process
    /// exits (the lab is then re-parented).
    async fn wait(mut self) {
        // SAFETY: getppid(2) has no preconditions.
        let parent = unsafe { libc::getppid() };
        let orphaned = async {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                // SAFETY: as above.
                if unsafe { libc::getppid() } != parent {
                    tracing::info!("the lab's parent exited: stopping");
                    return;
                }
            }
        };
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
            _ = self.hup.recv() => {}
            _ = orphaned => {}
        }
    }
}
