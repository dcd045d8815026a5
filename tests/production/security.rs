//! Not an open proxy, request limits, unkeyed headers, the admin
//! listener kept apart; and the command line.

use super::*;

#[tokio::test]
async fn unknown_hosts_and_absolute_targets_get_421_and_are_never_fetched() {
    let origin = spawn_origin(None, &[]);
    let (edge, _dir) = spawn_edge_config(&format!(
        "origin = \"{}\"\nhosts = [\"cdn.test\", \"*.img.test\"]\n",
        origin.url("http")
    ));
    let url = format!("{}/_gen/10?ttl=60", edge.url("http"));
    for host in ["cdn.test", "a.img.test"] {
        let resp = client()
            .get(&url)
            .header("host", host)
            .send()
            .await
            .expect("get");
        assert_eq!(resp.status(), 200, "{host}");
    }
    let before = origin_requests(&origin).await;
    let resp = client()
        .get(&url)
        .header("host", "evil.test")
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 421);
    let addr = edge.addr("http");
    for target in ["http://evil.test/_gen/11", "http://127.0.0.1:1/_gen/11"] {
        let head = format!("GET {target} HTTP/1.1\r\nHost: cdn.test\r\nConnection: close\r\n\r\n");
        let answer = raw_exchange(addr, head.as_bytes(), Duration::from_secs(10));
        assert!(answer.starts_with("HTTP/1.1 421"), "{target}: {answer}");
    }
    assert_eq!(
        origin_requests(&origin).await,
        before,
        "nothing was fetched"
    );
}

#[tokio::test]
async fn limits_answer_431_414_413() {
    let origin = spawn_origin(None, &[]);
    let (edge, _dir) = spawn_edge_config(&format!(
        "origin = \"{}\"\n[limits]\nmax_header_bytes = \"8KiB\"\nmax_uri_length = 200\nmax_request_body = \"1KiB\"\n",
        origin.url("http")
    ));
    let addr = edge.addr("http");
    let big = "x".repeat(16 * 1024);
    let head = format!("GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: {big}\r\n\r\n");
    let answer = raw_exchange(addr, head.as_bytes(), Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    let long = format!("{}/{}", edge.url("http"), "a".repeat(300));
    let resp = client().get(long).send().await.expect("get");
    assert_eq!(resp.status(), 414);
    let resp = client()
        .post(format!("{}/upload", edge.url("http")))
        .body(vec![b'z'; 4096])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 413);
}

#[tokio::test]
async fn slowloris_and_idle_connections_are_disconnected_after_the_header_read_timeout() {
    let origin = spawn_origin(None, &[]);
    let (edge, _dir) = spawn_edge_config(&format!(
        "origin = \"{}\"\n[limits]\nheader_read_timeout = \"1s\"\n",
        origin.url("http")
    ));
    let started = Instant::now();
    // Half a head, then silence: the edge must hang up on its own.
    let answer = raw_exchange(
        edge.addr("http"),
        b"GET / HTTP/1.1\r\nHost: a.test\r\n",
        Duration::from_secs(15),
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "not disconnected: {took:?}");
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
    // An idle keep-alive connection is closed by the same timeout.
    let started = Instant::now();
    let answer = raw_exchange(
        edge.addr("http"),
        b"GET /_gen/10 HTTP/1.1\r\nHost: a.test\r\n\r\n",
        Duration::from_secs(15),
    );
    let took = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        took < Duration::from_secs(8),
        "idle connection kept: {took:?}"
    );
}

#[tokio::test]
async fn a_busy_keep_alive_connection_outlives_its_first_header_read_deadline() {
    let origin = spawn_origin(None, &[]);
    let (edge, _dir) = spawn_edge_config(&format!(
        "origin = \"{}\"\n[limits]\nheader_read_timeout = \"2s\"\n",
        origin.url("http")
    ));
    let mut sender = one_connection(edge.addr("http")).await;
    // Each request comes well inside the timeout counted from the answer
    // before it; the third comes after the deadline counted from the
    // connection's start (2 s), which must not cut it.
    for _ in 0..3 {
        let (status, _) = get_on(&mut sender, "/_gen/10?ttl=60").await;
        assert_eq!(status, 200);
        tokio::time::sleep(Duration::from_millis(1300)).await;
    }
    // Then idle: closed by the same timeout.
    assert!(
        eventually(10, || sender.is_closed()).await,
        "idle connection kept"
    );
}

#[tokio::test]
async fn connections_above_the_cap_wait_for_a_free_slot() {
    let origin = spawn_origin(None, &[]);
    let (edge, _dir) = spawn_edge_config(&format!(
        "origin = \"{}\"\n[limits]\nmax_connections = 1\n",
        origin.url("http")
    ));
    let addr = edge.addr("http");
    // The first connection takes the only slot and sits idle.
    let first = TcpStream::connect(addr).expect("connect");
    std::thread::sleep(Duration::from_millis(300));
    let mut second = TcpStream::connect(addr).expect("connect (kernel backlog)");
    second
        .write_all(b"GET /_gen/10 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        .expect("write");
    second
        .set_read_timeout(Some(Duration::from_millis(700)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    assert!(
        second.read(&mut buf).is_err(),
        "the second connection is not served while the first holds the slot"
    );
    drop(first);
    second
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let n = second.read(&mut buf).expect("served once the slot is free");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
}

#[tokio::test]
async fn unkeyed_headers_are_not_forwarded_and_admin_is_not_public() {
    let origin = RecordingOrigin::start();
    let edge = spawn_edge(&format!("http://{}", origin.addr), &[]);
    let resp = client()
        .get(format!("{}/page", edge.url("http")))
        .header("x-forwarded-host", "evil.test")
        .header("x-original-url", "/admin")
        .header("x-rewrite-url", "/admin")
        .header("x-forwarded-scheme", "http")
        .header("x-http-method-override", "DELETE")
        .header("forwarded", "host=evil.test")
        .header("x-request-id", "req-id-42")
        .header("x-kept", "yes")
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "req-id-42");
    let heads = origin.heads();
    let head = heads
        .iter()
        .find(|h| h.starts_with("get /page "))
        .expect("origin saw /page");
    for name in [
        "x-forwarded-host:",
        "x-original-url:",
        "x-rewrite-url:",
        "x-forwarded-scheme:",
        "x-http-method-override:",
        "forwarded:",
    ] {
        assert!(
            !head.contains(&format!("\n{name}")),
            "{name} forwarded: {head}"
        );
    }
    assert!(head.contains("\nx-request-id: req-id-42\r\n"), "{head}");
    assert!(head.contains("\nx-kept: yes\r\n"), "{head}");
    // A new request id (UUID v7) is made, returned and passed on.
    let resp = client()
        .get(format!("{}/other", edge.url("http")))
        .send()
        .await
        .expect("get");
    let id = resp.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_string();
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(&id[14..15], "7", "UUID v7: {id}");
    let heads = origin.heads();
    let head = heads
        .iter()
        .find(|h| h.starts_with("get /other "))
        .expect("origin saw /other");
    assert!(
        head.contains(&format!("\nx-request-id: {id}\r\n")),
        "{head}"
    );
    // The admin paths on the public listener are plain origin paths.
    for path in ["/_edge/stats", "/metrics", "/_edge/purge"] {
        let resp = client()
            .get(format!("{}{path}", edge.url("http")))
            .send()
            .await
            .expect("get");
        assert_eq!(
            resp.text().await.expect("body"),
            "ok",
            "{path} answered by the origin"
        );
    }
    let heads = origin.heads();
    for path in ["/_edge/stats", "/metrics", "/_edge/purge"] {
        assert!(
            heads.iter().any(|h| h.starts_with(&format!("get {path} "))),
            "{path}"
        );
    }
}

#[test]
fn version_help_and_config_refusals() {
    let out = Command::new(bin("edge"))
        .arg("--version")
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("edge "));
    let out = Command::new(bin("edge"))
        .arg("--help")
        .output()
        .expect("run");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        help.contains("Examples:") && help.contains("--tls-listen"),
        "{help}"
    );
    let dir = TempDir::new("refuse");
    let path = dir.write(
        "edge.toml",
        "[cache]\nforward_unkeyed_headers = [\"x-forwarded-host\"]\n",
    );
    let out = Command::new(bin("edge"))
        .arg("--check-config")
        .arg(&path)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("forward_unkeyed_headers") && err.contains("poison"),
        "{err}"
    );
}
