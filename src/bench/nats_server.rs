//! A throwaway `nats-server -js` on loopback for the benchmarks.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The `nats-server` binary, if installed.
pub(super) fn find_nats_server() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([
            PathBuf::from("/usr/sbin"),
            PathBuf::from("/usr/local/bin"),
            PathBuf::from("/usr/bin"),
        ])
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
}

/// A `nats-server -js` on loopback for the `nats` run, killed when dropped.
pub(super) struct NatsServer {
    child: Child,
    addr: SocketAddr,
}

impl NatsServer {
    /// Starts it on a free port of its own loopback address, data under
    /// `dir/nats`, and waits (at most 15 s) until it accepts connections.
    pub(super) async fn start(bin: &Path, dir: &Path) -> anyhow::Result<NatsServer> {
        let ip = Ipv4Addr::new(127, 0, 78, 250);
        let data = dir.join("nats");
        std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
        let port = TcpListener::bind((ip, 0))
            .and_then(|l| l.local_addr())
            .with_context(|| format!("finding a free port on {ip}"))?
            .port();
        let addr = SocketAddr::from((ip, port));
        let child = Command::new(bin)
            .args(["-js", "-a", &ip.to_string(), "-p", &port.to_string()])
            .arg("-sd")
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut server = NatsServer { child, addr };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let attempt = tokio::time::timeout(
                Duration::from_millis(200),
                tokio::net::TcpStream::connect(addr),
            )
            .await;
            if matches!(attempt, Ok(Ok(_))) {
                break;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                bail!("nats-server on {addr} exited: {status}");
            }
            if Instant::now() > deadline {
                bail!("nats-server on {addr} did not accept connections within 15 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!("nats-server with JetStream on {addr}");
        Ok(server)
    }

    /// The flags that make a node use this server as its purge log.
    pub(super) fn node_args(&self) -> Vec<String> {
        vec![
            "--purge-backend".into(),
            "nats".into(),
            "--nats-url".into(),
            format!("nats://{}", self.addr),
            "--nats-stream".into(),
            "EDGECACHE_PURGE_BENCH".into(),
        ]
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
