//! `edgecache lab --purge-bus nats`: a local `nats-server` with JetStream,
//! its data in the lab's scratch directory, for the origin and the edges to
//! use as their purge log instead of the built-in one.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The port the lab's nats-server listens on (on its own loopback address).
const PORT: u16 = 4222;

/// How long the server gets to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The lab's nats-server, stopped when dropped.
pub struct LabNats {
    child: Child,
    addr: SocketAddr,
}

impl LabNats {
    /// Starts `nats-server -js` on `ip`, data under `scratch/nats`.
    pub fn start(ip: Ipv4Addr, scratch: &Path) -> anyhow::Result<LabNats> {
        let bin = find().context(
            "--purge-bus nats needs nats-server on PATH (Debian: apt-get install nats-server)",
        )?;
        let dir = scratch.join("nats");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let addr = SocketAddr::from((ip, PORT));
        let child = Command::new(&bin)
            .args(["-js", "-a", &ip.to_string(), "-p", &PORT.to_string()])
            .arg("-sd")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut nats = LabNats { child, addr };
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = nats.child.try_wait() {
                bail!("nats-server on {addr} exited: {status}");
            }
            if Instant::now() > deadline {
                bail!("nats-server on {addr} did not start in {START_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(nats)
    }

    /// The flags that make a node use this server as its purge log.
    pub fn node_args(&self) -> Vec<String> {
        vec![
            "--purge-backend".into(),
            "nats".into(),
            "--nats-url".into(),
            format!("nats://{}", self.addr),
        ]
    }
}

impl Drop for LabNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/bin")])
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
}
