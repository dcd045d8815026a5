//! The purge suite, shared by both purge log backends: helpers to fill
//! edges, purge through the origin's API and read the answers, and the
//! scenarios themselves, each run against a [`Plane`] (the built-in
//! control listener, or NATS JetStream).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use edgecache::wan::{AdminClient, Mode};
use serde_json::{Value, json};

use super::*;

/// The purge API's token in these tests.
pub const TOKEN: &str = "purge-test-token";

/// The host every test URL is on.
pub const HOST: &str = "cdn.example";

/// Runs `program` through `env` so that it gets extra environment
/// variables (`Proc::start` takes none); `env` execs, so the pid is the node's.
pub fn with_env(program: PathBuf, envs: &[(&str, &str)], args: Vec<String>) -> (PathBuf, Vec<String>) {
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
    pub fn member_at(&self, origin_url: &str, targets: &[SocketAddr], id: &str, extra: &[&str]) -> Proc {
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
    panic!("the origin never listed {ids:?}: {}", control_get(origin, "/_edges").await);
}

/// By URL (every Vary variant), prefix, surrogate key and all (refused
/// without the confirmation), on two edges, with per-edge counts.
pub async fn selectors_on_every_edge(plane: &Plane) {
    let e1 = plane.member("e1", &[]);
    let e2 = plane.member("e2", &[]);
    wait_connected(&[&e1, &e2]).await;
    wait_members(&plane.origin, &["e1", "e2"]).await;
    let page = "/_gen/64/page?ttl=600&vary=x-v";
    let (img_a, img_b, css) = (
        "/_gen/64/img/a?ttl=600",
        "/_gen/64/img/b?ttl=600",
        "/_gen/64/css?ttl=600",
    );
    let (red, blue) = (
        "/_gen/64/t1?ttl=600&tag=red",
        "/_gen/64/t2?ttl=600&tag=blue",
    );
    for e in [&e1, &e2] {
        fill(e, page, &[("x-v", "a")]).await;
        fill(e, page, &[("x-v", "b")]).await;
        for p in [img_a, img_b, css, red, blue] {
            fill(e, p, &[]).await;
        }
    }

    // By URL: both Vary variants go, on both edges.
    let (status, answer) = plane
        .purge(json!({ "urls": [url(page)], "wait_ms": 5000 }))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_applied(&answer, &["e1", "e2"], 2);
    assert_eq!(answer["complete"], true, "{answer}");
    assert!(
        answer["seq"].as_u64().is_some() && answer["id"].is_string(),
        "{answer}"
    );
    for e in [&e1, &e2] {
        for v in ["a", "b"] {
            let (_, cs, _) = get(e, page, &[("x-v", v)]).await;
            assert!(
                cs.contains("fwd=") && !cs.contains("; hit"),
                "variant {v}: {cs}"
            );
        }
    }

    // By prefix.
    let (_, answer) = plane
        .purge(json!({ "prefixes": [url("/_gen/64/img/")], "wait_ms": 5000 }))
        .await;
    assert_applied(&answer, &["e1", "e2"], 2);
    for e in [&e1, &e2] {
        assert!(!is_hit(&get(e, img_a, &[]).await.1));
        assert!(!is_hit(&get(e, img_b, &[]).await.1));
        assert!(is_hit(&get(e, css, &[]).await.1), "outside the prefix");
    }

    // By surrogate key.
    let (_, answer) = plane
        .purge(json!({ "tags": ["red"], "wait_ms": 5000 }))
        .await;
    assert_applied(&answer, &["e1", "e2"], 1);
    for e in [&e1, &e2] {
        assert!(!is_hit(&get(e, red, &[]).await.1));
        assert!(is_hit(&get(e, blue, &[]).await.1), "other tag kept");
    }

    // Everything: refused without the confirmation, and nothing changes.
    let (status, answer) = plane.purge(json!({ "all": true })).await;
    assert_eq!(status, 400, "{answer}");
    assert!(is_hit(&get(&e1, blue, &[]).await.1));
    let (status, answer) = plane
        .purge(json!({ "all": true, "confirm": "all", "wait_ms": 5000 }))
        .await;
    assert_eq!(status, 200, "{answer}");
    for id in ["e1", "e2"] {
        let e = edge_entry(&answer, id);
        assert_eq!(e["status"], "applied", "{answer}");
        assert!(e["affected"].as_u64().unwrap_or(0) >= 6, "{answer}");
    }
    for e in [&e1, &e2] {
        for p in [img_a, css, red, blue] {
            assert!(!is_hit(&get(e, p, &[]).await.1), "{p} gone after purge all");
        }
    }
}

/// Soft purge: the next request revalidates (304), and a soft-purged entry
/// still serves stale once the origin is gone.
pub async fn soft_purge_then_stale_while_the_origin_is_down(plane: &mut Plane) {
    let edge = plane.member("soft1", &[]);
    wait_connected(&[&edge]).await;
    wait_members(&plane.origin, &["soft1"]).await;
    let path = "/_gen/64/soft?ttl=600";
    fill(&edge, path, &[]).await;
    let (_, _, body) = get(&edge, path, &[]).await;

    let (status, answer) = plane
        .purge(json!({ "urls": [url(path)], "soft": true, "wait_ms": 5000 }))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_applied(&answer, &["soft1"], 1);
    let (status, cs, _) = get(&edge, path, &[]).await;
    assert_eq!(status, 200);
    assert!(
        cs.contains("fwd=stale") && cs.contains("fwd-status=304"),
        "revalidated: {cs}"
    );
    assert!(
        is_hit(&get(&edge, path, &[]).await.1),
        "fresh again after the 304"
    );

    // Soft-purged, then the origin goes away: the stale copy still serves.
    let (_, answer) = plane
        .purge(json!({ "urls": [url(path)], "soft": true, "wait_ms": 5000 }))
        .await;
    assert_applied(&answer, &["soft1"], 1);
    plane.origin.kill();
    let (status, cs, stale_body) = get(&edge, path, &[]).await;
    assert_eq!(status, 200, "{cs}");
    assert!(cs.contains("fwd=stale") && cs.contains("detail="), "{cs}");
    assert_eq!(stale_body, body);
}

/// A dry run counts and changes nothing; a hard purge makes a miss.
pub async fn dry_run_then_hard_purge(plane: &Plane) {
    let edge = plane.member("hard1", &[]);
    wait_connected(&[&edge]).await;
    wait_members(&plane.origin, &["hard1"]).await;
    let path = "/_gen/64/hard?ttl=600&tag=t";
    fill(&edge, path, &[]).await;
    let (status, answer) = plane
        .purge(json!({ "tags": ["t"], "dry_run": true, "wait_ms": 5000 }))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        edge_entry(&answer, "hard1")["affected"].as_u64(),
        Some(1),
        "{answer}"
    );
    assert!(
        is_hit(&get(&edge, path, &[]).await.1),
        "a dry run changes nothing"
    );
    let (_, answer) = plane
        .purge(json!({ "urls": [url(path)], "wait_ms": 5000 }))
        .await;
    assert_applied(&answer, &["hard1"], 1);
    let (_, cs, _) = get(&edge, path, &[]).await;
    assert!(cs.contains("fwd=uri-miss"), "{cs}");
}

/// One edge's purge link is cut: the purge answer reports it pending or
/// unreachable; after the heal it applies the purge and no longer serves
/// the content, and the status says so.
pub async fn partitioned_edge_catches_up_after_the_heal(plane: &Plane) {
    let (wan, links) = spawn_links(&[("control", plane.target())]);
    let near = plane.member("near", &[]);
    let far = plane.member_at(&plane.origin.url("http"), &[wan.addr("control")], "far", &[]);
    wait_connected(&[&near, &far]).await;
    wait_members(&plane.origin, &["near", "far"]).await;
    let path = "/_gen/64/part?ttl=600";
    fill(&near, path, &[]).await;
    fill(&far, path, &[]).await;

    links
        .set_mode("control", Mode::Blackhole)
        .await
        .expect("blackhole");
    let (status, answer) = plane
        .purge(json!({ "urls": [url(path)], "wait_ms": 1500 }))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_applied(&answer, &["near"], 1);
    let far_status = edge_entry(&answer, "far")["status"].clone();
    assert!(
        far_status == "pending" || far_status == "unreachable",
        "{answer}"
    );
    assert_eq!(answer["complete"], false, "{answer}");
    assert!(
        is_hit(&get(&far, path, &[]).await.1),
        "the cut-off edge does not know yet"
    );
    let id = answer["id"].as_str().expect("purge id").to_string();

    links.set_mode("control", Mode::Up).await.expect("heal");
    let mut caught_up = false;
    for _ in 0..300 {
        if !is_hit(&get(&far, path, &[]).await.1) {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(caught_up, "the far edge applied the purge after the heal");
    let mut reported = Value::Null;
    for _ in 0..150 {
        reported = control_get(&plane.origin, &format!("/_purge/status/{id}")).await;
        if reported["edges"]
            .as_array()
            .is_some_and(|es| es.iter().all(|e| e["status"] == "applied"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        edge_entry(&reported, "far")["status"],
        "applied",
        "{reported}"
    );
}

/// `max_purge_lag`: while the edge's purge link is cut for longer than the
/// route's limit, serve-stale answers as `error`; other routes still serve
/// stale; after the heal, stale serving is back.
pub async fn max_purge_lag_while_the_purge_link_is_cut(plane: &Plane) {
    let (wan, links) = spawn_links(&[
        ("content", plane.origin.addr("http")),
        ("control", plane.target()),
    ]);
    let dir = TempDir::new("lagcfg");
    let config = dir.write(
        "edge.toml",
        r#"
[origin_client]
connect_timeout = "1s"
first_byte_timeout = "1s"

[health]
failure_threshold = 1
check_interval = "200ms"

[[routes]]
prefix = "/"
on_origin_failure = "serve-stale"
max_stale = "1h"
max_purge_lag = "2s"

[[routes]]
prefix = "/_gen/64/free"
on_origin_failure = "serve-stale"
max_stale = "1h"
"#,
    );
    let content = format!("http://{}", wan.addr("content"));
    let config = config.display().to_string();
    let edge = plane.member_at(
        &content,
        &[wan.addr("control")],
        "lag1",
        &["--config", &config],
    );
    wait_connected(&[&edge]).await;
    let (bound, free) = ("/_gen/64/bound?ttl=1", "/_gen/64/free?ttl=1");
    fill(&edge, bound, &[]).await;
    fill(&edge, free, &[]).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    links
        .set_mode("content", Mode::Refuse)
        .await
        .expect("cut content");
    let (status, cs, _) = get(&edge, bound, &[]).await;
    assert!(
        status == 200 && cs.contains("fwd=stale"),
        "stale while in touch: {status} {cs}"
    );

    links
        .set_mode("control", Mode::Blackhole)
        .await
        .expect("cut control");
    wait_link(&edge, "out of touch", |s| {
        s["lag_ms"].as_u64().unwrap_or(0) > 2500
    })
    .await;
    let (status, cs, _) = get(&edge, bound, &[]).await;
    assert!(
        status >= 500 && !cs.contains("; hit"),
        "no stale past max_purge_lag: {status} {cs}"
    );
    let (status, cs, _) = get(&edge, free, &[]).await;
    assert!(
        status == 200 && cs.contains("fwd=stale"),
        "routes without the limit: {status} {cs}"
    );

    links
        .set_mode("control", Mode::Up)
        .await
        .expect("heal control");
    wait_link(&edge, "back in touch", |s| {
        s["connected"] == true && s["lag_ms"].as_u64().unwrap_or(u64::MAX) < 1500
    })
    .await;
    let (status, cs, _) = get(&edge, bound, &[]).await;
    assert!(
        status == 200 && cs.contains("fwd=stale"),
        "stale again: {status} {cs}"
    );
}
