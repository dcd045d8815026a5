//! Purge end to end: an origin with its control listener, edges following
//! it, purges by URL, prefix, tag and all, soft and hard, per-edge acks, a
//! partitioned edge catching up, the `edgecache purge` command,
//! `max_purge_lag`, the edge-local admin purge, and the edge's control
//! client against a scripted control plane.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use edgecache::wan::{AdminClient, Mode};
use serde_json::{Value, json};
use support::*;

const TOKEN: &str = "purge-test-token";
const HOST: &str = "cdn.example";

/// Runs `program` through `env` so that it gets extra environment
/// variables (`Proc::start` takes none); `env` execs, so the pid is the node's.
fn with_env(program: PathBuf, envs: &[(&str, &str)], args: Vec<String>) -> (PathBuf, Vec<String>) {
    let mut all: Vec<String> = envs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    all.push(program.display().to_string());
    all.extend(args);
    (PathBuf::from("/usr/bin/env"), all)
}

/// An origin with generated content and a control listener, token set;
/// its purge log lives in the returned directory.
fn spawn_control_origin() -> (Proc, TempDir) {
    let dir = TempDir::new("purgelog");
    let ip = next_ip();
    let args = vec![
        "--listen".to_string(),
        format!("{ip}:0"),
        "--control-listen".into(),
        format!("{ip}:0"),
        "--purge-log".into(),
        dir.path().join("purge.log").display().to_string(),
    ];
    let (program, args) = with_env(bin("origin"), &[("EDGECACHE_PURGE_TOKEN", TOKEN)], args);
    (Proc::start(program, args, ip, &["http", "control"]), dir)
}

/// An edge following the control plane at `control`.
fn spawn_member(origin_url: &str, control: SocketAddr, id: &str, extra: &[&str]) -> Proc {
    let control = control.to_string();
    let region = format!("r-{id}");
    let mut args = vec!["--control", &control, "--id", id, "--region", &region];
    args.extend_from_slice(extra);
    spawn_edge(origin_url, &args)
}

/// An edge with extra environment variables and no control plane.
fn spawn_edge_env(origin_url: &str, envs: &[(&str, &str)]) -> Proc {
    let ip = next_ip();
    let args = vec![
        "--origin".to_string(),
        origin_url.to_string(),
        "--listen".into(),
        format!("{ip}:0"),
        "--admin-listen".into(),
        format!("{ip}:0"),
    ];
    let (program, args) = with_env(bin("edge"), envs, args);
    Proc::start(program, args, ip, &["http", "admin"])
}

/// A WAN emulator process with the named links (`name -> upstream`).
fn spawn_links(links: &[(&str, SocketAddr)]) -> (Proc, AdminClient) {
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
async fn get(edge: &Proc, path: &str, headers: &[(&str, &str)]) -> (u16, String, Vec<u8>) {
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

fn is_hit(cs: &str) -> bool {
    cs.starts_with("edgecache; hit; ttl=")
}

/// Asks twice, so that the second answer comes from the cache.
async fn fill(edge: &Proc, path: &str, headers: &[(&str, &str)]) {
    get(edge, path, headers).await;
    let (status, cs, _) = get(edge, path, headers).await;
    assert!(status == 200 && is_hit(&cs), "{path} cached: {status} {cs}");
}

fn url(path: &str) -> String {
    format!("http://{HOST}{path}")
}

/// POSTs a purge to the origin's control API.
async fn purge(origin: &Proc, body: Value) -> (u16, Value) {
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

/// The entry for edge `id` in a purge answer.
fn edge_entry<'a>(answer: &'a Value, id: &str) -> &'a Value {
    answer["edges"]
        .as_array()
        .and_then(|edges| edges.iter().find(|e| e["id"] == id))
        .unwrap_or_else(|| panic!("edge {id} in {answer}"))
}

/// Asserts that every named edge applied the purge with `affected` entries.
fn assert_applied(answer: &Value, ids: &[&str], affected: u64) {
    for id in ids {
        let e = edge_entry(answer, id);
        assert_eq!(e["status"], "applied", "{answer}");
        assert_eq!(e["affected"].as_u64(), Some(affected), "{answer}");
    }
}

async fn purge_status(edge: &Proc) -> Value {
    client()
        .get(format!("{}/_edge/purge/status", edge.url("admin")))
        .send()
        .await
        .expect("purge status")
        .json()
        .await
        .expect("status JSON")
}

/// Waits (bounded) until `check` holds for the edge's control link status.
async fn wait_link(edge: &Proc, what: &str, check: impl Fn(&Value) -> bool) {
    for _ in 0..300 {
        if check(&purge_status(edge).await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("edge never became {what}: {}", purge_status(edge).await);
}

async fn wait_connected(edges: &[&Proc]) {
    for edge in edges {
        wait_link(edge, "connected", |s| s["connected"] == true).await;
    }
}

#[tokio::test]
async fn purge_by_url_prefix_tag_and_all_on_every_edge() {
    let (origin, _log) = spawn_control_origin();
    let control = origin.addr("control");
    let e1 = spawn_member(&origin.url("http"), control, "e1", &[]);
    let e2 = spawn_member(&origin.url("http"), control, "e2", &[]);
    wait_connected(&[&e1, &e2]).await;
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
    let (status, answer) = purge(&origin, json!({ "urls": [url(page)], "wait_ms": 5000 })).await;
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
    let (_, answer) = purge(
        &origin,
        json!({ "prefixes": [url("/_gen/64/img/")], "wait_ms": 5000 }),
    )
    .await;
    assert_applied(&answer, &["e1", "e2"], 2);
    for e in [&e1, &e2] {
        assert!(!is_hit(&get(e, img_a, &[]).await.1));
        assert!(!is_hit(&get(e, img_b, &[]).await.1));
        assert!(is_hit(&get(e, css, &[]).await.1), "outside the prefix");
    }

    // By surrogate key.
    let (_, answer) = purge(&origin, json!({ "tags": ["red"], "wait_ms": 5000 })).await;
    assert_applied(&answer, &["e1", "e2"], 1);
    for e in [&e1, &e2] {
        assert!(!is_hit(&get(e, red, &[]).await.1));
        assert!(is_hit(&get(e, blue, &[]).await.1), "other tag kept");
    }

    // Everything: refused without the confirmation, and nothing changes.
    let (status, answer) = purge(&origin, json!({ "all": true })).await;
    assert_eq!(status, 400, "{answer}");
    assert!(is_hit(&get(&e1, blue, &[]).await.1));
    let (status, answer) = purge(
        &origin,
        json!({ "all": true, "confirm": "all", "wait_ms": 5000 }),
    )
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

#[tokio::test]
async fn soft_purge_revalidates_and_still_serves_stale_while_the_origin_is_down() {
    let (mut origin, _log) = spawn_control_origin();
    let edge = spawn_member(&origin.url("http"), origin.addr("control"), "soft1", &[]);
    wait_connected(&[&edge]).await;
    let path = "/_gen/64/soft?ttl=600";
    fill(&edge, path, &[]).await;
    let (_, _, body) = get(&edge, path, &[]).await;

    let (status, answer) = purge(
        &origin,
        json!({ "urls": [url(path)], "soft": true, "wait_ms": 5000 }),
    )
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
    let (_, answer) = purge(
        &origin,
        json!({ "urls": [url(path)], "soft": true, "wait_ms": 5000 }),
    )
    .await;
    assert_applied(&answer, &["soft1"], 1);
    origin.kill();
    let (status, cs, stale_body) = get(&edge, path, &[]).await;
    assert_eq!(status, 200, "{cs}");
    assert!(cs.contains("fwd=stale") && cs.contains("detail="), "{cs}");
    assert_eq!(stale_body, body);
}

#[tokio::test]
async fn hard_purge_is_a_miss_and_soft_purge_with_dry_run_changes_nothing() {
    let (origin, _log) = spawn_control_origin();
    let edge = spawn_member(&origin.url("http"), origin.addr("control"), "hard1", &[]);
    wait_connected(&[&edge]).await;
    let path = "/_gen/64/hard?ttl=600&tag=t";
    fill(&edge, path, &[]).await;
    let (status, answer) = purge(
        &origin,
        json!({ "tags": ["t"], "dry_run": true, "wait_ms": 5000 }),
    )
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
    let (_, answer) = purge(&origin, json!({ "urls": [url(path)], "wait_ms": 5000 })).await;
    assert_applied(&answer, &["hard1"], 1);
    let (_, cs, _) = get(&edge, path, &[]).await;
    assert!(cs.contains("fwd=uri-miss"), "{cs}");
}

#[tokio::test]
async fn partitioned_edge_is_reported_then_catches_up_after_the_heal() {
    let (origin, _log) = spawn_control_origin();
    let (_wan, links) = spawn_links(&[("control", origin.addr("control"))]);
    let near = spawn_member(&origin.url("http"), origin.addr("control"), "near", &[]);
    let far = spawn_member(&origin.url("http"), _wan.addr("control"), "far", &[]);
    wait_connected(&[&near, &far]).await;
    let path = "/_gen/64/part?ttl=600";
    fill(&near, path, &[]).await;
    fill(&far, path, &[]).await;

    links
        .set_mode("control", Mode::Blackhole)
        .await
        .expect("blackhole");
    let (status, answer) = purge(&origin, json!({ "urls": [url(path)], "wait_ms": 1500 })).await;
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
    for _ in 0..200 {
        if !is_hit(&get(&far, path, &[]).await.1) {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(caught_up, "the far edge applied the purge after the heal");
    let mut reported = Value::Null;
    for _ in 0..100 {
        reported = client()
            .get(format!("{}/_purge/status/{id}", origin.url("control")))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("purge status")
            .json()
            .await
            .unwrap_or(Value::Null);
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

/// Runs `edgecache purge` with the token set; returns exit success, stdout, stderr.
async fn run_cli(control: SocketAddr, args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(bin("edgecache"))
        .arg("purge")
        .args(args)
        .env("EDGECACHE_PURGE_TOKEN", TOKEN)
        .env("EDGECACHE_CONTROL", control.to_string())
        .output()
        .await
        .expect("run edgecache purge");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[tokio::test]
async fn purge_command_prints_every_edge_and_fails_when_one_is_unreachable() {
    let (origin, _log) = spawn_control_origin();
    let control = origin.addr("control");
    let c1 = spawn_member(&origin.url("http"), control, "c1", &[]);
    let mut c2 = spawn_member(&origin.url("http"), control, "c2", &[]);
    wait_connected(&[&c1, &c2]).await;
    let path = "/_gen/64/cli/a?ttl=600";
    fill(&c1, path, &[]).await;
    fill(&c2, path, &[]).await;

    let (ok, out, err) = run_cli(control, &["--prefix", &url("/_gen/64/cli/"), "--dry-run"]).await;
    assert!(ok, "dry run: {out}{err}");
    assert!(
        is_hit(&get(&c1, path, &[]).await.1),
        "a dry run changes nothing"
    );

    let (ok, out, err) = run_cli(control, &["--url", &url(path), "--wait", "5000"]).await;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("c1") && out.contains("c2") && out.contains("applied"),
        "{out}"
    );
    assert!(out.contains("2/2 edges applied"), "{out}");
    assert!(!is_hit(&get(&c1, path, &[]).await.1));

    let (ok, out, err) = run_cli(control, &["--tag", "none", "--json"]).await;
    assert!(ok, "{out}{err}");
    let answer: Value = serde_json::from_str(&out).expect("--json prints the answer");
    assert_eq!(
        answer["edges"].as_array().map(Vec::len),
        Some(2),
        "{answer}"
    );

    c2.kill();
    let (ok, out, err) = run_cli(control, &["--url", &url(path), "--wait", "1000"]).await;
    assert!(!ok, "an unreachable edge fails the command: {out}");
    assert!(err.contains("c2"), "names the edge: {err}");

    let (ok, _, err) = run_cli(control, &["--url", &url(path), "--tag", "x"]).await;
    assert!(!ok && err.contains("only one kind"), "{err}");
}

#[tokio::test]
async fn max_purge_lag_turns_serve_stale_into_error_while_the_control_link_is_cut() {
    let (origin, _log) = spawn_control_origin();
    let (wan, links) = spawn_links(&[
        ("content", origin.addr("http")),
        ("control", origin.addr("control")),
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
    let edge = spawn_member(
        &content,
        wan.addr("control"),
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

async fn admin_purge(edge: &Proc, token: Option<&str>, body: &str) -> (u16, Value) {
    let mut req = client()
        .post(format!("{}/_edge/purge", edge.url("admin")))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.expect("POST /_edge/purge");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn edge_local_purge_needs_a_token_and_a_valid_body() {
    let origin = spawn_origin(None, &[]);
    let open = spawn_edge(&origin.url("http"), &[]);
    let (status, _) = admin_purge(&open, Some("x"), r#"{"urls": ["/a"]}"#).await;
    assert_eq!(status, 503, "no token configured");

    let edge = spawn_edge_env(&origin.url("http"), &[("EDGECACHE_ADMIN_TOKEN", "sekret")]);
    let path = "/_gen/64/local/a?ttl=600&vary=x-v";
    fill(&edge, path, &[("x-v", "1")]).await;
    fill(&edge, path, &[("x-v", "2")]).await;
    let good = json!({ "urls": [url(path)] }).to_string();
    assert_eq!(admin_purge(&edge, None, &good).await.0, 401);
    assert_eq!(admin_purge(&edge, Some("wrong"), &good).await.0, 401);
    assert_eq!(admin_purge(&edge, Some("sekret"), "{not json").await.0, 400);
    assert_eq!(
        admin_purge(&edge, Some("sekret"), r#"{"all": true}"#)
            .await
            .0,
        400
    );
    assert!(
        is_hit(&get(&edge, path, &[("x-v", "1")]).await.1),
        "refused purges change nothing"
    );

    let dry = json!({ "prefixes": ["/_gen/64/local/"], "dry_run": true }).to_string();
    let (status, answer) = admin_purge(&edge, Some("sekret"), &dry).await;
    assert_eq!(
        (status, answer["affected"].as_u64()),
        (200, Some(2)),
        "{answer}"
    );
    let (status, answer) = admin_purge(&edge, Some("sekret"), &good).await;
    assert_eq!(
        (status, answer["affected"].as_u64()),
        (200, Some(2)),
        "{answer}"
    );
    assert!(!is_hit(&get(&edge, path, &[("x-v", "1")]).await.1));
    assert!(!is_hit(&get(&edge, path, &[("x-v", "2")]).await.1));
}

mod scripted {
    //! The edge's control client against a control plane played by the
    //! test itself, frame by frame.

    use super::*;
    use edgecache::purge::{PurgeRecord, PurgeSelector};
    use edgecache::wire::{ControlFrame, WIRE_VERSION, read_frame, write_frame};
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    async fn accept(listener: &TcpListener, within: Duration) -> TcpStream {
        tokio::time::timeout(within, listener.accept())
            .await
            .expect("the edge (re)connects in time")
            .expect("accept")
            .0
    }

    /// The next frame that is not a heartbeat.
    async fn next(conn: &mut TcpStream) -> ControlFrame {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), read_frame(conn))
                .await
                .expect("a frame in time")
                .expect("a good frame");
            if !matches!(frame, ControlFrame::Heartbeat { .. }) {
                return frame;
            }
        }
    }

    async fn send(conn: &mut TcpStream, frame: ControlFrame) {
        write_frame(conn, &frame).await.expect("send frame");
    }

    fn record(seq: u64, selector: PurgeSelector) -> ControlFrame {
        ControlFrame::Record(PurgeRecord {
            id: uuid::Uuid::now_v7(),
            seq,
            issued_at_ms: 1,
            selector,
            soft: false,
        })
    }

    #[tokio::test]
    async fn edge_follows_a_scripted_control_plane() {
        let origin = spawn_origin(None, &[]);
        let listener = TcpListener::bind((next_ip(), 0)).await.expect("bind");
        let mut edge = spawn_member(
            &origin.url("http"),
            listener.local_addr().expect("addr"),
            "s1",
            &[],
        );
        let (x, y) = ("/_gen/64/x?ttl=600", "/_gen/64/y?ttl=600&tag=blue");

        let mut conn = accept(&listener, Duration::from_secs(10)).await;
        match next(&mut conn).await {
            ControlFrame::Hello {
                edge_id,
                region,
                last_applied,
                cache_since_ms,
                public_addr,
            } => {
                assert_eq!(
                    (edge_id.as_str(), region.as_str(), last_applied),
                    ("s1", "r-s1", 0)
                );
                assert!(cache_since_ms > 1_700_000_000_000);
                assert_eq!(public_addr, edge.addr("http").to_string());
            }
            other => panic!("first frame {other:?}"),
        }
        send(
            &mut conn,
            ControlFrame::Welcome {
                head_seq: 0,
                oldest_seq: 1,
            },
        )
        .await;
        fill(&edge, x, &[]).await;
        fill(&edge, y, &[]).await;

        send(&mut conn, record(1, PurgeSelector::Urls(vec![url(x)]))).await;
        assert_eq!(
            next(&mut conn).await,
            ControlFrame::Applied {
                seq: 1,
                affected: 1
            }
        );
        assert!(!is_hit(&get(&edge, x, &[]).await.1));
        // A record seen twice is acknowledged, not applied again.
        fill(&edge, x, &[]).await;
        send(&mut conn, record(1, PurgeSelector::Urls(vec![url(x)]))).await;
        assert_eq!(
            next(&mut conn).await,
            ControlFrame::Applied {
                seq: 1,
                affected: 0
            }
        );
        assert!(is_hit(&get(&edge, x, &[]).await.1));

        let tags = PurgeSelector::Tags(vec!["blue".into()]);
        send(
            &mut conn,
            ControlFrame::DryRun {
                request: 7,
                selector: tags,
            },
        )
        .await;
        assert_eq!(
            next(&mut conn).await,
            ControlFrame::DryRunResult {
                request: 7,
                affected: 1
            }
        );
        assert!(is_hit(&get(&edge, y, &[]).await.1));

        // A garbage frame closes the connection; the edge comes back with
        // what it applied.
        conn.write_all(&[WIRE_VERSION, 0, 0, 0, 3, 200, 201, 202])
            .await
            .expect("garbage");
        let mut conn = accept(&listener, Duration::from_secs(10)).await;
        match next(&mut conn).await {
            ControlFrame::Hello { last_applied, .. } => assert_eq!(last_applied, 1),
            other => panic!("first frame {other:?}"),
        }
        assert!(edge.child.try_wait().expect("wait").is_none(), "edge alive");
        send(
            &mut conn,
            ControlFrame::Welcome {
                head_seq: 9,
                oldest_seq: 6,
            },
        )
        .await;
        send(
            &mut conn,
            ControlFrame::ResetCache {
                up_to_seq: 5,
                reason: "compacted".into(),
            },
        )
        .await;
        let silent_since = std::time::Instant::now();
        wait_link(&edge, "reset", |s| {
            s["last_applied"] == 5 && s["connected"] == true
        })
        .await;
        assert!(!is_hit(&get(&edge, y, &[]).await.1), "cache dropped");

        // Silence: the edge declares the link dead and reconnects.
        let _conn3 = accept(&listener, Duration::from_secs(15)).await;
        assert!(
            silent_since.elapsed() >= Duration::from_secs(4),
            "dead after ~5 s of silence"
        );
        drop(conn);
    }
}
