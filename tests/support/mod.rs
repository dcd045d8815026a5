//! Test harness: starts the real `origin` and `edge` binaries as processes on
//! distinct 127.0.0.x addresses with ephemeral ports, and kills them for real.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// How long a node may take to print its listening lines.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Path of a workspace binary (`edge`, `origin`, `edgecache`), built once per
/// test process with the same profile as the tests. Only the package that
/// holds the binary is built, so a test of one node does not wait on another.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == name) {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", name, "--bin", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build for the node binary");
        assert!(status.success(), "cargo build of {name} failed");
        built.push(name.to_string());
    }
    // target/<profile>/deps/<test-binary> -> target/<profile>
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .join(name)
}

/// A fresh loopback address, distinct per call within this test process and
/// (very likely) across test processes running side by side.
pub fn next_ip() -> Ipv4Addr {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    Ipv4Addr::new(
        127,
        (1 + pid % 250) as u8,
        ((n / 250) % 250) as u8,
        (2 + n % 250) as u8,
    )
}

/// A node process that is killed when dropped.
pub struct Proc {
    /// The running child process.
    pub child: Child,
    /// The loopback IP the node was given.
    pub ip: Ipv4Addr,
    /// Listener name ("http", "admin", "control", ...) to bound address, as printed.
    pub listeners: Vec<(String, SocketAddr)>,
    /// The arguments it was started with, to restart it.
    pub program: PathBuf,
    /// Arguments used at start.
    pub args: Vec<String>,
}

impl Proc {
    /// Starts `program` with `args` and waits for a `listening <name> <addr>`
    /// line on stdout for every name in `expect`.
    pub fn start(program: PathBuf, args: Vec<String>, ip: Ipv4Addr, expect: &[&str]) -> Proc {
        let mut child = Command::new(&program)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Keep draining so the child never blocks on a full pipe.
                    continue;
                }
            }
        });
        let mut listeners = Vec::new();
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        while !expect
            .iter()
            .all(|n| listeners.iter().any(|(l, _): &(String, SocketAddr)| l == n))
        {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "{} {:?} did not print listening lines {expect:?} in time",
                        program.display(),
                        args
                    );
                }
            };
            let mut parts = line.split_whitespace();
            if parts.next() == Some("listening") {
                if let (Some(name), Some(addr)) = (parts.next(), parts.next()) {
                    if let Ok(addr) = addr.parse() {
                        listeners.push((name.to_string(), addr));
                    }
                }
            }
        }
        Proc {
            child,
            ip,
            listeners,
            program,
            args,
        }
    }

    /// Address of the named listener.
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.listeners
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("no listener {name}"))
    }

    /// `http://ADDR` of the named listener.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}", self.addr(name))
    }

    /// Waits up to `within` (polling every 50 ms) for the process to exit
    /// on its own; its status, or `None` if it is still running.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts an origin serving `root` (if any) on a fresh loopback address.
pub fn spawn_origin(root: Option<&Path>, extra: &[&str]) -> Proc {
    let ip = next_ip();
    let mut args = vec!["--listen".to_string(), format!("{ip}:0")];
    if let Some(root) = root {
        args.push("--root".into());
        args.push(root.display().to_string());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    Proc::start(bin("origin"), args, ip, &["http"])
}

/// Starts an edge in front of `origin_url` on a fresh loopback address, with
/// an admin listener on the same address.
pub fn spawn_edge(origin_url: &str, extra: &[&str]) -> Proc {
    let ip = next_ip();
    let mut args = vec![
        "--origin".to_string(),
        origin_url.to_string(),
        "--listen".into(),
        format!("{ip}:0"),
        "--admin-listen".into(),
        format!("{ip}:0"),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Proc::start(bin("edge"), args, ip, &["http", "admin"])
}

/// An HTTP client with no connection reuse surprises: short timeouts, no
/// redirects, no automatic decompression.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("build reqwest client")
}

/// A scratch directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates a fresh empty directory under the system temp dir.
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "edgecache-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes a file (creating parent dirs) relative to the directory.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create parent dir");
        }
        std::fs::write(&p, contents).expect("write file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// GETs `url` and parses its body as JSON.
pub async fn get_json(url: &str) -> serde_json::Value {
    client()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("JSON from {url}: {e}"))
}

/// The answer's Cache-Status, or "" without one.
pub fn cache_status(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// GETs `url` with `client` until the answer is a hit (bounded: 50 tries,
/// 100 ms apart), for an object just filled: a streaming fill is stored
/// once its body is complete, which its client may see a moment before.
/// Returns the hit's Cache-Status and body; every answer must be 200.
pub async fn get_until_hit(client: &reqwest::Client, url: &str) -> (String, Vec<u8>) {
    let mut last = String::new();
    for _ in 0..50 {
        let resp = client
            .get(url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert_eq!(resp.status(), 200, "{url}");
        let cs = cache_status(&resp);
        let body = resp.bytes().await.expect("body").to_vec();
        if cs.contains("hit") {
            return (cs, body);
        }
        last = cs;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never became a hit: {last}");
}

/// GETs `url`, which must answer 200.
pub async fn get_ok(url: &str) -> reqwest::Response {
    let resp = client()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(resp.status(), 200, "{url}");
    resp
}

/// The body of `path` as the origin serves it (200 expected).
pub async fn origin_body(origin: &Proc, path: &str) -> Vec<u8> {
    let url = format!("{}{path}", origin.url("http"));
    get_ok(&url)
        .await
        .bytes()
        .await
        .expect("origin body")
        .to_vec()
}

/// Reads the origin's request counter from `GET /_stats`.
pub async fn origin_requests(origin: &Proc) -> u64 {
    let v = get_json(&format!("{}/_stats", origin.url("http"))).await;
    v["requests"].as_u64().expect("requests counter")
}

/// An edge's counters from its admin listener (`GET /_edge/stats`).
pub async fn edge_stats(edge: &Proc) -> serde_json::Value {
    get_json(&format!("{}/_edge/stats", edge.url("admin"))).await
}

/// Starts an origin (generated content only) listening on exactly `addr`,
/// e.g. to restart a killed origin on the address its edge knows.
pub fn spawn_origin_at(addr: SocketAddr) -> Proc {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) => ip,
        std::net::IpAddr::V6(_) => panic!("origin address {addr} is not IPv4"),
    };
    let args = vec!["--listen".to_string(), addr.to_string()];
    Proc::start(bin("origin"), args, ip, &["http"])
}

/// Starts the WAN emulator (`edgecache wan`) with one link named `link_name`
/// listening on a fresh loopback address and forwarding to `upstream`, and
/// its admin API on the same address. Listeners: `link_name` and `admin`.
pub fn spawn_wan(link_name: &str, upstream: SocketAddr) -> Proc {
    let ip = next_ip();
    let args = vec![
        "wan".to_string(),
        "--link".into(),
        format!("{link_name}={ip}:0->{upstream}"),
        "--admin-listen".into(),
        format!("{ip}:0"),
    ];
    Proc::start(bin("edgecache"), args, ip, &[link_name, "admin"])
}

/// Writes `toml_text` to a config file and starts an edge with it on a fresh
/// loopback address (the listen flags override the file's addresses). The
/// directory holding the file is returned so it outlives the edge.
pub fn spawn_edge_config(toml_text: &str) -> (Proc, TempDir) {
    let dir = TempDir::new("edgecfg");
    let path = dir.write("edge.toml", toml_text);
    let ip = next_ip();
    let args = vec![
        "--config".to_string(),
        path.display().to_string(),
        "--listen".into(),
        format!("{ip}:0"),
        "--admin-listen".into(),
        format!("{ip}:0"),
    ];
    let edge = Proc::start(bin("edge"), args, ip, &["http", "admin"]);
    (edge, dir)
}

/// The purge suite shared by the built-in and NATS purge log backends.
pub mod purge_suite;

/// Sends `sig` to a node.
pub fn signal(proc: &Proc, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(proc.child.id()).expect("pid fits");
    // SAFETY: kill(2) with a pid we spawned and own.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig})");
}
