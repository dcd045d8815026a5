//! The running lab's state, shared by the runner and the control API: the
//! nodes (killed and restarted on request), the links (partitioned and
//! healed), and the health the steering DNS sees.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use super::nodes::{Node, NodeState, Spawner};
use super::plan::{LinkPlan, Role};
use super::state::{LabFile, LinkInfo, NodeInfo};
use crate::steering::Health;
use crate::topology::{ORIGIN, Topology};
use crate::wan::{LinkHandle, Mode};

/// A control request the lab refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// An unknown node, region or link name.
    #[error("{0}")]
    NotFound(String),
    /// A request that makes no sense.
    #[error("{0}")]
    BadRequest(String),
    /// The lab failed to carry it out.
    #[error("{0}")]
    Failed(String),
}

/// Everything the control API acts on.
pub struct LabShared {
    /// The topology.
    pub topology: Arc<Topology>,
    /// The nodes.
    pub nodes: Mutex<Vec<Node>>,
    /// The links with their plans.
    pub links: Vec<(LinkPlan, LinkHandle)>,
    /// Edge health, as polled by the steering DNS.
    pub health: Health,
    /// The thread that spawns node processes.
    pub spawner: Spawner,
    /// The control API's address.
    pub control: SocketAddr,
    /// The steering DNS's address.
    pub dns: SocketAddr,
    /// The origin's purge control listener.
    pub purge_control: SocketAddr,
    /// The purge API's bearer token.
    pub purge_token: String,
    /// The scratch directory.
    pub scratch: PathBuf,
    /// Where `lab.json` is.
    pub lab_json: PathBuf,
}

/// One side of a partition: links from `regions`, or to `nodes`.
struct Side {
    regions: Vec<String>,
    nodes: Vec<String>,
}

impl LabShared {
    /// The lab as `lab.json` and `lab status --json` describe it, with live
    /// node states, health and link modes.
    pub async fn snapshot(&self) -> LabFile {
        let mut infos = Vec::new();
        {
            let mut nodes = self.nodes.lock().await;
            for node in nodes.iter_mut() {
                node.refresh();
                infos.push((node.info(false), node.state == NodeState::Running));
            }
        }
        let mut out = Vec::with_capacity(infos.len());
        for (mut info, running) in infos {
            info.healthy = running
                && match info.role {
                    Role::Origin => matches!(
                        super::http::get(info.http, "/_stats", Duration::from_millis(500)).await,
                        Ok((status, _)) if status.is_success()
                    ),
                    Role::Shield | Role::Edge => self.health.is_healthy(&info.name),
                };
            out.push(info);
        }
        LabFile {
            pid: std::process::id(),
            control: self.control,
            dns: self.dns,
            cdn_name: self.topology.cdn_name.clone(),
            scratch: self.scratch.clone(),
            purge_control: Some(self.purge_control),
            purge_token: Some(self.purge_token.clone()),
            topology: (*self.topology).clone(),
            nodes: out,
            links: self.links.iter().map(|(p, h)| link_info(p, h)).collect(),
        }
    }

    /// Rewrites `lab.json` (after a node changed).
    pub async fn write_lab_json(&self) {
        let snapshot = self.snapshot().await;
        if let Err(e) = snapshot.write(&self.lab_json) {
            tracing::warn!(error = %e, "cannot update lab.json");
        }
    }

    /// Kills `name` (SIGKILL), as a crash would.
    pub async fn kill(&self, name: &str) -> Result<NodeInfo, ControlError> {
        let info = {
            let mut nodes = self.nodes.lock().await;
            let node = find(&mut nodes, name)?;
            node.kill();
            node.info(false)
        };
        if info.role != Role::Origin {
            self.health.set(name, false);
        }
        tracing::info!(node = name, "killed");
        self.write_lab_json().await;
        Ok(info)
    }

    /// Restarts `name` on the same addresses.
    pub async fn restart(&self, name: &str) -> Result<NodeInfo, ControlError> {
        let info = {
            let mut nodes = self.nodes.lock().await;
            let node = find(&mut nodes, name)?;
            node.restart(&self.spawner)
                .await
                .map_err(|e| ControlError::Failed(format!("restarting {name}: {e:#}")))?;
            node.info(false)
        };
        tracing::info!(node = name, pid = info.pid, "restarted");
        self.write_lab_json().await;
        Ok(info)
    }

    /// Sets every link between `a` and `b` to `mode`; answers the links
    /// changed. `a` and `b` are region names, node names or `*` (all): a
    /// region matches the links its nodes and clients send through and the
    /// links leading to its nodes; a node matches the links leading to it.
    pub fn set_links_between(
        &self,
        a: &str,
        b: &str,
        mode: Mode,
    ) -> Result<Vec<String>, ControlError> {
        let (a_side, b_side) = (self.side(a)?, self.side(b)?);
        let crosses = |from: &Side, to: &Side, link: &LinkPlan| {
            from.regions.contains(&link.from) && to.nodes.contains(&link.to)
        };
        let mut changed = Vec::new();
        for (plan, handle) in &self.links {
            if crosses(&a_side, &b_side, plan) || crosses(&b_side, &a_side, plan) {
                handle.set_mode(mode);
                changed.push(plan.name.clone());
            }
        }
        if changed.is_empty() {
            return Err(ControlError::BadRequest(format!(
                "no link runs between `{a}` and `{b}` (links run from a region to a node)"
            )));
        }
        tracing::info!(a, b, %mode, links = changed.len(), "links changed");
        Ok(changed)
    }

    fn side(&self, name: &str) -> Result<Side, ControlError> {
        let all_nodes = || {
            std::iter::once(ORIGIN.to_string())
                .chain(self.topology.edges().map(|(_, e)| e.to_string()))
        };
        if name == "*" {
            return Ok(Side {
                regions: self
                    .topology
                    .regions
                    .iter()
                    .map(|r| r.name.clone())
                    .collect(),
                nodes: all_nodes().collect(),
            });
        }
        if let Some(region) = self.topology.region(name) {
            let mut nodes = region.edges.clone();
            if self.topology.origin_region == region.name {
                nodes.push(ORIGIN.to_string());
            }
            return Ok(Side {
                regions: vec![region.name.clone()],
                nodes,
            });
        }
        if all_nodes().any(|n| n == name) {
            return Ok(Side {
                regions: Vec::new(),
                nodes: vec![name.to_string()],
            });
        }
        Err(ControlError::NotFound(format!(
            "`{name}` is neither a region, a node nor `*`"
        )))
    }

    /// Stops every node (SIGTERM to the edges, then to the origin once they
    /// are gone; SIGKILL after `grace`) and every link.
    pub async fn stop_all(&self, grace: Duration) {
        let mut nodes = self.nodes.lock().await;
        // Edges first, so none logs its purge control link dropping.
        for node in nodes.iter_mut().filter(|n| n.plan.role != Role::Origin) {
            node.terminate();
        }
        for node in nodes.iter_mut().rev() {
            node.stop(grace);
        }
        for (_, handle) in &self.links {
            handle.shutdown();
        }
    }
}

fn find<'a>(nodes: &'a mut [Node], name: &str) -> Result<&'a mut Node, ControlError> {
    nodes
        .iter_mut()
        .find(|n| n.plan.name == name)
        .ok_or_else(|| ControlError::NotFound(format!("no node `{name}`")))
}

/// A link as `lab.json` describes it.
pub fn link_info(plan: &LinkPlan, handle: &LinkHandle) -> LinkInfo {
    LinkInfo {
        name: plan.name.clone(),
        from: plan.from.clone(),
        clients: plan.clients,
        to: plan.to.clone(),
        listen: handle.local_addr(),
        upstream: handle.upstream(),
        rtt_ms: plan.rtt_ms,
        mode: handle.mode().to_string(),
    }
}
