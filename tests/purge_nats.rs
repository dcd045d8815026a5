//! The purge log on NATS JetStream, end to end with real `nats-server`
//! processes (JetStream on, data in their own temp dirs, loopback only):
//! the built-in backend's purge suite (shared code, `support::purge_suite`),
//! a partitioned edge catching up, `max_purge_lag`, a stream replicated
//! over a three-node cluster losing a node during a run of purges, and a
//! publish retried after a timeout applied once.
//!
//! Each test is skipped, with the reason printed, when `nats-server` is not
//! installed (`.ci/run` installs it).

mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::purge_suite::*;
use support::*;

/// The `nats-server` binary, if installed.
fn nats_bin() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([
            "/usr/sbin".into(),
            "/usr/local/bin".into(),
            "/usr/bin".into(),
        ])
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
}

/// The binary, or `None` after printing why the test is skipped (straight
/// to stderr, past the test harness's capture).
fn nats_or_skip(test: &str) -> Option<PathBuf> {
    let found = nats_bin();
    if found.is_none() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: nats-server not found on PATH (apt-get install nats-server)"
        );
    }
    found
}

/// A free port on `ip` (bound, then released for the server to take).
fn free_port(ip: std::net::Ipv4Addr) -> SocketAddr {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// One `nats-server` process with JetStream, killed when dropped.
struct NatsServer {
    child: Option<Child>,
    /// Client address.
    addr: SocketAddr,
    _dir: TempDir,
}

impl NatsServer {
    /// Starts a server; `cluster`: (this node's route address, every
    /// node's route address, node name).
    fn start(bin: &PathBuf, cluster: Option<(SocketAddr, &[SocketAddr], &str)>) -> NatsServer {
        let ip = next_ip();
        let addr = free_port(ip);
        let dir = TempDir::new("nats");
        let mut cmd = Command::new(bin);
        cmd.args(["-js", "-a", &ip.to_string(), "-p", &addr.port().to_string()])
            .arg("-sd")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((route, all, name)) = cluster {
            let routes: Vec<String> = all
                .iter()
                .filter(|r| **r != route)
                .map(|r| format!("nats://{r}"))
                .collect();
            cmd.args(["-n", name, "--cluster_name", "edgecache"])
                .args(["--cluster", &format!("nats://{route}")])
                .args(["--routes", &routes.join(",")]);
        }
        let child = cmd.spawn().expect("spawn nats-server");
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server on {addr} did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        NatsServer {
            child: Some(child),
            addr,
            _dir: dir,
        }
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Kills the server for real (SIGKILL).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three clustered servers; the stream will be replicated over all three.
fn cluster(bin: &PathBuf) -> Vec<NatsServer> {
    let routes: Vec<SocketAddr> = (0..3).map(|_| free_port(next_ip())).collect();
    (0..3)
        .map(|i| NatsServer::start(bin, Some((routes[i], &routes, &format!("n{i}")))))
        .collect()
}

#[tokio::test]
async fn nats_purge_by_url_prefix_tag_and_all_on_every_edge() {
    let Some(bin) = nats_or_skip("nats_purge_by_url_prefix_tag_and_all_on_every_edge") else {
        return;
    };
    let nats = NatsServer::start(&bin, None);
    let plane = Plane::nats(&[nats.addr], &[]);
    selectors_on_every_edge(&plane).await;
}

#[tokio::test]
async fn nats_soft_purge_revalidates_and_still_serves_stale_while_the_origin_is_down() {
    let Some(bin) = nats_or_skip("nats_soft_purge") else {
        return;
    };
    let nats = NatsServer::start(&bin, None);
    let mut plane = Plane::nats(&[nats.addr], &[]);
    soft_purge_then_stale_while_the_origin_is_down(&mut plane).await;
}

#[tokio::test]
async fn nats_dry_run_then_hard_purge() {
    let Some(bin) = nats_or_skip("nats_dry_run_then_hard_purge") else {
        return;
    };
    let nats = NatsServer::start(&bin, None);
    let plane = Plane::nats(&[nats.addr], &[]);
    dry_run_then_hard_purge(&plane).await;
}

#[tokio::test]
async fn nats_partitioned_edge_catches_up_after_the_heal() {
    let Some(bin) = nats_or_skip("nats_partitioned_edge_catches_up_after_the_heal") else {
        return;
    };
    let nats = NatsServer::start(&bin, None);
    let plane = Plane::nats(&[nats.addr], &[]);
    partitioned_edge_catches_up_after_the_heal(&plane).await;
}

#[tokio::test]
async fn nats_max_purge_lag_while_the_bus_link_is_cut() {
    let Some(bin) = nats_or_skip("nats_max_purge_lag_while_the_bus_link_is_cut") else {
        return;
    };
    let nats = NatsServer::start(&bin, None);
    let plane = Plane::nats(&[nats.addr], &[]);
    max_purge_lag_while_the_purge_link_is_cut(&plane).await;
}

/// Every edge's purge status, once all have applied `seq` (bounded wait).
async fn wait_applied_everywhere(edges: &[&Proc], seq: u64) -> Vec<Value> {
    let mut last = Vec::new();
    for _ in 0..300 {
        last.clear();
        for edge in edges {
            last.push(purge_status(edge).await);
        }
        if last
            .iter()
            .all(|s| s["last_applied"].as_u64().unwrap_or(0) >= seq)
        {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not every edge applied {seq}: {last:?}");
}

#[tokio::test]
async fn nats_replicated_stream_survives_losing_a_server_during_purges() {
    let Some(bin) = nats_or_skip("nats_replicated_stream_survives_losing_a_server_during_purges")
    else {
        return;
    };
    let mut servers = cluster(&bin);
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let plane = Plane::nats(&addrs, &["--nats-replicas", "3"]);
    let ids = ["f1", "f2", "f3"];
    let edges: Vec<Proc> = ids.iter().map(|id| plane.member(id, &[])).collect();
    let edge_refs: Vec<&Proc> = edges.iter().collect();
    wait_connected(&edge_refs).await;
    wait_members(&plane.origin, &ids).await;

    // One object per purge, cached on every edge.
    const PURGES: usize = 24;
    let paths: Vec<String> = (0..PURGES)
        .map(|i| format!("/_gen/64/fo/{i}?ttl=600"))
        .collect();
    for edge in &edges {
        for path in &paths {
            fill(edge, path, &[]).await;
        }
    }

    let mut seqs = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        if i == PURGES / 3 {
            servers[1].kill();
        }
        let (status, answer) = plane
            .purge(json!({ "urls": [url(path)], "wait_ms": 10000 }))
            .await;
        assert_eq!(status, 200, "purge {i} issued: {answer}");
        let seq = answer["seq"].as_u64().expect("seq");
        seqs.push(seq);
    }
    // Issued purges have distinct, increasing, dense sequence numbers.
    for pair in seqs.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "dense sequences: {seqs:?}");
    }
    let head = *seqs.last().expect("purges");
    let health = control_get(&plane.origin, "/_control/health").await;
    assert_eq!(health["head_seq"].as_u64(), Some(head), "{health}");

    // None lost: every edge applied every purge, and the content is gone.
    wait_applied_everywhere(&edge_refs, head).await;
    for edge in &edges {
        for path in &paths {
            let (_, cs, _) = get(edge, path, &[]).await;
            assert!(!is_hit(&cs), "{path} purged on every edge: {cs}");
        }
    }
    // None twice: refilled objects survive past the redelivery time.
    for edge in &edges {
        for path in &paths {
            fill(edge, path, &[]).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    for edge in &edges {
        for path in &paths {
            let (_, cs, _) = get(edge, path, &[]).await;
            assert!(is_hit(&cs), "{path} not purged a second time: {cs}");
        }
    }
    let members = control_get(&plane.origin, "/_edges").await;
    for id in ids {
        let e = members
            .as_array()
            .and_then(|es| es.iter().find(|e| e["id"] == id))
            .unwrap_or_else(|| panic!("{id} in {members}"));
        assert_eq!(e["last_applied"].as_u64(), Some(head), "{members}");
        assert_eq!(e["lag"].as_u64(), Some(0), "{members}");
    }
}

#[tokio::test]
async fn nats_publish_retried_after_a_timeout_is_applied_once() {
    let Some(bin) = nats_or_skip("nats_publish_retried_after_a_timeout_is_applied_once") else {
        return;
    };
    let nats = NatsServer::start(&bin, None);
    let plane = Plane::nats(&[nats.addr], &["--nats-publish-timeout", "400ms"]);
    let edge = plane.member("r1", &[]);
    wait_connected(&[&edge]).await;
    wait_members(&plane.origin, &["r1"]).await;
    let path = "/_gen/64/retry?ttl=600";
    fill(&edge, path, &[]).await;
    let before = control_get(&plane.origin, "/_control/health").await["head_seq"]
        .as_u64()
        .expect("head");

    // The server stops answering: the first publish times out and is
    // retried (same message id) until the server comes back.
    let pid = nats.pid();
    // SAFETY: signals a child process this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let started = Instant::now();
    let origin = plane.origin.url("control");
    let purge = tokio::spawn({
        let body = json!({ "urls": [url(path)], "wait_ms": 10000 });
        async move {
            let resp = client()
                .post(format!("{origin}/_purge"))
                .bearer_auth(TOKEN)
                .json(&body)
                .send()
                .await
                .expect("POST /_purge");
            (
                resp.status().as_u16(),
                resp.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    let (status, answer) = purge.await.expect("purge task");
    assert_eq!(status, 200, "{answer}");
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "the purge waited for the server"
    );
    let seq = answer["seq"].as_u64().expect("seq");
    assert_eq!(seq, before + 1, "{answer}");
    assert_applied(&answer, &["r1"], 1);

    // Stored once: the next purge gets the very next sequence.
    fill(&edge, path, &[]).await;
    let (_, next) = plane
        .purge(json!({ "urls": [url(path)], "wait_ms": 5000 }))
        .await;
    assert_eq!(next["seq"].as_u64(), Some(seq + 1), "{next}");
    assert_applied(&next, &["r1"], 1);
    let health = control_get(&plane.origin, "/_control/health").await;
    assert_eq!(health["head_seq"].as_u64(), Some(seq + 1), "{health}");
    let status = purge_status(&edge).await;
    assert_eq!(status["last_applied"].as_u64(), Some(seq + 1), "{status}");
}
