//! `/metrics` and the JSON access log.

use super::*;

#[tokio::test]
async fn metrics_endpoint_has_the_documented_series() {
    let mut origin = spawn_origin(None, &[]);
    let edge = spawn_edge(&origin.url("http"), &[]);
    let url = format!("{}/_gen/50?ttl=60", edge.url("http"));
    for _ in 0..2 {
        assert_eq!(client().get(&url).send().await.expect("get").status(), 200);
    }
    origin.kill();
    let resp = client()
        .get(format!("{}/_gen/51?ttl=60", edge.url("http")))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 504);
    let text = client()
        .get(format!("{}/metrics", edge.url("admin")))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let has = |prefix: &str, needle: &str| {
        text.lines()
            .any(|l| l.starts_with(prefix) && l.contains(needle))
    };
    assert!(has("edgecache_requests_total{", "cache=\"miss\""), "{text}");
    assert!(has("edgecache_requests_total{", "cache=\"hit\""), "{text}");
    assert!(has("edgecache_requests_total{", "code=\"504\""), "{text}");
    assert!(
        has("edgecache_requests_total{", "cache=\"error\""),
        "{text}"
    );
    assert!(
        has(
            "edgecache_request_duration_seconds_bucket{",
            "cache=\"hit\""
        ),
        "{text}"
    );
    assert!(
        has(
            "edgecache_request_duration_seconds_bucket{",
            "cache=\"miss\""
        ),
        "{text}"
    );
    assert!(has("edgecache_origin_requests_total", " "), "{text}");
    assert!(has("edgecache_origin_failures_total{", "kind="), "{text}");
    assert!(has("edgecache_cache_entries", " "), "{text}");
    assert!(has("edgecache_cache_bytes", " "), "{text}");
    assert!(has("edgecache_origin_up{", "role=\"primary\""), "{text}");
    assert!(has("edgecache_stale_answers_total", " "), "{text}");
    assert!(has("edgecache_coalesced_waiters_total", " "), "{text}");
    assert!(
        text.contains("# TYPE edgecache_requests_total counter"),
        "{text}"
    );
}

#[tokio::test]
async fn json_access_log_carries_the_request_fields() {
    let origin = spawn_origin(None, &[]);
    let dir = TempDir::new("jsonlog");
    let log = dir.path().join("edge.log");
    let ip = next_ip();
    let args = vec![
        "--origin".to_string(),
        origin.url("http"),
        "--listen".into(),
        format!("{ip}:0"),
        "--log-format".into(),
        "json".into(),
    ];
    let edge = start_edge_logged(args, ip, &["http"], &log);
    let resp = client()
        .get(format!("{}/_gen/64?ttl=60", edge.url("http")))
        .header("x-request-id", "log-id-1")
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 200);
    let access = || {
        read(&log)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["target"] == "access" && v["request_id"] == "log-id-1")
    };
    assert!(
        eventually(10, || access().is_some()).await,
        "{}",
        read(&log)
    );
    let line = access().expect("access line");
    assert_eq!(line["method"], "GET", "{line}");
    assert_eq!(line["path"], "/_gen/64", "{line}");
    assert_eq!(line["status"], 200, "{line}");
    assert!(
        line["cache_status"]
            .as_str()
            .is_some_and(|c| c.contains("fwd=uri-miss")),
        "{line}"
    );
    assert_eq!(line["bytes"], 64, "{line}");
    assert!(line["duration_us"].is_u64(), "{line}");
}
