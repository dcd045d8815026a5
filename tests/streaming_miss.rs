//! Streaming miss: clients coalesced behind the fill of a large object get
//! its bytes as they arrive from the origin, not after it is stored.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;

const LEN: usize = 256 * 1024;
const FIRST: usize = 64 * 1024;

/// An origin that sends the head and the first part of a large body, then
/// holds the rest until `release` is notified (or closes the connection
/// there when `break_off`). Counts the requests it gets.
struct HeldOrigin {
    addr: std::net::SocketAddr,
    release: Arc<Notify>,
    requests: Arc<AtomicUsize>,
}

async fn held_origin(break_off: bool) -> HeldOrigin {
    let listener = TcpListener::bind((next_ip(), 0))
        .await
        .expect("bind held origin");
    let addr = listener.local_addr().expect("addr");
    let release = Arc::new(Notify::new());
    let requests = Arc::new(AtomicUsize::new(0));
    let (rel, count) = (release.clone(), requests.clone());
    tokio::spawn(async move {
        for _ in 0..8 {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let rel = rel.clone();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = sock.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {LEN}\r\ncache-control: public, max-age=60\r\ncontent-type: application/octet-stream\r\n\r\n"
                );
                let body: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body[..FIRST]).await;
                let _ = sock.flush().await;
                let _ = tokio::time::timeout(Duration::from_secs(20), rel.notified()).await;
                if !break_off {
                    let _ = sock.write_all(&body[FIRST..]).await;
                    let _ = sock.flush().await;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
        }
    });
    HeldOrigin {
        addr,
        release,
        requests,
    }
}

fn expected_body() -> Vec<u8> {
    (0..LEN).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn waiters_get_bytes_while_the_fill_streams_in() {
    let origin = held_origin(false).await;
    let edge = spawn_edge(&format!("http://{}", origin.addr), &[]);
    let url = format!("{}/big", edge.url("http"));
    let c = client();

    let mut first = c.get(&url).send().await.expect("leader");
    assert_eq!(first.status(), 200);
    let leader_chunk = tokio::time::timeout(Duration::from_secs(10), first.chunk())
        .await
        .expect("the leader gets bytes before the origin sent the whole body")
        .expect("chunk")
        .expect("some bytes");
    assert!(!leader_chunk.is_empty());

    let mut second = c.get(&url).send().await.expect("waiter");
    assert_eq!(second.status(), 200);
    let cs = second.headers()["cache-status"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cs.contains("collapsed"),
        "the second client joined the fill: {cs}"
    );
    let waiter_chunk = tokio::time::timeout(Duration::from_secs(10), second.chunk())
        .await
        .expect("the waiter gets bytes before the origin sent the whole body")
        .expect("chunk")
        .expect("some bytes");
    assert!(!waiter_chunk.is_empty());

    origin.release.notify_waiters();
    let mut a = leader_chunk.to_vec();
    while let Some(chunk) = first.chunk().await.expect("leader body") {
        a.extend_from_slice(&chunk);
    }
    let mut b = waiter_chunk.to_vec();
    while let Some(chunk) = second.chunk().await.expect("waiter body") {
        b.extend_from_slice(&chunk);
    }
    assert_eq!(a, expected_body());
    assert_eq!(b, expected_body());
    assert_eq!(origin.requests.load(Ordering::SeqCst), 1);

    // Stored once complete: the next request is a hit.
    let (_, third) = get_until_hit(&c, &url).await;
    assert_eq!(third, expected_body(), "the streamed object was stored");
}

#[tokio::test]
async fn a_fill_that_breaks_off_fails_its_clients_and_stores_nothing() {
    let origin = held_origin(true).await;
    let edge = spawn_edge(&format!("http://{}", origin.addr), &[]);
    let url = format!("{}/big", edge.url("http"));
    let c = client();
    let first = c.get(&url).send().await.expect("leader");
    let second = tokio::spawn(c.get(&url).send());
    tokio::time::sleep(Duration::from_millis(300)).await;
    origin.release.notify_waiters();
    let second = second.await.expect("task").expect("waiter");
    assert!(
        first.bytes().await.is_err(),
        "the leader's body fails, never a short body"
    );
    assert!(second.bytes().await.is_err(), "the waiter's body fails too");
    // Nothing was stored: the next request goes to the origin again.
    let third = tokio::spawn(c.get(&url).send());
    tokio::time::sleep(Duration::from_millis(300)).await;
    origin.release.notify_waiters();
    let third = third.await.expect("task").expect("third");
    assert!(
        !third.headers()["cache-status"]
            .to_str()
            .unwrap()
            .contains("hit")
    );
    let _ = third.bytes().await;
    assert_eq!(origin.requests.load(Ordering::SeqCst), 2);
}
