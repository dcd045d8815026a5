//! The edge's own HTTP/1.1 path on real sockets: pipelining, HTTP/1.0,
//! HEAD, framing of bodies of unknown length, and the hand-over to hyper
//! of what it does not take (request bodies, garbage) on the same
//! connection, and the send timeout for clients that stop reading.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use support::*;

/// Writes `request` in one piece, then reads until the edge closes (or
/// `wait` passes without a byte).
fn exchange(addr: SocketAddr, request: &[u8], wait: Duration) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(wait)).expect("read timeout");
    stream.write_all(request).expect("write");
    read_until_close(&mut stream)
}

/// Sends `requests` back to back in one write (pipelined) and reads every
/// answer until the edge closes.
fn pipeline(addr: SocketAddr, requests: &[String]) -> String {
    exchange(addr, requests.concat().as_bytes(), Duration::from_secs(10))
}

fn read_until_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    for _ in 0..10_000 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status lines of every answer in `text`, in order (a body without a
/// line end runs straight into the next status line).
fn status_lines(text: &str) -> Vec<&str> {
    text.match_indices("HTTP/1.")
        .filter_map(|(at, _)| text[at..].split("\r\n").next())
        .collect()
}

fn get(target: &str, extra: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: cdn.test\r\n{extra}\r\n")
}

#[test]
fn pipelined_requests_are_answered_in_order_with_exact_bodies() {
    let origin = spawn_origin(None, &[]);
    let edge = spawn_edge(&origin.url("http"), &[]);
    let answer = pipeline(
        edge.addr("http"),
        &[
            get("/_gen/10/a?ttl=60", ""),
            get("/_gen/20/b?ttl=60", ""),
            get("/_gen/10/a?ttl=60", "Connection: close\r\n"),
        ],
    );
    assert_eq!(
        status_lines(&answer),
        ["HTTP/1.1 200 OK"; 3],
        "three answers: {answer}"
    );
    let heads: Vec<&str> = answer.split("\r\n\r\n").collect();
    // Head, body+head, body+head, body: each body exactly its length.
    assert_eq!(heads.len(), 4, "{answer}");
    assert!(heads[0].contains("content-length: 10"), "{}", heads[0]);
    assert_eq!(
        &heads[1][10..25],
        "HTTP/1.1 200 OK",
        "10 bytes, then the next answer"
    );
    assert!(heads[1].contains("content-length: 20"), "{}", heads[1]);
    assert!(heads[2].contains("content-length: 10"), "{}", heads[2]);
    assert!(
        heads[2].contains("cache-status: edgecache; hit"),
        "the third is a hit: {}",
        heads[2]
    );
    assert!(heads[2].contains("connection: close"), "{}", heads[2]);
    assert_eq!(heads[3].len(), 10, "the last body, then the close");
    assert_eq!(
        answer.matches("x-request-id: ").count(),
        3,
        "one request id per answer"
    );
}

#[test]
fn http_1_0_closes_unless_asked_to_keep_alive() {
    let origin = spawn_origin(None, &[]);
    let edge = spawn_edge(&origin.url("http"), &[]);
    let addr = edge.addr("http");
    let answer = exchange(
        addr,
        b"GET /_gen/10?ttl=60 HTTP/1.0\r\nHost: cdn.test\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(answer.starts_with("HTTP/1.0 200 OK\r\n"), "{answer}");
    assert!(answer.contains("connection: close\r\n"), "{answer}");

    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let keep = b"GET /_gen/10?ttl=60 HTTP/1.0\r\nHost: cdn.test\r\nConnection: keep-alive\r\n\r\n";
    stream.write_all(keep).expect("write");
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).expect("first answer");
    let first = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(first.contains("connection: keep-alive\r\n"), "{first}");
    stream
        .write_all(b"GET /_gen/10?ttl=60 HTTP/1.0\r\nHost: cdn.test\r\n\r\n")
        .expect("second request on the same connection");
    let second = read_until_close(&mut stream);
    assert!(second.starts_with("HTTP/1.0 200 OK"), "{second}");
}

#[test]
fn head_answers_the_length_without_a_body_and_the_next_request_follows() {
    let origin = spawn_origin(None, &[]);
    let edge = spawn_edge(&origin.url("http"), &[]);
    let request = format!(
        "HEAD /_gen/300?ttl=60 HTTP/1.1\r\nHost: cdn.test\r\n\r\n{}",
        get("/_gen/5?ttl=60", "Connection: close\r\n")
    );
    let answer = exchange(
        edge.addr("http"),
        request.as_bytes(),
        Duration::from_secs(10),
    );
    let parts: Vec<&str> = answer.split("\r\n\r\n").collect();
    assert_eq!(parts.len(), 3, "{answer}");
    assert!(parts[0].contains("content-length: 300"), "{}", parts[0]);
    assert!(
        parts[1].starts_with("HTTP/1.1 200 OK"),
        "no body after HEAD: {}",
        parts[1]
    );
    assert_eq!(parts[2].len(), 5);
}

#[test]
fn bodies_and_garbage_go_to_hyper_on_the_same_connection() {
    let origin = spawn_origin(None, &[]);
    let edge = spawn_edge(&origin.url("http"), &[]);
    let answer = pipeline(
        edge.addr("http"),
        &[
            get("/_gen/10?ttl=60", ""),
            "POST /_gen/4 HTTP/1.1\r\nHost: cdn.test\r\nContent-Length: 3\r\n\r\nabc".to_string(),
            get("/_gen/10?ttl=60", "Connection: close\r\n"),
        ],
    );
    assert_eq!(
        status_lines(&answer).len(),
        3,
        "GET here, POST and GET by hyper: {answer}"
    );
    assert!(
        answer.contains("fwd=method"),
        "the POST was forwarded: {answer}"
    );

    let answer = exchange(
        edge.addr("http"),
        b"GET / HTTP/1.1\r\nBad Field Name: x\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}

/// An origin that answers every request with a chunked, uncacheable body.
fn chunked_origin() -> SocketAddr {
    raw_origin(
        b"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nTransfer-Encoding: chunked\r\n\
          Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
}

/// An origin that answers every request (at most 20) with `answer`.
fn raw_origin(answer: &'static [u8]) -> SocketAddr {
    let ip = next_ip();
    let listener = TcpListener::bind((ip, 0)).expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(answer);
        }
    });
    addr
}

#[test]
fn bodies_of_unknown_length_are_chunked_for_1_1_and_close_delimited_for_1_0() {
    let origin = chunked_origin();
    let edge = spawn_edge(&format!("http://{origin}"), &[]);
    let answer = exchange(
        edge.addr("http"),
        get("/stream", "Connection: close\r\n").as_bytes(),
        Duration::from_secs(10),
    );
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(
        answer.contains("transfer-encoding: chunked\r\n"),
        "{answer}"
    );
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let mut decoded = String::new();
    let mut rest = body;
    for _ in 0..10 {
        let Some((size, after)) = rest.split_once("\r\n") else {
            break;
        };
        let size = usize::from_str_radix(size, 16).expect("chunk size");
        if size == 0 {
            break;
        }
        decoded.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    assert_eq!(decoded, "hello world", "{answer}");

    let answer = exchange(
        edge.addr("http"),
        b"GET /stream HTTP/1.0\r\nHost: cdn.test\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(!answer.contains("transfer-encoding"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nhello world"), "{answer}");
}

#[test]
fn fields_the_edge_sets_per_answer_appear_once_on_hits() {
    // The origin echoes a request id and went through a tier that added Via.
    let origin = raw_origin(
        b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nX-Request-Id: from-origin\r\n\
          Via: 1.1 shield\r\nAge: 7\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    );
    let edge = spawn_edge(&format!("http://{origin}"), &[]);
    let answer = pipeline(
        edge.addr("http"),
        &[
            get("/once", ""),
            get("/once", "X-Request-Id: mine\r\nConnection: close\r\n"),
        ],
    );
    let heads: Vec<&str> = answer.split("\r\n\r\n").collect();
    assert_eq!(heads.len(), 3, "{answer}");
    let hit = heads[1];
    assert!(hit.contains("cache-status: edgecache; hit"), "{hit}");
    assert_eq!(hit.matches("x-request-id: ").count(), 1, "{hit}");
    assert!(hit.contains("x-request-id: mine\r\n"), "{hit}");
    assert_eq!(hit.matches("via: ").count(), 1, "{hit}");
    assert!(hit.contains("via: 1.1 shield, 1.1 edgecache"), "{hit}");
    assert_eq!(hit.matches("age: ").count(), 1, "{hit}");
}

#[test]
fn an_idle_keep_alive_connection_is_closed_at_once_on_shutdown() {
    let origin = spawn_origin(None, &[]);
    let mut edge = spawn_edge(&origin.url("http"), &[]);
    let mut stream = TcpStream::connect(edge.addr("http")).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    stream
        .write_all(get("/_gen/10/idle?ttl=60", "").as_bytes())
        .expect("write");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    for _ in 0..100 {
        let head_end = answer.windows(4).position(|w| w == b"\r\n\r\n");
        if head_end.is_some_and(|end| answer.len() >= end + 4 + 10) {
            break;
        }
        let n = stream.read(&mut buf).expect("the answer arrives");
        assert!(n > 0, "closed before the whole answer");
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200 "));
    // Idle on a keep-alive connection, with the header read timeout (10 s)
    // far off: shutdown itself must close it.
    signal(&edge, libc::SIGTERM);
    match stream.read(&mut buf) {
        Ok(0) => {}
        other => panic!("expected the edge to close the idle connection, got {other:?}"),
    }
    let status = edge
        .wait_exit(Duration::from_secs(5))
        .expect("the edge exits once idle connections are closed");
    assert!(status.success(), "exit status {status:?}");
    edge.kill();
}

/// Sends a GET for `path` on a connection with a small, fixed receive
/// buffer, reads nothing for `stall`, then reads what is left until the
/// edge closes; returns the bytes received.
async fn stalled_read(addr: SocketAddr, path: &str, stall: Duration) -> usize {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    // A fixed receive buffer: without it the kernel would grow the window
    // until the whole answer fit in it.
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut stream = socket.connect(addr).await.expect("connect");
    stream
        .write_all(get(path, "").as_bytes())
        .await
        .expect("write");
    tokio::time::sleep(stall).await;
    let mut received = 0;
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..100_000 {
        match tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return received,
            Ok(Ok(n)) => received += n,
            Err(_) => panic!("{path}: the connection neither moved nor closed in 20 s"),
        }
    }
    panic!("{path}: more reads than an answer this size needs");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_after_the_send_timeout() {
    let origin = spawn_origin(None, &[]);
    let (edge, _dir) = spawn_edge_config(&format!(
        "origin = \"{}\"\n[cache]\nmax_object_size = \"32MiB\"\n[limits]\nsend_timeout = \"1s\"\n",
        origin.url("http")
    ));
    // Larger than what the edge's send buffer (4 MiB at most here) and the
    // client's receive buffer hold together.
    const LEN: usize = 12 << 20;
    let stored = format!("/_gen/{LEN}/stored?ttl=600");
    let url = format!("{}{stored}", edge.url("http"));
    let filled = get_ok(&url).await.bytes().await.expect("fill body");
    assert_eq!(filled.len(), LEN);
    let (_, stored_body) = get_until_hit(&client(), &url).await;
    assert_eq!(stored_body.len(), LEN, "the object is stored");
    // A hit (sent from its body file) and a fill (streamed as it arrives)
    // to clients that stop reading: each is cut after the send timeout
    // instead of waiting for them.
    let stall = Duration::from_secs(3);
    let hit = stalled_read(edge.addr("http"), &stored, stall).await;
    assert!(hit < LEN, "the stalled hit was cut: {hit} of {LEN} bytes");
    let fill = format!("/_gen/{LEN}/fill?ttl=600");
    let filled = stalled_read(edge.addr("http"), &fill, stall).await;
    assert!(
        filled < LEN,
        "the stalled fill was cut: {filled} of {LEN} bytes"
    );
    // A reading client still gets the whole object, and the node serves on.
    let resp = client()
        .get(format!("{}{fill}", edge.url("http")))
        .send()
        .await
        .expect("GET after the cut");
    assert_eq!(resp.bytes().await.expect("body").len(), LEN);
}
