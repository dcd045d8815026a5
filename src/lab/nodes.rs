//! The lab's node processes: how each is started (arguments, generated edge
//! config), killed and restarted. Every child is spawned from one
//! long-lived thread, because PR_SET_PDEATHSIG fires when the *thread* that
//! spawned a child exits: a child started from a short-lived worker thread
//! would be killed with it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;

use super::plan::{NodePlan, Role};
use super::process::NodeProcess;
use super::state::NodeInfo;

type Job = Box<dyn FnOnce() + Send>;

/// The thread every node process is spawned from; it lives as long as the
/// lab.
pub struct Spawner {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Spawner {
    /// Starts the thread.
    pub fn start() -> anyhow::Result<Spawner> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("lab-spawner".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .context("starting the spawner thread")?;
        Ok(Spawner {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Starts `program args` (with the extra environment `envs`) on the
    /// spawner thread and waits for its `listening` lines.
    pub async fn spawn(
        &self,
        name: &str,
        program: &Path,
        args: &[String],
        envs: &[(String, String)],
        expect: &'static [&'static str],
    ) -> anyhow::Result<NodeProcess> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (name, program, args) = (name.to_string(), program.to_path_buf(), args.to_vec());
        let envs = envs.to_vec();
        let job: Job = Box::new(move || {
            let _ = tx.send(NodeProcess::spawn_with_env(
                &name, &program, &args, &envs, expect,
            ));
        });
        self.jobs
            .as_ref()
            .context("the spawner is stopped")?
            .send(job)
            .ok()
            .context("the spawner thread is gone")?;
        rx.await.context("the spawner thread dropped the job")?
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Whether a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Started and not known to have exited.
    Running,
    /// Killed through the control API.
    Killed,
    /// Exited by itself.
    Exited,
}

impl NodeState {
    /// The state as shown in `lab status`.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Running => "running",
            NodeState::Killed => "killed",
            NodeState::Exited => "exited",
        }
    }
}

/// A node of the running lab.
pub struct Node {
    /// Its place in the plan.
    pub plan: NodePlan,
    /// Its binary.
    pub program: PathBuf,
    /// Arguments of the next start: after the first start, with the bound
    /// addresses, so a restarted node comes back where its links point.
    pub args: Vec<String>,
    /// Extra environment of every start (the origin's purge token).
    pub envs: Vec<(String, String)>,
    /// The process, while one runs.
    pub process: Option<NodeProcess>,
    /// Public listener.
    pub http: SocketAddr,
    /// Admin listener (edges).
    pub admin: Option<SocketAddr>,
    /// Purge control listener (the origin).
    pub control: Option<SocketAddr>,
    /// Whether it runs.
    pub state: NodeState,
}

/// The listeners each kind of node reports.
fn expected(role: Role) -> &'static [&'static str] {
    match role {
        Role::Origin => &["http", "control"],
        Role::Shield | Role::Edge => &["http", "admin"],
    }
}

impl Node {
    /// Starts a node for `plan` and records where it listens.
    pub async fn start(
        spawner: &Spawner,
        plan: NodePlan,
        program: PathBuf,
        args: Vec<String>,
        envs: Vec<(String, String)>,
    ) -> anyhow::Result<Node> {
        let process = spawner
            .spawn(&plan.name, &program, &args, &envs, expected(plan.role))
            .await?;
        let http = process.addr("http").context("no http listener")?;
        let admin = process.addr("admin");
        let control = process.addr("control");
        let mut args = args;
        pin_address(&mut args, "--listen", http);
        if let Some(admin) = admin {
            pin_address(&mut args, "--admin-listen", admin);
        }
        if let Some(control) = control {
            pin_address(&mut args, "--control-listen", control);
        }
        Ok(Node {
            plan,
            program,
            args,
            envs,
            process: Some(process),
            http,
            admin,
            control,
            state: NodeState::Running,
        })
    }

    /// Kills the process (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
        self.state = NodeState::Killed;
    }

    /// Sends SIGTERM, without waiting.
    pub fn terminate(&mut self) {
        if let Some(process) = &mut self.process {
            process.terminate();
        }
    }

    /// Stops the process gracefully (SIGTERM, then SIGKILL after `grace`).
    pub fn stop(&mut self, grace: Duration) {
        if let Some(mut process) = self.process.take() {
            process.stop(grace);
        }
    }

    /// Starts the node again on the same addresses, after stopping any
    /// running process.
    pub async fn restart(&mut self, spawner: &Spawner) -> anyhow::Result<()> {
        self.stop(Duration::from_secs(5));
        let process = spawner
            .spawn(
                &self.plan.name,
                &self.program,
                &self.args,
                &self.envs,
                expected(self.plan.role),
            )
            .await?;
        self.process = Some(process);
        self.state = NodeState::Running;
        Ok(())
    }

    /// Notices a process that exited by itself.
    pub fn refresh(&mut self) {
        if let Some(process) = &mut self.process {
            if let Ok(Some(_)) = process.child.try_wait() {
                self.process = None;
                self.state = NodeState::Exited;
            }
        }
    }

    /// The process id, 0 when none runs.
    pub fn pid(&self) -> u32 {
        self.process.as_ref().map_or(0, |p| p.child.id())
    }

    /// The node as `lab.json` describes it.
    pub fn info(&self, healthy: bool) -> NodeInfo {
        NodeInfo {
            name: self.plan.name.clone(),
            region: self.plan.region.clone(),
            role: self.plan.role,
            http: self.http,
            admin: self.admin,
            pid: self.pid(),
            state: self.state.as_str().to_string(),
            healthy,
            upstream_link: self.plan.upstream_link.clone(),
            backup_link: self.plan.backup_link.clone(),
        }
    }
}

/// Replaces the value after `flag` with `addr`.
fn pin_address(args: &mut [String], flag: &str, addr: SocketAddr) {
    if let Some(i) = args.iter().position(|a| a == flag) {
        if let Some(value) = args.get_mut(i + 1) {
            *value = addr.to_string();
        }
    }
}

/// Arguments of the origin: its site, its content listener, and its purge
/// control listener with the purge log (the token goes in the environment,
/// never on the command line).
pub fn origin_args(
    site: &Path,
    listen: SocketAddr,
    control: SocketAddr,
    purge_log: &Path,
) -> Vec<String> {
    vec![
        "--root".into(),
        site.display().to_string(),
        "--listen".into(),
        listen.to_string(),
        "--control-listen".into(),
        control.to_string(),
        "--purge-log".into(),
        purge_log.display().to_string(),
    ]
}

/// Where an edge listens and how it joins the purge control plane.
pub struct EdgeAddrs {
    /// Public listener.
    pub listen: SocketAddr,
    /// Admin listener.
    pub admin: SocketAddr,
    /// The origin's purge control listener.
    pub control: SocketAddr,
}

/// Arguments of an edge: its config, listeners, and its identity on the
/// purge control plane (the node name and its region).
pub fn edge_args(config: &Path, addrs: &EdgeAddrs, id: &str, region: &str) -> Vec<String> {
    vec![
        "--config".into(),
        config.display().to_string(),
        "--listen".into(),
        addrs.listen.to_string(),
        "--admin-listen".into(),
        addrs.admin.to_string(),
        "--control".into(),
        addrs.control.to_string(),
        "--id".into(),
        id.to_string(),
        "--region".into(),
        region.to_string(),
    ]
}

/// The config file of an edge: its upstream (the shield's or the origin's
/// link), the origin as backup behind a shield, the client's Host passed
/// upstream (one cache key per URL at every tier), timeouts that fit the
/// topology's round trips, and the lab's routes: serve-stale by default,
/// `error` for `/api/` and `/_gen/1024/strict-` (the probe's consistency
/// objects).
pub fn edge_config(
    name: &str,
    primary: SocketAddr,
    backup: Option<SocketAddr>,
    max_rtt_ms: u32,
) -> String {
    let mut first_byte_ms = 2_000 + 3 * u64::from(max_rtt_ms);
    if backup.is_some() {
        // Behind a shield: outlast the shield's own timeout to the origin,
        // so a slow origin shows up as the shield's answer.
        first_byte_ms += 1_500;
    }
    let backup = backup.map_or_else(String::new, |b| format!("backup = \"http://{b}\"\n"));
    format!(
        r#"# Generated by `edgecache lab` for {name}.
name = "{name}"
origin = "http://{primary}"

[origin_client]
# Every tier keys its cache by the client's Host (the CDN name), so the
# shield coalesces the misses of all its region's edges.
preserve_host = true
connect_timeout = "1s"
first_byte_timeout = "{first_byte_ms}ms"
{backup}
[health]
failure_threshold = 2
check_interval = "500ms"
check_path = "/index.html"
recovery_threshold = 1

[[routes]]
prefix = "/"
on_origin_failure = "serve-stale"
max_stale = "1h"

[[routes]]
prefix = "/api/"
on_origin_failure = "error"

[[routes]]
prefix = "/_gen/1024/strict-"
on_origin_failure = "error"
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EdgeConfig;

    #[test]
    fn generated_configs_are_valid() {
        let a: SocketAddr = "127.0.150.1:8080".parse().unwrap();
        let b: SocketAddr = "127.0.150.2:8080".parse().unwrap();
        for backup in [None, Some(b)] {
            let text = edge_config("edge-x-1", a, backup, 190);
            let config = EdgeConfig::parse(&text, Path::new("gen.toml")).unwrap();
            assert_eq!(config.name, "edge-x-1");
            assert_eq!(
                config.origin_client.backup.is_some(),
                backup.is_some(),
                "{text}"
            );
            assert_eq!(config.routes.len(), 3);
        }
    }

    #[test]
    fn pins_addresses() {
        let addrs = EdgeAddrs {
            listen: a(0),
            admin: a(0),
            control: a(7000),
        };
        let mut args = edge_args(Path::new("c.toml"), &addrs, "edge-x-1", "x");
        pin_address(&mut args, "--listen", a(8080));
        pin_address(&mut args, "--admin-listen", a(9080));
        assert_eq!(args[3], "127.0.0.9:8080");
        assert_eq!(args[5], "127.0.0.9:9080");
        assert_eq!(
            args[7..],
            ["127.0.0.9:7000", "--id", "edge-x-1", "--region", "x"]
        );
        let mut args = origin_args(Path::new("site"), a(0), a(0), Path::new("p.log"));
        pin_address(&mut args, "--control-listen", a(7000));
        assert_eq!(args[5], "127.0.0.9:7000");
    }

    fn a(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 9], port))
    }
}
