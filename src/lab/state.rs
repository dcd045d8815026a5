//! `lab.json`, the description of a running lab that other commands read,
//! and the pointer file at a well-known path that leads to it.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::plan::Role;
use crate::topology::Topology;

/// Environment variable naming a `lab.json` (like `--lab`).
pub const LAB_ENV: &str = "EDGECACHE_LAB";

/// One node of a running lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Role.
    pub role: Role,
    /// Public HTTP listener.
    pub http: SocketAddr,
    /// Admin listener (edges).
    pub admin: Option<SocketAddr>,
    /// Process id (of the latest start).
    pub pid: u32,
    /// `running`, `killed` or `exited` (live in `lab status`; `running` in
    /// the file).
    #[serde(default = "running")]
    pub state: String,
    /// Whether its last health check passed (live in `lab status`).
    #[serde(default)]
    pub healthy: bool,
    /// Name of the link to its primary upstream (edges).
    #[serde(default)]
    pub upstream_link: Option<String>,
    /// Name of the link to its backup upstream.
    #[serde(default)]
    pub backup_link: Option<String>,
}

fn running() -> String {
    "running".to_string()
}

/// One emulated WAN link of a running lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkInfo {
    /// Link name.
    pub name: String,
    /// Region the traffic comes from.
    pub from: String,
    /// Whether it carries clients (else edges).
    pub clients: bool,
    /// Node it leads to.
    pub to: String,
    /// Where it listens.
    pub listen: SocketAddr,
    /// Where it forwards.
    pub upstream: SocketAddr,
    /// Round trip it adds, in milliseconds.
    pub rtt_ms: u32,
    /// Current mode (`up`, `blackhole`, ...).
    #[serde(default = "up")]
    pub mode: String,
}

fn up() -> String {
    "up".to_string()
}

/// The contents of `lab.json` (and of `lab status --json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabFile {
    /// Process id of the lab itself.
    pub pid: u32,
    /// The control API.
    pub control: SocketAddr,
    /// The steering DNS server (UDP and TCP).
    pub dns: SocketAddr,
    /// The name the steering DNS answers for.
    pub cdn_name: String,
    /// The scratch directory.
    pub scratch: PathBuf,
    /// The origin's purge control listener (`edgecache purge --control`,
    /// and every edge's `--control`); absent in labs from before the purge
    /// control plane.
    #[serde(default)]
    pub purge_control: Option<SocketAddr>,
    /// The purge API's bearer token, generated at each lab start (this is
    /// why `lab.json` is only readable by its owner).
    #[serde(default)]
    pub purge_token: Option<String>,
    /// The topology the lab runs.
    pub topology: Topology,
    /// Every node.
    pub nodes: Vec<NodeInfo>,
    /// Every link.
    pub links: Vec<LinkInfo>,
}

impl LabFile {
    /// Reads and checks a `lab.json`.
    pub fn read(path: &Path) -> anyhow::Result<LabFile> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: LabFile = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a lab description", path.display()))?;
        file.topology
            .validate(path)
            .with_context(|| format!("{}: bad topology", path.display()))?;
        Ok(file)
    }

    /// Writes it atomically (temp file, then rename), readable by its
    /// owner only: it holds the purge token.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        use std::io::Write;
        #[cfg(unix)]
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = path.with_extension("json.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        options.mode(0o600);
        let mut file = options
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        file.write_all(serde_json::to_string_pretty(self)?.as_bytes())
            .with_context(|| format!("writing {}", tmp.display()))?;
        drop(file);
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// The purge control address and token of this lab, or why there are
    /// none.
    pub fn purge_access(&self) -> anyhow::Result<(SocketAddr, String)> {
        match (self.purge_control, &self.purge_token) {
            (Some(addr), Some(token)) if !token.is_empty() => Ok((addr, token.clone())),
            _ => bail!(
                "the lab of pid {} runs no purge control plane (restart it with a \
                 newer edgecache)",
                self.pid
            ),
        }
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The edge whose public listener is on `ip`.
    pub fn edge_at(&self, ip: IpAddr) -> Option<&NodeInfo> {
        self.nodes
            .iter()
            .find(|n| n.role != Role::Origin && n.http.ip() == ip)
    }

    /// The link carrying region `from`'s clients to node `to`.
    pub fn client_link(&self, from: &str, to: &str) -> Option<&LinkInfo> {
        self.links
            .iter()
            .find(|l| l.clients && l.from == from && l.to == to)
    }
}

/// The pointer file: `<temp dir>/edgecache-lab/current.json`.
pub fn pointer_path() -> PathBuf {
    std::env::temp_dir()
        .join("edgecache-lab")
        .join("current.json")
}

/// What the pointer file holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pointer {
    /// The running lab's `lab.json`.
    pub lab: PathBuf,
    /// The lab's process id.
    pub pid: u32,
}

/// Writes the pointer to `lab_json`.
pub fn write_pointer(lab_json: &Path) -> anyhow::Result<()> {
    let path = pointer_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let pointer = Pointer {
        lab: lab_json.to_path_buf(),
        pid: std::process::id(),
    };
    std::fs::write(&path, serde_json::to_string_pretty(&pointer)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// Removes the pointer if it still leads to this process's lab.
pub fn remove_pointer() {
    let path = pointer_path();
    let ours = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str::<Pointer>(&t).ok())
        .is_some_and(|p| p.pid == std::process::id());
    if ours {
        let _ = std::fs::remove_file(path);
    }
}

/// Whether a process with this id exists.
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with signal 0 only checks for existence.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A fresh random bearer token for the lab's purge API: a UUID v4 built
/// from 16 bytes of the kernel's random source.
pub fn random_token() -> anyhow::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for the purge token")?;
    Ok(uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string())
}

/// Finds the running lab: `explicit` (a `lab.json` from `--lab` or
/// `EDGECACHE_LAB`), else the pointer file.
pub fn find_lab(explicit: Option<&Path>) -> anyhow::Result<LabFile> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None => {
            let pointer_file = pointer_path();
            let text = std::fs::read_to_string(&pointer_file).with_context(|| {
                format!(
                    "no running lab found ({} is missing): start one with `edgecache lab`, \
                     or pass --lab PATH/lab.json",
                    pointer_file.display()
                )
            })?;
            let pointer: Pointer = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a lab pointer", pointer_file.display()))?;
            if !process_alive(pointer.pid) {
                bail!(
                    "the lab recorded in {} (pid {}) is no longer running",
                    pointer_file.display(),
                    pointer.pid
                );
            }
            pointer.lab
        }
    };
    let lab = LabFile::read(&path)?;
    if !process_alive(lab.pid) {
        bail!(
            "the lab of {} (pid {}) is not running",
            path.display(),
            lab.pid
        );
    }
    Ok(lab)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A lab description of this (live) process, in a fresh directory.
    pub(crate) fn sample(dir: &Path, token: Option<&str>) -> LabFile {
        LabFile {
            pid: std::process::id(),
            control: "127.0.0.2:1".parse().unwrap(),
            dns: "127.0.0.53:2".parse().unwrap(),
            cdn_name: "cdn.edgecache.test".into(),
            scratch: dir.to_path_buf(),
            purge_control: token.map(|_| "127.0.0.11:3".parse().unwrap()),
            purge_token: token.map(str::to_string),
            topology: Topology::builtin(),
            nodes: Vec::new(),
            links: Vec::new(),
        }
    }

    #[test]
    fn tokens_are_random_uuids() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(uuid::Uuid::parse_str(&a).unwrap().get_version_num(), 4);
    }

    #[test]
    fn lab_json_keeps_the_purge_access_private() {
        let dir = std::env::temp_dir().join(format!("edgecache-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lab.json");
        sample(&dir, Some("secret")).write(&path).unwrap();
        sample(&dir, Some("secret")).write(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{mode:o}");
        }
        let lab = find_lab(Some(&path)).unwrap();
        let (addr, token) = lab.purge_access().unwrap();
        assert_eq!((addr.port(), token.as_str()), (3, "secret"));
        // A lab.json from before the purge control plane still reads.
        let mut old: serde_json::Value = serde_json::to_value(sample(&dir, None)).unwrap();
        old.as_object_mut().unwrap().remove("purge_token");
        old.as_object_mut().unwrap().remove("purge_control");
        std::fs::write(&path, old.to_string()).unwrap();
        let err = LabFile::read(&path).unwrap().purge_access().unwrap_err();
        assert!(err.to_string().contains("no purge control"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
