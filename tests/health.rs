//! Origin health: DOWN after failures, fail-fast while DOWN, recovery by
//! heartbeat, stale-while-revalidate refreshing once, backup origins and
//! several origin addresses.

mod support;

use std::time::{Duration, Instant};

use edgecache::wan::{AdminClient, Mode};
use support::*;

/// A WAN link `origin` in front of `upstream`, run by `edgecache wan`.
fn spawn_link(upstream: std::net::SocketAddr) -> (Proc, AdminClient) {
    let ip = next_ip();
    let proc = Proc::start(
        bin("edgecache"),
        vec![
            "wan".into(),
            "--link".into(),
            format!("origin={ip}:0->{upstream}"),
            "--admin-listen".into(),
            format!("{ip}:0"),
        ],
        ip,
        &["origin", "admin"],
    );
    let admin = AdminClient::new(proc.addr("admin"));
    (proc, admin)
}

fn edge_with_config(origin_url: &str, toml: &str) -> (Proc, TempDir) {
    let dir = TempDir::new("edgecfg");
    let path = dir.write("edge.toml", toml);
    let edge = spawn_edge(
        origin_url,
        &["--config", path.to_str().expect("utf-8 path")],
    );
    (edge, dir)
}

async fn health(edge: &Proc) -> serde_json::Value {
    client()
        .get(format!("{}/_edge/health", edge.url("admin")))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("health JSON")
}

async fn wait_for_state(edge: &Proc, state: &str) -> bool {
    for _ in 0..100 {
        if health(edge).await["origins"][0]["state"] == state {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn down_origin_fails_fast_and_recovers() {
    let origin = spawn_origin(None, &[]);
    let (_link_proc, link) = spawn_link(origin.addr("http"));
    let link_url = format!("http://{}", _link_proc.addr("origin"));
    let (edge, _cfg) = edge_with_config(
        &link_url,
        r#"
[origin_client]
connect_timeout = "5s"
first_byte_timeout = "5s"

[health]
failure_threshold = 1
check_interval = "200ms"
check_path = "/_gen/1"

[[routes]]
prefix = "/"
on_origin_failure = "serve-stale"
max_stale = "1h"

[[routes]]
prefix = "/_gen/9"
on_origin_failure = "error"
"#,
    );
    let base = edge.url("http");
    let stale_url = format!("{base}/_gen/100?ttl=1");
    let primed = client().get(&stale_url).send().await.unwrap();
    let body = primed.bytes().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;

    link.set_mode("origin", Mode::Blackhole).await.unwrap();
    // The first failure waits out the first-byte timeout and marks it DOWN.
    let first = client()
        .get(format!("{base}/_gen/200?ttl=60"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 504);
    assert!(wait_for_state(&edge, "down").await, "origin marked DOWN");
    let h = health(&edge).await;
    assert!(
        h["origins"][0]["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("first-byte"),
        "{h}"
    );

    // While DOWN: stale-eligible answers from cache, the rest 503, both fast.
    let started = Instant::now();
    let stale = client().get(&stale_url).send().await.unwrap();
    assert_eq!(stale.status(), 200);
    let cs = cache_status(&stale);
    assert!(cs.contains("fwd=stale") && cs.contains("detail="), "{cs}");
    assert_eq!(stale.bytes().await.unwrap(), body);
    let miss = client()
        .get(format!("{base}/_gen/300?ttl=60"))
        .send()
        .await
        .unwrap();
    assert_eq!(miss.status(), 503);
    assert!(miss.headers().contains_key("retry-after"));
    let err_route = client().get(format!("{base}/_gen/9")).send().await.unwrap();
    assert_eq!(err_route.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answers during a known partition do not wait for the 5 s timeouts ({:?})",
        started.elapsed()
    );

    // Heal: a heartbeat brings it back UP and content is fresh again.
    link.set_mode("origin", Mode::Up).await.unwrap();
    assert!(wait_for_state(&edge, "up").await, "origin marked UP again");
    let fresh = client().get(&stale_url).send().await.unwrap();
    assert_eq!(fresh.status(), 200);
    let cs = cache_status(&fresh);
    assert!(
        cs.contains("fwd=stale") && cs.contains("fwd-status="),
        "{cs}"
    );
}

#[tokio::test]
async fn stale_while_revalidate_refreshes_once_per_key() {
    let origin = spawn_origin(None, &[]);
    let (edge, _cfg) = edge_with_config(
        &origin.url("http"),
        "[[routes]]\nprefix = \"/\"\nstale_while_revalidate = \"60s\"\n",
    );
    // max-age=2 with the origin's whole-second Date: the apparent age of a
    // fill is up to a second, so max-age=1 could leave the refreshed copy
    // stale again before the last request.
    let url = format!("{}/_gen/500?ttl=2&delay_ms=200", edge.url("http"));
    client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let before = origin_requests(&origin).await;
    let c = client();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let c = c.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let r = c.get(&url).send().await.expect("request");
            let cs = cache_status(&r);
            let len = r.bytes().await.expect("body").len();
            (cs, len, started.elapsed())
        }));
    }
    let mut swr = 0;
    for t in tasks {
        let (cs, len, _) = t.await.unwrap();
        assert_eq!(len, 500);
        assert!(cs.starts_with("edgecache; hit"), "{cs}");
        if cs.contains("stale-while-revalidate") {
            swr += 1;
        }
    }
    assert!(swr > 0, "stale answers were served while revalidating");
    // Exactly one background refresh reaches the origin.
    for _ in 0..50 {
        if origin_requests(&origin).await > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        origin_requests(&origin).await,
        before + 1,
        "one refresh for 50 stale requests"
    );
    let r = client().get(&url).send().await.unwrap();
    assert!(
        cache_status(&r).starts_with("edgecache; hit; ttl="),
        "{}",
        cache_status(&r)
    );
}

#[tokio::test]
async fn backup_origin_takes_over_while_primary_is_down() {
    let mut primary = spawn_origin(None, &[]);
    let backup = spawn_origin(None, &[]);
    let (edge, _cfg) = edge_with_config(
        &primary.url("http"),
        &format!(
            "[origin_client]\nbackup = \"{}\"\n[health]\nfailure_threshold = 1\ncheck_interval = \"200ms\"\n",
            backup.url("http")
        ),
    );
    primary.kill();
    let url = format!("{}/_gen/100?ttl=60", edge.url("http"));
    let first = client().get(&url).send().await.unwrap();
    assert_eq!(
        first.status(),
        504,
        "the failure that marks the primary DOWN"
    );
    assert!(wait_for_state(&edge, "down").await);
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200, "served through the backup");
    assert_eq!(origin_requests(&backup).await, 1);
}

#[tokio::test]
async fn connect_failure_tries_the_next_address() {
    let live = spawn_origin(None, &[]);
    let port = live.addr("http").port();
    let dead_ip = next_ip(); // nothing listens there
    let (edge, _cfg) = edge_with_config(
        &format!("http://origin.test:{port}"),
        &format!(
            "[origin_client]\naddresses = [\"{dead_ip}\", \"{}\"]\n",
            live.addr("http").ip()
        ),
    );
    let r = client()
        .get(format!("{}/_gen/10?ttl=60", edge.url("http")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(origin_requests(&live).await, 1);
}
