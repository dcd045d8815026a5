//! The scenarios of the purge suite, each run against a [`Plane`].

use std::time::Duration;

use edgecache::wan::Mode;
use serde_json::{Value, json};

use super::*;

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
    let far = plane.member_at(
        &plane.origin.url("http"),
        &[wan.addr("control")],
        "far",
        &[],
    );
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
    // max-age=2: `fill` checks for a fresh hit, and with the origin's
    // whole-second Date a max-age=1 copy can be stale at once.
    let (bound, free) = ("/_gen/64/bound?ttl=2", "/_gen/64/free?ttl=2");
    fill(&edge, bound, &[]).await;
    fill(&edge, free, &[]).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;

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
