//! SIGHUP reloads and SIGTERM draining.

use super::*;

#[tokio::test]
async fn sighup_applies_a_valid_config_without_dropping_connections() {
    let origin = spawn_origin(None, &[]);
    let text = |name: &str| format!("origin = \"{}\"\nname = \"{name}\"\n", origin.url("http"));
    let (edge, dir) = spawn_edge_config(&text("edge-one"));
    let mut conn = one_connection(edge.addr("http")).await;
    let (status, cs) = get_on(&mut conn, "/_gen/30?ttl=60").await;
    assert_eq!(status, 200);
    assert!(cs.starts_with("edge-one;"), "{cs}");
    dir.write(
        "edge.toml",
        text("edge-two") + "hosts = [\"site.test\"]\n[[routes]]\nprefix = \"/\"\non_origin_failure = \"error\"\n",
    );
    signal(&edge, libc::SIGHUP);
    let mut now = String::new();
    for _ in 0..50 {
        now = get_on(&mut conn, "/_gen/30?ttl=60").await.1;
        if now.starts_with("edge-two;") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        now.starts_with("edge-two;"),
        "the new name is in force: {now}"
    );
    assert!(now.contains("hit"), "the store survived the reload: {now}");
    // The new host list is in force too.
    let resp = client()
        .get(format!("{}/_gen/30?ttl=60", edge.url("http")))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 421);
}

#[tokio::test]
async fn sighup_refuses_an_invalid_config_and_keeps_the_running_one() {
    let origin = spawn_origin(None, &[]);
    let dir = TempDir::new("badreload");
    let good = format!("origin = \"{}\"\nname = \"edge-one\"\n", origin.url("http"));
    let config = dir.write("edge.toml", &good);
    let log = dir.path().join("edge.log");
    let ip = next_ip();
    let mut args = config_args(&config, ip);
    args.extend(["--log-format".to_string(), "json".to_string()]);
    let edge = start_edge_logged(args, ip, &["http", "admin"], &log);
    dir.write(
        "edge.toml",
        format!("{good}[health]\nfailure_threshold = 0\n"),
    );
    signal(&edge, libc::SIGHUP);
    let refused = |text: &str| -> Option<serde_json::Value> {
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| {
                v["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("reload refused"))
            })
    };
    let found = eventually(10, || refused(&read(&log)).is_some()).await;
    assert!(found, "a refusal is logged: {}", read(&log));
    let event = refused(&read(&log)).expect("refusal event");
    assert_eq!(
        event["file"].as_str(),
        Some(config.display().to_string().as_str()),
        "{event}"
    );
    assert_eq!(event["line"].as_u64(), Some(4), "{event}");
    assert_eq!(event["key"].as_str(), Some("failure_threshold"), "{event}");
    assert!(
        event["reason"]
            .as_str()
            .is_some_and(|r| r.contains("at least 1")),
        "{event}"
    );
    // A parse error is located too.
    dir.write(
        "edge.toml",
        format!("{good}[cache]\ncapacityy = \"1MiB\"\n"),
    );
    signal(&edge, libc::SIGHUP);
    let parse_refusal = || {
        read(&log)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|v| v["key"].as_str() == Some("capacityy") && v["line"].as_u64() == Some(4))
    };
    assert!(eventually(10, parse_refusal).await, "{}", read(&log));
    let resp = client()
        .get(format!("{}/_gen/10?ttl=60", edge.url("http")))
        .send()
        .await
        .expect("still serving");
    assert_eq!(resp.status(), 200);
    assert!(
        cache_status(&resp).starts_with("edge-one;"),
        "{}",
        cache_status(&resp)
    );
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits_0() {
    let origin = spawn_origin(None, &[]);
    let mut edge = spawn_edge(&origin.url("http"), &[]);
    let before = origin_requests(&origin).await;
    let url = format!("{}/_gen/100?delay_ms=1000", edge.url("http"));
    let slow = tokio::spawn(async move { client().get(url).send().await });
    // Wait until the slow request has reached the origin.
    let mut reached = false;
    for _ in 0..50 {
        if origin_requests(&origin).await > before {
            reached = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reached, "the slow request reached the origin");
    signal(&edge, libc::SIGTERM);
    let resp = slow
        .await
        .expect("task")
        .expect("the in-flight request completes");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.expect("body").len(), 100);
    let status = edge
        .wait_exit(Duration::from_secs(15))
        .expect("the edge exits after draining");
    assert!(status.success(), "exit status {status:?}");
    // New connections are refused once it has gone.
    assert!(TcpStream::connect(edge.addr("http")).is_err());
    edge.kill();
}
