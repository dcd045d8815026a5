//! Purge end to end: an origin with its control listener, edges following
//! it, purges by URL, prefix, tag and all, soft and hard, per-edge acks, a
//! partitioned edge catching up, the `edgecache purge` command,
//! `max_purge_lag`, the edge-local admin purge, and the edge's control
//! client against a scripted control plane. The scenarios shared with the
//! NATS backend (tests/purge_nats.rs) live in `support::purge_suite`.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use support::purge_suite::*;
use support::*;

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

#[tokio::test]
async fn purge_by_url_prefix_tag_and_all_on_every_edge() {
    selectors_on_every_edge(&Plane::builtin()).await;
}

#[tokio::test]
async fn soft_purge_revalidates_and_still_serves_stale_while_the_origin_is_down() {
    soft_purge_then_stale_while_the_origin_is_down(&mut Plane::builtin()).await;
}

#[tokio::test]
async fn hard_purge_is_a_miss_and_soft_purge_with_dry_run_changes_nothing() {
    dry_run_then_hard_purge(&Plane::builtin()).await;
}

#[tokio::test]
async fn partitioned_edge_is_reported_then_catches_up_after_the_heal() {
    partitioned_edge_catches_up_after_the_heal(&Plane::builtin()).await;
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
    max_purge_lag_while_the_purge_link_is_cut(&Plane::builtin()).await;
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
