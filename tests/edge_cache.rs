//! End-to-end HTTP caching through a real edge in front of a real origin.

mod support;

use std::time::Duration;

use support::*;

struct Pair {
    origin: Proc,
    edge: Proc,
    _site: TempDir,
}

fn pair_with(edge_args: &[&str]) -> Pair {
    let site = TempDir::new("site");
    site.write("a.css", "body{}\n");
    site.write("index.html", "<h1>hi</h1>\n");
    let origin = spawn_origin(Some(site.path()), &[]);
    let edge = spawn_edge(&origin.url("http"), edge_args);
    Pair {
        origin,
        edge,
        _site: site,
    }
}

fn pair() -> Pair {
    pair_with(&[])
}

async fn get(url: &str) -> reqwest::Response {
    client().get(url).send().await.expect("request")
}

#[tokio::test]
async fn miss_then_hit_does_not_reach_origin() {
    let p = pair();
    let url = format!("{}/a.css", p.edge.url("http"));
    let first = get(&url).await;
    assert_eq!(first.status(), 200);
    let cs = cache_status(&first);
    assert!(cs.starts_with("edgecache; fwd=uri-miss"), "{cs}");
    assert!(cs.contains("stored"), "{cs}");
    assert!(first.headers().contains_key("age"));
    assert!(first.headers().get("via").is_some());
    assert_eq!(first.text().await.unwrap(), "body{}\n");
    let before = origin_requests(&p.origin).await;
    let second = get(&url).await;
    let cs = cache_status(&second);
    assert!(cs.starts_with("edgecache; hit; ttl="), "{cs}");
    assert!(second.headers().contains_key("age"));
    assert_eq!(second.text().await.unwrap(), "body{}\n");
    assert_eq!(
        origin_requests(&p.origin).await,
        before,
        "a hit must not reach the origin"
    );
}

#[tokio::test]
async fn stale_entry_is_revalidated_with_304() {
    let p = pair();
    // Three seconds of freshness: the revalidated copy must still be fresh
    // for the third request on a loaded machine.
    let url = format!("{}/_gen/500?ttl=3", p.edge.url("http"));
    let first = get(&url).await;
    assert_eq!(first.status(), 200);
    let body1 = first.bytes().await.unwrap();
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let before = origin_requests(&p.origin).await;
    let second = get(&url).await;
    let cs = cache_status(&second);
    assert!(
        cs.contains("fwd=stale") && cs.contains("fwd-status=304"),
        "{cs}"
    );
    assert_eq!(second.bytes().await.unwrap(), body1);
    assert_eq!(origin_requests(&p.origin).await, before + 1);
    // Freshened: the next request is a hit again.
    let third = get(&url).await;
    assert!(
        cache_status(&third).contains("hit"),
        "{}",
        cache_status(&third)
    );
}

#[tokio::test]
async fn vary_keeps_variants_apart() {
    let p = pair();
    let url = format!("{}/_gen/64?ttl=60&vary=accept-language", p.edge.url("http"));
    let c = client();
    let en = c
        .get(&url)
        .header("accept-language", "en")
        .send()
        .await
        .unwrap();
    assert!(
        cache_status(&en).contains("uri-miss"),
        "{}",
        cache_status(&en)
    );
    let en_body = en.bytes().await.unwrap();
    let fr = c
        .get(&url)
        .header("accept-language", "fr")
        .send()
        .await
        .unwrap();
    assert!(
        cache_status(&fr).contains("vary-miss"),
        "{}",
        cache_status(&fr)
    );
    let fr_body = fr.bytes().await.unwrap();
    assert_ne!(en_body, fr_body, "variants must differ");
    let en2 = c
        .get(&url)
        .header("accept-language", "en")
        .send()
        .await
        .unwrap();
    assert!(cache_status(&en2).contains("hit"));
    assert_eq!(en2.bytes().await.unwrap(), en_body);
    let fr2 = c
        .get(&url)
        .header("accept-language", "fr")
        .send()
        .await
        .unwrap();
    assert!(cache_status(&fr2).contains("hit"));
    assert_eq!(fr2.bytes().await.unwrap(), fr_body);
}

#[tokio::test]
async fn no_store_and_private_are_never_stored() {
    let p = pair();
    for cc in ["no-store", "private,%20max-age=60"] {
        let url = format!("{}/_gen/100?cc={cc}", p.edge.url("http"));
        let before = origin_requests(&p.origin).await;
        for _ in 0..3 {
            let r = get(&url).await;
            assert_eq!(r.status(), 200);
            assert!(
                !cache_status(&r).starts_with("edgecache; hit"),
                "{cc}: {}",
                cache_status(&r)
            );
        }
        assert_eq!(
            origin_requests(&p.origin).await,
            before + 3,
            "{cc} reached the origin each time"
        );
    }
}

#[tokio::test]
async fn uncacheable_url_is_marked_hit_for_pass_and_not_coalesced() {
    let p = pair();
    let url = format!(
        "{}/_gen/100/hfp?cc=no-store&delay_ms=200",
        p.edge.url("http")
    );
    let first = get(&url).await;
    assert!(
        cache_status(&first).contains("fwd=uri-miss") && cache_status(&first).contains("no-store"),
        "{}",
        cache_status(&first)
    );
    let before = origin_requests(&p.origin).await;
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    for task in tasks {
        let r = task.await.unwrap();
        assert_eq!(r.status(), 200);
        let cs = cache_status(&r);
        assert!(
            cs.contains("fwd=bypass") && cs.contains("detail=hit-for-pass"),
            "{cs}"
        );
    }
    assert_eq!(
        origin_requests(&p.origin).await,
        before + 5,
        "each marked request went to the origin on its own"
    );
}

#[tokio::test]
async fn post_invalidates_the_target() {
    let p = pair();
    let url = format!("{}/a.css", p.edge.url("http"));
    get(&url).await;
    assert!(cache_status(&get(&url).await).contains("hit"));
    let post = client().post(&url).body("x=1").send().await.unwrap();
    assert!(post.status().is_success());
    let after = get(&url).await;
    assert!(
        cache_status(&after).contains("miss"),
        "{}",
        cache_status(&after)
    );
}

#[tokio::test]
async fn post_invalidates_location() {
    let p = pair();
    let target = format!("{}/index.html", p.edge.url("http"));
    get(&target).await;
    assert!(cache_status(&get(&target).await).contains("hit"));
    let post = client()
        .post(format!("{}/form?location=/index.html", p.edge.url("http")))
        .send()
        .await
        .unwrap();
    assert!(post.status().is_success());
    assert!(cache_status(&get(&target).await).contains("miss"));
}

#[tokio::test]
async fn hundred_concurrent_cold_requests_reach_origin_once() {
    let p = pair();
    let url = format!("{}/_gen/2000?ttl=60&delay_ms=300", p.edge.url("http"));
    let before = origin_requests(&p.origin).await;
    let c = client();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let c = c.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let r = c.get(&url).send().await.expect("request");
            let cs = cache_status(&r);
            (r.status(), cs, r.bytes().await.expect("body").len())
        }));
    }
    let mut collapsed = 0;
    for t in tasks {
        let (status, cs, len) = t.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(len, 2000);
        if cs.contains("collapsed") {
            collapsed += 1;
        }
    }
    assert_eq!(
        origin_requests(&p.origin).await,
        before + 1,
        "one origin fetch for 100 clients"
    );
    assert!(
        collapsed >= 50,
        "most requests waited on the one fetch ({collapsed})"
    );
}

#[tokio::test]
async fn head_is_answered_without_body_and_fills_cache() {
    let p = pair();
    let url = format!("{}/_gen/3000?ttl=60", p.edge.url("http"));
    let head = client().head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "3000");
    assert!(head.bytes().await.unwrap().is_empty());
    let before = origin_requests(&p.origin).await;
    let getr = get(&url).await;
    assert!(
        cache_status(&getr).contains("hit"),
        "{}",
        cache_status(&getr)
    );
    assert_eq!(getr.bytes().await.unwrap().len(), 3000);
    assert_eq!(origin_requests(&p.origin).await, before);
}

#[tokio::test]
async fn oversized_body_streams_through_unstored() {
    let cfg = TempDir::new("cfg");
    let path = cfg.write(
        "edge.toml",
        "[cache]\ncapacity = \"4MiB\"\nmax_object_size = \"64KiB\"\n",
    );
    let p = pair_with(&["--config", path.to_str().unwrap()]);
    let url = format!("{}/_gen/300000?ttl=60", p.edge.url("http"));
    let before = origin_requests(&p.origin).await;
    for _ in 0..2 {
        let r = get(&url).await;
        assert_eq!(r.status(), 200);
        assert!(!cache_status(&r).contains("stored"), "{}", cache_status(&r));
        assert_eq!(r.bytes().await.unwrap().len(), 300_000);
    }
    assert_eq!(origin_requests(&p.origin).await, before + 2);
}

#[tokio::test]
async fn truncated_origin_body_is_not_stored() {
    let p = pair();
    let url = format!("{}/_gen/100000?ttl=60&truncate=1000", p.edge.url("http"));
    let before = origin_requests(&p.origin).await;
    for _ in 0..2 {
        // Either an error status, or a body that fails: never a short body
        // passed off as complete.
        if let Ok(r) = client().get(&url).send().await {
            let status = r.status();
            let body = r.bytes().await;
            if status == 200 {
                assert!(body.is_err() || body.unwrap().len() == 100_000);
            } else {
                assert_eq!(status, 502);
            }
        }
    }
    assert_eq!(
        origin_requests(&p.origin).await,
        before + 2,
        "nothing was stored"
    );
}

#[tokio::test]
async fn client_conditional_and_range_answered_from_cache() {
    let p = pair();
    let url = format!("{}/_gen/1000?ttl=60", p.edge.url("http"));
    let first = get(&url).await;
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    let body = first.bytes().await.unwrap();
    let before = origin_requests(&p.origin).await;
    let cond = client()
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cond.status(), 304);
    assert!(cache_status(&cond).contains("hit"));
    let range = client()
        .get(&url)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(range.status(), 206);
    assert_eq!(range.headers()["content-range"], "bytes 10-19/1000");
    assert_eq!(range.bytes().await.unwrap(), body.slice(10..20));
    assert_eq!(origin_requests(&p.origin).await, before);
}

#[tokio::test]
async fn expired_entry_without_validators_is_refetched() {
    let p = pair();
    let url = format!("{}/_gen/100?ttl=1&etag=0&lm=0", p.edge.url("http"));
    get(&url).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let before = origin_requests(&p.origin).await;
    let r = get(&url).await;
    let cs = cache_status(&r);
    assert!(
        cs.contains("fwd=stale") && cs.contains("fwd-status=200"),
        "{cs}"
    );
    assert_eq!(origin_requests(&p.origin).await, before + 1);
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    let p = pair();
    let c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let url = format!("{}/a.css", p.edge.url("http"));
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    // A hit over HTTP/2: hyper gets the stored fields and the edge's own
    // merged into one map, each once.
    let hit = c.get(&url).send().await.unwrap();
    assert_eq!(hit.version(), reqwest::Version::HTTP_2);
    assert!(cache_status(&hit).contains("hit"), "{}", cache_status(&hit));
    let h = hit.headers();
    for name in ["age", "cache-status", "via", "x-request-id", "content-type"] {
        assert_eq!(h.get_all(name).iter().count(), 1, "{name}: {h:?}");
    }
    assert_eq!(hit.text().await.unwrap(), r.text().await.unwrap());
}

#[tokio::test]
async fn admin_ready_is_on_admin_listener_only() {
    let p = pair();
    let r = get(&format!("{}/_edge/ready", p.edge.url("admin"))).await;
    assert_eq!(r.status(), 200);
    let public = get(&format!("{}/_edge/ready", p.edge.url("http"))).await;
    assert!(
        !cache_status(&public).is_empty(),
        "public listener proxies, it has no admin endpoints"
    );
}

#[test]
fn check_config_names_file_line_and_key() {
    let dir = TempDir::new("badcfg");
    let path = dir.write(
        "edge.toml",
        "origin = \"http://127.0.0.1:1\"\n\n[cache]\ncapasity = \"1MiB\"\n",
    );
    let out = std::process::Command::new(bin("edge"))
        .arg("--check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("edge.toml") && err.contains("line 4") && err.contains("capasity"),
        "{err}"
    );
    let good = dir.write("good.toml", "origin = \"http://127.0.0.1:1\"\n");
    let out = std::process::Command::new(bin("edge"))
        .arg("--check-config")
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[tokio::test]
async fn tiered_fill_lists_every_tier_in_cache_status() {
    let origin = spawn_origin(None, &[]);
    let cfg = TempDir::new("tiers");
    let shield_cfg = cfg.write("shield.toml", "name = \"shield\"\n");
    let shield = spawn_edge(
        &origin.url("http"),
        &["--config", shield_cfg.to_str().unwrap()],
    );
    let edge_cfg = cfg.write("edge.toml", "name = \"edge\"\n");
    let edge = spawn_edge(
        &shield.url("http"),
        &["--config", edge_cfg.to_str().unwrap()],
    );
    let url = format!("{}/_gen/100?ttl=60", edge.url("http"));
    let first = get(&url).await;
    let cs = cache_status(&first);
    assert!(
        cs.starts_with("shield; fwd=uri-miss") && cs.contains(", edge; fwd=uri-miss"),
        "both tiers, origin-nearest first: {cs}"
    );
    let second = get(&url).await;
    let cs = cache_status(&second);
    assert!(
        cs.starts_with("edge; hit"),
        "a hit lists only the tier that answered: {cs}"
    );
    assert_eq!(origin_requests(&origin).await, 1);
}

/// An edge allowed one CPU runs on a single-threaded runtime: it still
/// fills, hits, joins concurrent misses into one origin fetch and drains
/// on SIGTERM, with everything on one thread.
#[tokio::test]
async fn an_edge_allowed_one_cpu_runs_single_threaded() {
    let origin = spawn_origin(None, &[]);
    let ip = next_ip();
    let args = vec![
        "-c".to_string(),
        first_allowed_cpu().to_string(),
        bin("edge").display().to_string(),
        "--origin".into(),
        origin.url("http"),
        "--listen".into(),
        format!("{ip}:0"),
        "--admin-listen".into(),
        format!("{ip}:0"),
    ];
    let mut edge = Proc::start("taskset".into(), args, ip, &["http", "admin"]);
    let stats = edge_stats(&edge).await;
    assert_eq!(stats["runtime"]["scheduler"], "current_thread", "{stats}");
    assert_eq!(stats["runtime"]["workers"], 1, "{stats}");

    let url = format!("{}/_gen/3000?ttl=60&delay_ms=200", edge.url("http"));
    let before = origin_requests(&origin).await;
    let c = client();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (c, url) = (c.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let r = c.get(&url).send().await.expect("request");
            (r.status(), r.bytes().await.expect("body").len())
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), (reqwest::StatusCode::OK, 3000));
    }
    let (status, body) = get_until_hit(&c, &url).await;
    assert!(status.contains("hit"), "{status}");
    assert_eq!(body.len(), 3000);
    assert_eq!(
        origin_requests(&origin).await,
        before + 1,
        "one origin fetch for 50 clients and the hits after"
    );

    signal(&edge, libc::SIGTERM);
    let status = edge
        .wait_exit(Duration::from_secs(5))
        .expect("the edge exits on SIGTERM");
    assert!(status.success(), "exit status {status:?}");
}

/// The lowest-numbered CPU this process may run on (CPU 0 is not always
/// in a container's set).
fn first_allowed_cpu() -> usize {
    // SAFETY: a zeroed cpu_set_t is a valid empty set, and
    // sched_getaffinity writes at most its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    assert_eq!(rc, 0, "sched_getaffinity");
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: the index is below CPU_SETSIZE.
        .find(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .expect("at least one allowed CPU")
}
