//! The peers edgecache is compared with: nginx as a proxy cache and Varnish,
//! from Debian packages (installed when missing), with their configuration
//! written into a scratch directory at run time.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::bench::client;

/// The external programs the benchmark uses.
#[derive(Debug, Default)]
pub struct Tools {
    /// `nginx`, if found.
    pub nginx: Option<PathBuf>,
    /// `varnishd`, if found.
    pub varnishd: Option<PathBuf>,
    /// `wrk`, if found.
    pub wrk: Option<PathBuf>,
}

/// Finds a program on PATH or in the sbin directories.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn find_tools() -> Tools {
    Tools {
        nginx: find_program("nginx"),
        varnishd: find_program("varnishd"),
        wrk: find_program("wrk"),
    }
}

/// Finds nginx, varnishd and wrk, installing the missing ones with apt-get
/// when running as root and `install` is set. Says what it does.
pub async fn ensure_tools(install: bool, scratch: &Path) -> Tools {
    let tools = find_tools();
    let mut missing = Vec::new();
    if tools.nginx.is_none() {
        missing.push("nginx");
    }
    if tools.varnishd.is_none() {
        missing.push("varnish");
    }
    if tools.wrk.is_none() {
        missing.push("wrk");
    }
    if missing.is_empty() {
        return tools;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !install {
        println!("missing {missing:?}; not installing (--no-install)");
        return tools;
    }
    if !root {
        println!("missing {missing:?}; not root, so not installing them");
        return tools;
    }
    let log = scratch.join("apt.log");
    println!(
        "installing {}: apt-get install -y {} (log: {})",
        missing.join(", "),
        missing.join(" "),
        log.display()
    );
    let mut ok = apt(&["install", "-y", "-q"], &missing, &log).await;
    if !ok {
        println!("apt-get install failed; running apt-get update and trying once more");
        ok = apt(&["update", "-q"], &[], &log).await
            && apt(&["install", "-y", "-q"], &missing, &log).await;
    }
    if !ok {
        println!(
            "apt-get install failed (see {}); peers that are missing are skipped",
            log.display()
        );
    }
    find_tools()
}

async fn apt(args: &[&str], packages: &[&str], log: &Path) -> bool {
    let Ok(out) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    else {
        return false;
    };
    let Ok(err) = out.try_clone() else {
        return false;
    };
    let child = tokio::process::Command::new("apt-get")
        .args(args)
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true)
        .status();
    matches!(
        tokio::time::timeout(Duration::from_secs(900), child).await,
        Ok(Ok(status)) if status.success()
    )
}

/// A free TCP port on `ip` (bound and released at once).
pub fn free_port(ip: std::net::Ipv4Addr) -> anyhow::Result<SocketAddr> {
    let l = TcpListener::bind((ip, 0)).with_context(|| format!("binding {ip}:0"))?;
    Ok(l.local_addr()?)
}

/// nginx.conf for a caching reverse proxy: one worker, an in-memory keys
/// zone, bodies in the cache directory, keep-alive to the origin, and the
/// origin's Cache-Control deciding freshness (proxy_cache_valid only applies
/// when the origin sends none). Tuned as a cache server runs it: `sendfile`
/// and `tcp_nopush` (Debian's default nginx.conf) and an open file cache
/// for the cache files (without them it answered 13-23% fewer hits here).
pub fn nginx_conf(dir: &Path, listen: SocketAddr, origin: SocketAddr) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process on;
worker_processes 1;
user root;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    open_file_cache max=20000 inactive=60s;
    open_file_cache_valid 60s;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    client_body_temp_path {d}/client_temp;
    proxy_temp_path {d}/proxy_temp;
    fastcgi_temp_path {d}/fastcgi_temp;
    uwsgi_temp_path {d}/uwsgi_temp;
    scgi_temp_path {d}/scgi_temp;
    proxy_cache_path {d}/cache levels=1:2 keys_zone=edge:64m max_size=4g inactive=1d use_temp_path=off;
    upstream origin {{
        server {origin};
        keepalive 64;
    }}
    server {{
        listen {listen};
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache edge;
            proxy_cache_valid 200 10m;
            proxy_cache_lock on;
            add_header X-Cache-Status $upstream_cache_status;
        }}
    }}
}}
"#
    )
}

/// A VCL with the origin as backend; everything else is Varnish's built-in
/// logic, which takes the TTL from the origin's Cache-Control.
pub fn varnish_vcl(origin: SocketAddr) -> String {
    format!(
        "vcl 4.1;\n\nbackend origin {{\n    .host = \"{}\";\n    .port = \"{}\";\n}}\n",
        origin.ip(),
        origin.port()
    )
}

/// A peer server started by the benchmark, stopped when dropped.
pub struct PeerProcess {
    /// The child (nginx master, varnishd manager).
    pub child: Child,
    /// Where its output goes.
    pub log: PathBuf,
}

impl PeerProcess {
    /// Starts `program args` pinned to `cpus`, output to `log`, and waits
    /// (at most 30 s) until `addr` answers `GET /_gen/1?ttl=60` with 200.
    pub async fn start(
        program: &Path,
        args: &[String],
        cpus: &str,
        log: PathBuf,
        addr: SocketAddr,
    ) -> anyhow::Result<PeerProcess> {
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let mut command = Command::new("taskset");
        command
            .args(["-c", cpus])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        die_with_parent(&mut command);
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let mut peer = PeerProcess { child, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = peer.child.try_wait() {
                bail!(
                    "{} exited with {status}; its log: {}",
                    program.display(),
                    peer.log.display()
                );
            }
            let probe = client::get(
                addr,
                &addr.to_string(),
                "/_gen/1?ttl=60",
                Duration::from_secs(2),
            )
            .await;
            if matches!(probe, Ok((s, _, _)) if s == http::StatusCode::OK) {
                return Ok(peer);
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not answer on {addr} within 30 s; its log: {}",
                    program.display(),
                    peer.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The process id of the started program.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        crate::lab::stop_child(&mut self.child, grace);
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

/// The child gets SIGTERM when the benchmark dies, so no server outlives it.
fn die_with_parent(command: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and touches only the child.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
    }
}

/// Starts nginx as a proxy cache in `dir`, listening on `listen`.
pub async fn start_nginx(
    nginx: &Path,
    dir: &Path,
    listen: SocketAddr,
    origin: SocketAddr,
    cpus: &str,
) -> anyhow::Result<PeerProcess> {
    std::fs::create_dir_all(dir.join("cache"))?;
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, nginx_conf(dir, listen, origin))?;
    let args = [
        "-p".to_string(),
        format!("{}/", dir.display()),
        "-e".into(),
        dir.join("error.log").display().to_string(),
        "-c".into(),
        conf.display().to_string(),
    ];
    PeerProcess::start(nginx, &args, cpus, dir.join("stdout.log"), listen).await
}

/// Starts Varnish (malloc storage of `storage` bytes) in `dir`.
pub async fn start_varnish(
    varnishd: &Path,
    dir: &Path,
    listen: SocketAddr,
    origin: SocketAddr,
    storage: u64,
    cpus: &str,
) -> anyhow::Result<PeerProcess> {
    std::fs::create_dir_all(dir)?;
    let vcl = dir.join("default.vcl");
    std::fs::write(&vcl, varnish_vcl(origin))?;
    let args = [
        "-F".to_string(),
        "-j".into(),
        "none".into(),
        "-n".into(),
        dir.join("work").display().to_string(),
        "-a".into(),
        listen.to_string(),
        "-f".into(),
        vcl.display().to_string(),
        "-s".into(),
        format!("malloc,{}M", (storage >> 20).max(64)),
    ];
    PeerProcess::start(varnishd, &args, cpus, dir.join("varnishd.log"), listen).await
}
