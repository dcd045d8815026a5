//! Large stored bodies in sealed memory files: the same bytes on every
//! path (HTTP/1.1 hits sent with sendfile, ranges, HTTP/2), the stats that
//! show which path served them, the threshold setting, and the file
//! released once its object is purged.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

const BIG: &str = "/_gen/262144/big?ttl=600";
const TOKEN: &str = "body-file-token";

fn config(origin: &Proc, threshold: &str) -> String {
    format!(
        "origin = \"{}\"\n[admin]\ntoken = \"{TOKEN}\"\n[cache]\nfile_body_threshold = \"{threshold}\"\n",
        origin.url("http")
    )
}

/// GETs `path` from the edge over HTTP/1.1; returns Cache-Status and body.
async fn get_body(edge: &Proc, path: &str) -> (String, Vec<u8>) {
    let resp = get_ok(&format!("{}{path}", edge.url("http"))).await;
    let cs = cache_status(&resp);
    (cs, resp.bytes().await.expect("edge body").to_vec())
}

/// GETs `path` from the edge until it is a hit (bounded).
async fn hit(edge: &Proc, path: &str) -> (String, Vec<u8>) {
    get_until_hit(&client(), &format!("{}{path}", edge.url("http"))).await
}

#[tokio::test]
async fn a_large_body_is_sent_from_its_file_and_released_when_purged() {
    let origin = spawn_origin(None, &[]);
    let (edge, _dir) = spawn_edge_config(&config(&origin, "128KiB"));
    let expected = origin_body(&origin, BIG).await;
    assert_eq!(expected.len(), 262_144);

    let (cs, miss) = get_body(&edge, BIG).await;
    assert!(cs.contains("fwd="), "first request fills: {cs}");
    assert!(
        miss == expected,
        "the filling answer carries the origin's bytes"
    );
    let (_, hit_body) = hit(&edge, BIG).await;
    assert!(
        hit_body == expected,
        "a hit sent from the file carries the same bytes"
    );
    // The count follows the last sendfile call, which the client may see
    // answered a moment before the edge counts it.
    let mut s = Value::Null;
    for _ in 0..50 {
        s = edge_stats(&edge).await;
        if s["sendfile_bytes"].as_u64() >= Some(262_144) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        s["sendfile_bytes"].as_u64() >= Some(262_144),
        "the hit went out with sendfile: {s}"
    );
    assert_eq!(s["body_files"], 1, "{s}");
    assert_eq!(s["body_file_fallbacks"], 0, "{s}");

    // A range is a slice of the file's view.
    let ranged = client()
        .get(format!("{}{BIG}", edge.url("http")))
        .header("range", "bytes=100000-100999")
        .send()
        .await
        .expect("range GET");
    assert_eq!(ranged.status(), 206);
    assert!(ranged.bytes().await.expect("range body")[..] == expected[100_000..101_000]);

    // HTTP/2 (h2c) is written by hyper from the same view.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("h2c client");
    let resp = h2
        .get(format!("{}{BIG}", edge.url("http")))
        .send()
        .await
        .expect("h2c GET");
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert!(resp.bytes().await.expect("h2 body")[..] == expected[..]);

    // A small object stays on the heap.
    let small = "/_gen/1024/small?ttl=600";
    get_body(&edge, small).await;
    let (_, body) = hit(&edge, small).await;
    assert_eq!(body.len(), 1024);
    assert_eq!(edge_stats(&edge).await["body_files"], 1);

    let purged = client()
        .post(format!("{}/_edge/purge", edge.url("admin")))
        .bearer_auth(TOKEN)
        .json(&json!({ "urls": [format!("{}{BIG}", edge.url("http"))] }))
        .send()
        .await
        .expect("POST /_edge/purge");
    assert_eq!(purged.status(), 200);
    let mut files = Value::Null;
    for _ in 0..50 {
        files = edge_stats(&edge).await["body_files"].clone();
        if files == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(files, 0, "the purged object's file is closed");
    let (cs, again) = get_body(&edge, BIG).await;
    assert!(cs.contains("fwd="), "purged: filled again: {cs}");
    assert!(again == expected);
}

#[tokio::test]
async fn a_zero_threshold_keeps_large_bodies_on_the_heap() {
    let origin = spawn_origin(None, &[]);
    let (edge, _dir) = spawn_edge_config(&config(&origin, "0"));
    let expected = origin_body(&origin, BIG).await;
    get_body(&edge, BIG).await;
    let (_, hit_body) = hit(&edge, BIG).await;
    assert!(hit_body == expected);
    let s = edge_stats(&edge).await;
    assert_eq!(s["body_files"], 0, "{s}");
    assert_eq!(s["sendfile_bytes"], 0, "{s}");
}
