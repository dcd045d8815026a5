//! The purge suite, shared by both purge log backends: helpers to fill
//! edges, purge through the origin's API and read the answers, and the
//! scenarios themselves, each run against a [`Plane`] (the built-in
//! control listener, or NATS JetStream).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use edgecache::wan::AdminClient;
use serde_json::{Value, json};

use super::*;

mod scenarios;
#[allow(unused_imports)] // only the purge test binaries use the scenarios
pub use scenarios::*;

/// The purge API's token in these tests.
pub const TOKEN: &str = "purge-test-token";

/// The host every test URL is on.
pub const HOST: &str = "cdn.example";

/// Runs `program` through `env` so that it gets extra environment
/// variables (`Proc::start` takes none); `env` execs, so the pid is the node's.
pub fn with_env(
    program: PathBuf,
    envs: &[(&str, &str)],
    args: Vec<String>,
) -> (PathBuf, Vec<String>) {
    let mut all: Vec<String> = envs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    all.push(program.display().to_string());
    all.extend(args);
    (PathBuf::from("/usr/bin/env"), all)
}

/// Which purge log the plane runs on.
#[derive(Debug, Clone)]
pub enum Bus {
    /// The origin's log file; edges connect to its control listener.
    Builtin,
    /// NATS JetStream: these servers; edges consume the stream directly.
    Nats(Vec<SocketAddr>),
}

/// An origin with its control listener (purge API) on one backend.
pub struct Plane {
    /// The origin process.
    pub origin: Proc,
    /// The backend.
    pub bus: Bus,
    /// The built-in log's directory.
    _dir: TempDir,
}

fn nats_urls(servers: &[SocketAddr]) -> Vec<String> {
    servers
        .iter()
        .flat_map(|s| ["--nats-url".to_string(), format!("nats://{s}")])
        .collect()
}

impl Plane {
    /// An origin with the built-in log in a fresh directory.
    pub fn builtin() -> Plane {
        Plane::start(Bus::Builtin, &[])
    }

    /// An origin publishing to NATS at `servers` (`extra`: more origin
    /// flags, e.g. `--nats-replicas 3`).
    pub fn nats(servers: &[SocketAddr], extra: &[&str]) -> Plane {
        Plane::start(Bus::Nats(servers.to_vec()), extra)
    }

    fn start(bus: Bus, extra: &[&str]) -> Plane {
        let dir = TempDir::new("purgelog");
        let ip = next_ip();
        let mut args = vec![
            "--listen".to_string(),
            format!("{ip}:0"),
            "--control-listen".into(),
            format!("{ip}:0"),
            "--purge-log".into(),
            dir.path().join("purge.log").display().to_string(),
        ];
        if let Bus::Nats(servers) = &bus {
            args.extend(["--purge-backend".to_string(), "nats".to_string()]);
            args.extend(nats_urls(servers));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let (program, args) = with_env(bin("origin"), &[("EDGECACHE_PURGE_TOKEN", TOKEN)], args);
        let origin = Proc::start(program, args, ip, &["http", "control"]);
        Plane {
            origin,
            bus,
            _dir: dir,
        }
    }

    /// The origin's control listener (purge API).
    pub fn control(&self) -> SocketAddr {
        self.origin.addr("control")
    }

    /// What edges connect to for purges: the control listener, or the
    /// first NATS server.
    pub fn target(&self) -> SocketAddr {
        match &self.bus {
            Bus::Builtin => self.control(),
            Bus::Nats(servers) => servers[0],
        }
    }

    /// An edge of this origin following the plane.
    pub fn member(&self, id: &str, extra: &[&str]) -> Proc {
        let targets = match &self.bus {
            Bus::Builtin => vec![self.control()],
            Bus::Nats(servers) => servers.clone(),
        };
        self.member_at(&self.origin.url("http"), &targets, id, extra)
    }

    /// An edge of `origin_url` following the plane through `targets`
    /// (e.g. a WAN link in front of [`Plane::target`]).
    pub fn member_at(
        &self,
        origin_url: &str,
        targets: &[SocketAddr],
        id: &str,
        extra: &[&str],
    ) -> Proc {
        let region = format!("r-{id}");
        let mut args: Vec<String> = ["--id", id, "--region", &region]
            .iter()
            .map(|s| s.to_string())
            .collect();
        match &self.bus {
            Bus::Builtin => args.extend(["--control".to_string(), targets[0].to_string()]),
            Bus::Nats(_) => {
                args.extend(["--purge-backend".to_string(), "nats".to_string()]);
                args.extend(nats_urls(targets));
            }
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        spawn_edge(origin_url, &args)
    }

    /// POSTs a purge to the origin's API.
    pub async fn purge(&self, body: Value) -> (u16, Value) {
        purge(&self.origin, body).await
    }
}

/// A WAN emulator process with the named links (`name -> upstream`).
pub fn spawn_links(links: &[(&str, SocketAddr)]) -> (Proc, AdminClient) {
    let ip = next_ip();
    let mut args = vec!["wan".to_string()];
    for (name, upstream) in links {
        args.push("--link".into());
        args.push(format!("{name}={ip}:0->{upstream}"));
    }
    args.extend(["--admin-listen".to_string(), format!("{ip}:0")]);
    let mut expect: Vec<&str> = links.iter().map(|(n, _)| *n).collect();
    expect.push("admin");
    let proc = Proc::start(bin("edgecache"), args, ip, &expect);
    let admin = AdminClient::new(proc.addr("admin"));
    (proc, admin)
}

/// GET `path` from an edge as `Host: cdn.example`: status, Cache-Status, body.
pub async fn get(edge: &Proc, path: &str, headers: &[(&str, &str)]) -> (u16, String, Vec<u8>) {
    let mut req = client()
        .get(format!("{}{path}", edge.url("http")))
        .header("host", HOST);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("GET from the edge");
    let status = resp.status().as_u16();
    let cs = resp
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, cs, resp.bytes().await.expect("body").to_vec())
}

/// Whether a Cache-Status says fresh hit.
pub fn is_hit(cs: &str) -> bool {
    cs.starts_with("edgecache; hit; ttl=")
}

/// Asks twice, so that the second answer comes from the cache.
pub async fn fill(edge: &Proc, path: &str, headers: &[(&str, &str)]) {
    get(edge, path, headers).await;
    let (status, cs, _) = get(edge, path, headers).await;
    assert!(status == 200 && is_hit(&cs), "{path} cached: {status} {cs}");
}

/// The absolute URL of `path` on the test host.
pub fn url(path: &str) -> String {
    format!("http://{HOST}{path}")
}

/// POSTs a purge to an origin's control API.
pub async fn purge(origin: &Proc, body: Value) -> (u16, Value) {
    let resp = client()
        .post(format!("{}/_purge", origin.url("control")))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .expect("POST /_purge");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("answer");
    (
        status,
        serde_json::from_str(&text).unwrap_or(json!({ "raw": text })),
    )
}

/// GETs a token-protected path of the origin's control API as JSON.
pub async fn control_get(origin: &Proc, path: &str) -> Value {
    client()
        .get(format!("{}{path}", origin.url("control")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET from the control API")
        .json()
        .await
        .unwrap_or(Value::Null)
}

/// The entry for edge `id` in a purge answer.
pub fn edge_entry<'a>(answer: &'a Value, id: &str) -> &'a Value {
    answer["edges"]
        .as_array()
        .and_then(|edges| edges.iter().find(|e| e["id"] == id))
        .unwrap_or_else(|| panic!("edge {id} in {answer}"))
}

/// Asserts that every named edge applied the purge with `affected` entries.
pub fn assert_applied(answer: &Value, ids: &[&str], affected: u64) {
    for id in ids {
        let e = edge_entry(answer, id);
        assert_eq!(e["status"], "applied", "{answer}");
        assert_eq!(e["affected"].as_u64(), Some(affected), "{answer}");
    }
}

/// The edge's purge link status (`/_edge/purge/status`).
pub async fn purge_status(edge: &Proc) -> Value {
    client()
        .get(format!("{}/_edge/purge/status", edge.url("admin")))
        .send()
        .await
        .expect("purge status")
        .json()
        .await
        .expect("status JSON")
}

/// Waits (bounded) until `check` holds for the edge's purge link status.
pub async fn wait_link(edge: &Proc, what: &str, check: impl Fn(&Value) -> bool) {
    for _ in 0..400 {
        if check(&purge_status(edge).await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("edge never became {what}: {}", purge_status(edge).await);
}

/// Waits until every edge is in touch with the purge plane.
pub async fn wait_connected(edges: &[&Proc]) {
    for edge in edges {
        wait_link(edge, "connected", |s| s["connected"] == true).await;
    }
}

/// Waits until the origin lists every edge in `ids` as connected.
pub async fn wait_members(origin: &Proc, ids: &[&str]) {
    for _ in 0..200 {
        let edges = control_get(origin, "/_edges").await;
        let listed = ids.iter().all(|id| {
            edges
                .as_array()
                .is_some_and(|es| es.iter().any(|e| e["id"] == *id && e["connected"] == true))
        });
        if listed {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the origin never listed {ids:?}: {}",
        control_get(origin, "/_edges").await
    );
}
