//! End-to-end tests of the `origin` binary: static files with validators,
//! conditional and range requests, `_headers`, path safety, generated
//! content, stats, fault injection and h2c.

mod support;
use support::*;

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT_LANGUAGE, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    DATE, ETAG, HeaderName, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE,
    IF_UNMODIFIED_SINCE, LAST_MODIFIED, LOCATION, RANGE, SERVER,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CSS: &str = "body { color: #123456; }\n";

/// A content root with a stylesheet, an index page and a `_headers` file.
fn site() -> TempDir {
    let dir = TempDir::new("origin");
    dir.write("assets/app.css", CSS);
    dir.write("index.html", "<h1>home</h1>\n");
    dir.write("notes.txt", "0123456789abcdefghij");
    dir.write(
        "_headers",
        "# test rules\n/assets/*\n  Cache-Control: public, max-age=31536000, immutable\n  X-Rule: assets\n\n/assets/app.css\n  X-Rule: app\n  Surrogate-Key: css\n",
    );
    dir
}

fn header(resp: &reqwest::Response, name: impl reqwest::header::AsHeaderName) -> &str {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().expect("ASCII header"))
        .unwrap_or("")
}

/// GETs `url` with extra request headers.
async fn get(url: impl reqwest::IntoUrl, headers: &[(HeaderName, &str)]) -> reqwest::Response {
    let mut req = client().get(url);
    for (name, value) in headers {
        req = req.header(name, *value);
    }
    req.send().await.expect("GET")
}

/// Sets the origin's injected fault (`{}` clears it).
async fn put_fault(base: &str, json: &'static str) -> reqwest::Response {
    let url = format!("{base}/_fault");
    client()
        .put(url)
        .body(json)
        .send()
        .await
        .expect("PUT /_fault")
}

/// Sends a raw HTTP/1.1 GET for `path` (not normalised) and returns the
/// status code.
async fn raw_status(addr: SocketAddr, path: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: origin\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write request");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .expect("read response");
    let text = String::from_utf8_lossy(&response);
    let status_line = text.lines().next().expect("status line");
    status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"))
}

#[tokio::test]
async fn file_has_validators_and_content_type() {
    let dir = site();
    let origin = spawn_origin(Some(dir.path()), &[]);
    let resp = get(format!("{}/notes.txt?ignored=1", origin.url("http")), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let etag = header(&resp, ETAG).to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() == 34,
        "{etag}"
    );
    assert!(header(&resp, LAST_MODIFIED).ends_with("GMT"));
    assert_eq!(header(&resp, CONTENT_TYPE), "text/plain; charset=utf-8");
    assert_eq!(header(&resp, CONTENT_LENGTH), "20");
    assert_eq!(header(&resp, ACCEPT_RANGES), "bytes");
    assert_eq!(header(&resp, CACHE_CONTROL), "public, max-age=60");
    assert_eq!(header(&resp, SERVER), "edgecache-origin");
    assert!(!header(&resp, DATE).is_empty());
    assert_eq!(resp.text().await.unwrap(), "0123456789abcdefghij");

    // Same content, same ETag; the index page serves for `/`.
    let again = get(format!("{}/notes.txt", origin.url("http")), &[]).await;
    assert_eq!(header(&again, ETAG), etag);
    let index = get(format!("{}/", origin.url("http")), &[]).await;
    assert_eq!(header(&index, CONTENT_TYPE), "text/html; charset=utf-8");
    assert_eq!(index.text().await.unwrap(), "<h1>home</h1>\n");
    let missing = get(format!("{}/nope.css", origin.url("http")), &[]).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn conditional_requests() {
    let dir = site();
    let origin = spawn_origin(Some(dir.path()), &[]);
    let url = format!("{}/notes.txt", origin.url("http"));
    let first = get(&url, &[]).await;
    let etag = header(&first, ETAG).to_string();
    let last_modified = header(&first, LAST_MODIFIED).to_string();

    let inm = get(&url, &[(IF_NONE_MATCH, etag.as_str())]).await;
    assert_eq!(inm.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header(&inm, ETAG), etag);
    assert_eq!(header(&inm, LAST_MODIFIED), last_modified);
    assert_eq!(header(&inm, CACHE_CONTROL), "public, max-age=60");
    assert!(inm.bytes().await.unwrap().is_empty());

    let weak_list = format!("\"other\", W/{etag}");
    let weak = get(&url, &[(IF_NONE_MATCH, weak_list.as_str())]).await;
    assert_eq!(weak.status(), StatusCode::NOT_MODIFIED);
    let star = get(&url, &[(IF_NONE_MATCH, "*")]).await;
    assert_eq!(star.status(), StatusCode::NOT_MODIFIED);

    let ims = get(&url, &[(IF_MODIFIED_SINCE, last_modified.as_str())]).await;
    assert_eq!(ims.status(), StatusCode::NOT_MODIFIED);
    let old = "Mon, 01 Jan 2001 00:00:00 GMT";
    let ims_old = get(&url, &[(IF_MODIFIED_SINCE, old)]).await;
    assert_eq!(ims_old.status(), StatusCode::OK);
    // If-None-Match wins over If-Modified-Since.
    let both = get(
        &url,
        &[
            (IF_NONE_MATCH, "\"other\""),
            (IF_MODIFIED_SINCE, last_modified.as_str()),
        ],
    )
    .await;
    assert_eq!(both.status(), StatusCode::OK);

    let if_match = get(&url, &[(IF_MATCH, "\"other\"")]).await;
    assert_eq!(if_match.status(), StatusCode::PRECONDITION_FAILED);
    let if_match_ok = get(&url, &[(IF_MATCH, etag.as_str())]).await;
    assert_eq!(if_match_ok.status(), StatusCode::OK);
    let ius = get(&url, &[(IF_UNMODIFIED_SINCE, old)]).await;
    assert_eq!(ius.status(), StatusCode::PRECONDITION_FAILED);
}

#[tokio::test]
async fn range_requests() {
    let dir = site();
    let origin = spawn_origin(Some(dir.path()), &[]);
    let url = format!("{}/notes.txt", origin.url("http"));

    let part = get(&url, &[(RANGE, "bytes=2-5")]).await;
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&part, CONTENT_RANGE), "bytes 2-5/20");
    assert_eq!(header(&part, CONTENT_LENGTH), "4");
    let etag = header(&part, ETAG).to_string();
    assert_eq!(part.text().await.unwrap(), "2345");

    let suffix = get(&url, &[(RANGE, "bytes=-3")]).await;
    assert_eq!(header(&suffix, CONTENT_RANGE), "bytes 17-19/20");
    assert_eq!(suffix.text().await.unwrap(), "hij");
    let open = get(&url, &[(RANGE, "bytes=18-")]).await;
    assert_eq!(open.text().await.unwrap(), "ij");

    let bad = get(&url, &[(RANGE, "bytes=20-")]).await;
    assert_eq!(bad.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&bad, CONTENT_RANGE), "bytes */20");

    let multi = get(&url, &[(RANGE, "bytes=0-1,4-5")]).await;
    assert_eq!(multi.status(), StatusCode::OK);
    assert_eq!(multi.text().await.unwrap().len(), 20);

    let stale = get(&url, &[(RANGE, "bytes=0-1"), (IF_RANGE, "\"stale\"")]).await;
    assert_eq!(stale.status(), StatusCode::OK);
    let fresh = get(&url, &[(RANGE, "bytes=0-1"), (IF_RANGE, etag.as_str())]).await;
    assert_eq!(fresh.status(), StatusCode::PARTIAL_CONTENT);
}

#[tokio::test]
async fn headers_file_rules_apply_and_reload() {
    let dir = site();
    let origin = spawn_origin(
        Some(dir.path()),
        &["--default-cache-control", "public, max-age=7"],
    );
    let base = origin.url("http");
    let css = get(format!("{base}/assets/app.css"), &[]).await;
    assert_eq!(
        header(&css, CACHE_CONTROL),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(header(&css, "x-rule"), "app", "the later block wins");
    assert_eq!(header(&css, "surrogate-key"), "css");
    assert_eq!(header(&css, CONTENT_TYPE), "text/css; charset=utf-8");
    assert_eq!(css.text().await.unwrap(), CSS);

    let txt = get(format!("{base}/notes.txt"), &[]).await;
    assert_eq!(header(&txt, CACHE_CONTROL), "public, max-age=7");
    assert_eq!(header(&txt, "x-rule"), "");

    let hidden = get(format!("{base}/_headers"), &[]).await;
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);

    dir.write(
        "_headers",
        "/notes.txt\n  Cache-Control: no-cache\n  X-Reloaded: 1\n",
    );
    let reloaded = get(format!("{base}/notes.txt"), &[]).await;
    assert_eq!(header(&reloaded, CACHE_CONTROL), "no-cache");
    assert_eq!(header(&reloaded, "x-reloaded"), "1");
}

#[tokio::test]
async fn invalid_headers_file_is_refused_at_start() {
    let dir = TempDir::new("origin-bad-headers");
    dir.write("_headers", "/a\n  X-Ok: 1\n  this line has no colon\n");
    let output = std::process::Command::new(bin("origin"))
        .args(["--listen", "127.0.0.1:0", "--root"])
        .arg(dir.path())
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run origin");
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "must not start listening");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("_headers:3"), "{stderr}");
}

#[tokio::test]
async fn head_has_headers_but_no_body() {
    let dir = site();
    let origin = spawn_origin(Some(dir.path()), &[]);
    let resp = client()
        .head(format!("{}/notes.txt", origin.url("http")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, CONTENT_LENGTH), "20");
    assert!(!header(&resp, ETAG).is_empty());
    assert!(resp.bytes().await.unwrap().is_empty());

    let generated = client()
        .head(format!("{}/_gen/5000", origin.url("http")))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&generated, CONTENT_LENGTH), "5000");
    assert!(generated.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn traversal_attempts_are_refused() {
    let dir = site();
    let secret = dir.path().with_extension("secret");
    std::fs::write(&secret, "secret").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&secret, dir.path().join("leak.txt")).unwrap();
    let origin = spawn_origin(Some(dir.path()), &[]);
    let addr = origin.addr("http");
    for path in [
        "/../etc/passwd",
        "/%2e%2e/x",
        "/%2E%2E/%2e%2e/etc/passwd",
        "/a/..%2fb",
        "/assets/..%2F_headers",
        "/a\\..\\b",
        "/a%5c..%5cb",
        "/a%00.txt",
    ] {
        assert_eq!(raw_status(addr, path).await, 400, "{path}");
    }
    assert_eq!(raw_status(addr, "/assets/app.css").await, 200);
    #[cfg(unix)]
    assert_eq!(raw_status(addr, "/leak.txt").await, 404);
    let _ = std::fs::remove_file(&secret);
}

#[tokio::test]
async fn generated_content() {
    let origin = spawn_origin(None, &[]);
    let base = origin.url("http");
    let resp = get(format!("{base}/_gen/1000?ttl=5"), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, CACHE_CONTROL), "public, max-age=5");
    assert_eq!(header(&resp, CONTENT_LENGTH), "1000");
    assert_eq!(
        header(&resp, LAST_MODIFIED),
        "Thu, 01 Jan 2026 00:00:00 GMT"
    );
    let etag = header(&resp, ETAG).to_string();
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len(), 1000);
    let again = get(format!("{base}/_gen/1000?ttl=5"), &[]).await;
    assert_eq!(header(&again, ETAG), etag);
    assert_eq!(again.bytes().await.unwrap(), body, "deterministic");

    let v2 = get(format!("{base}/_gen/1000?version=2"), &[]).await;
    assert_ne!(header(&v2, ETAG), etag);
    assert_eq!(header(&v2, CACHE_CONTROL), "public, max-age=60");

    let custom = get(
        format!(
            "{base}/_gen/10?cc=private%2C%20max-age%3D3&etag=0&lm=0&tag=k1&setcookie=1&status=404"
        ),
        &[],
    )
    .await;
    assert_eq!(custom.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&custom, CACHE_CONTROL), "private, max-age=3");
    assert_eq!(header(&custom, ETAG), "");
    assert_eq!(header(&custom, LAST_MODIFIED), "");
    assert_eq!(header(&custom, "surrogate-key"), "k1");
    assert!(!header(&custom, "set-cookie").is_empty());

    let fr = get(
        format!("{base}/_gen/64?vary=Accept-Language"),
        &[(ACCEPT_LANGUAGE, "fr")],
    )
    .await;
    assert_eq!(header(&fr, "vary"), "accept-language");
    let fr_etag = header(&fr, ETAG).to_string();
    assert!(String::from_utf8_lossy(&fr.bytes().await.unwrap()).contains("fr"));
    let de = get(
        format!("{base}/_gen/64?vary=Accept-Language"),
        &[(ACCEPT_LANGUAGE, "de")],
    )
    .await;
    assert_ne!(header(&de, ETAG), fr_etag);

    let cond = get(
        format!("{base}/_gen/1000"),
        &[(IF_NONE_MATCH, etag.as_str())],
    )
    .await;
    assert_eq!(cond.status(), StatusCode::NOT_MODIFIED);
    let range = get(format!("{base}/_gen/1000"), &[(RANGE, "bytes=10-19")]).await;
    assert_eq!(header(&range, CONTENT_RANGE), "bytes 10-19/1000");
    assert_eq!(range.bytes().await.unwrap(), body.slice(10..20));

    let too_big = get(format!("{base}/_gen/1073741825"), &[]).await;
    assert_eq!(too_big.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn stats_count_requests() {
    let dir = site();
    let origin = spawn_origin(Some(dir.path()), &[]);
    let base = origin.url("http");
    assert_eq!(origin_requests(&origin).await, 0);
    let first = get(format!("{base}/assets/app.css"), &[]).await;
    let etag = header(&first, ETAG).to_string();
    for _ in 0..2 {
        get(format!("{base}/assets/app.css"), &[]).await;
    }
    let not_modified = get(
        format!("{base}/assets/app.css"),
        &[(IF_NONE_MATCH, etag.as_str())],
    )
    .await;
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
    get(format!("{base}/missing"), &[]).await;
    assert_eq!(
        origin_requests(&origin).await,
        5,
        "/_stats itself is not counted"
    );
    let stats: serde_json::Value = get(format!("{base}/_stats"), &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stats["by_path"]["/assets/app.css"], 4);
    assert_eq!(stats["by_path"]["/missing"], 1);
}

#[tokio::test]
async fn fault_injection_status_and_clear() {
    let dir = site();
    let origin = spawn_origin(Some(dir.path()), &[]);
    let base = origin.url("http");
    let set = put_fault(&base, r#"{"status": 503}"#).await;
    assert_eq!(set.status(), StatusCode::OK);
    let shown: serde_json::Value = get(format!("{base}/_fault"), &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["status"], 503);
    let faulty = get(format!("{base}/notes.txt"), &[]).await;
    assert_eq!(faulty.status(), StatusCode::SERVICE_UNAVAILABLE);
    // The control endpoints are not affected.
    assert_eq!(origin_requests(&origin).await, 1);

    put_fault(&base, "{}").await;
    let healthy = get(format!("{base}/notes.txt"), &[]).await;
    assert_eq!(healthy.status(), StatusCode::OK);

    let bad = put_fault(&base, "{\"nope\": 1}").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn fault_delay_holds_the_head() {
    let origin = spawn_origin(None, &[]);
    let base = origin.url("http");
    put_fault(&base, r#"{"delay_ms": 300}"#).await;
    let started = std::time::Instant::now();
    let resp = get(format!("{base}/_gen/10"), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn truncated_bodies_fail_on_the_client() {
    let origin = spawn_origin(None, &[]);
    let base = origin.url("http");
    let resp = get(format!("{base}/_gen/100000?truncate=1000"), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, CONTENT_LENGTH), "100000");
    assert!(resp.bytes().await.is_err(), "a truncated body must fail");

    put_fault(&base, r#"{"truncate": 100}"#).await;
    let resp = get(format!("{base}/_gen/5000"), &[]).await;
    assert!(
        resp.bytes().await.is_err(),
        "a fault-truncated body must fail"
    );
    put_fault(&base, "{}").await;
    let resp = get(format!("{base}/_gen/5000"), &[]).await;
    assert_eq!(resp.bytes().await.unwrap().len(), 5000);
}

#[tokio::test]
async fn h2c_prior_knowledge() {
    let dir = site();
    let origin = spawn_origin(Some(dir.path()), &[]);
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let resp = h2
        .get(format!("{}/assets/app.css", origin.url("http")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, SERVER), "edgecache-origin");
    assert!(!header(&resp, DATE).is_empty());
    assert_eq!(resp.text().await.unwrap(), CSS);

    let truncated = h2.get(format!("{}/_gen/100000?truncate=10", origin.url("http")));
    assert!(truncated.send().await.unwrap().bytes().await.is_err());
}

#[tokio::test]
async fn unsafe_methods_echo_and_others_are_refused() {
    let origin = spawn_origin(None, &[]);
    let base = origin.url("http");
    let resp = client()
        .post(format!("{base}/articles/1?location=/articles/1"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, CACHE_CONTROL), "no-store");
    assert_eq!(header(&resp, LOCATION), "/articles/1");
    let echo: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/articles/1");
    let delete = client().delete(format!("{base}/a")).send().await.unwrap();
    assert_eq!(delete.status(), StatusCode::OK);

    let options = client()
        .request(reqwest::Method::OPTIONS, format!("{base}/a"))
        .send()
        .await
        .unwrap();
    assert_eq!(options.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(header(&options, "allow").contains("GET"));
}
