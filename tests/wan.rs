//! The WAN emulator end to end: real sockets on 127.0.0.x, an in-test echo
//! server as the upstream, links in every mode, the admin API and its client.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use edgecache::wan::{
    AdminClient, Link, LinkConfig, LinkHandle, LinkSpec, Mode, WanArgs, WanError, run_with,
    serve_admin,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

/// Bound on anything that should happen promptly.
const PATIENCE: Duration = Duration::from_secs(10);
/// How long "nothing arrives" is watched.
const SILENCE: Duration = Duration::from_millis(300);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A fresh address in 127.0.0.200-249, port 0.
fn next_addr() -> SocketAddr {
    static NEXT: AtomicU8 = AtomicU8::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % 50;
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 200 + n)), 0)
}

/// A server running `serve` on every connection; returns its address.
async fn server<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind(next_addr()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    addr
}

async fn echo_server() -> SocketAddr {
    server(|mut stream| async move {
        let (mut r, mut w) = stream.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
    })
    .await
}

/// Sends `len` bytes on every connection, then holds it open.
async fn blast_server(len: usize) -> SocketAddr {
    server(move |mut stream| async move {
        let _ = stream.write_all(&vec![b'x'; len]).await;
        let _ = tokio::io::copy(&mut stream, &mut tokio::io::sink()).await;
    })
    .await
}

async fn start_link(name: &str, upstream: SocketAddr, delay_ms: u64, mode: Mode) -> LinkHandle {
    let (listen, delay, jitter) = (next_addr(), ms(delay_ms), Duration::ZERO);
    let name = name.to_string();
    let cfg = LinkConfig {
        name,
        listen,
        upstream,
        delay,
        jitter,
        mode,
    };
    Link::start(cfg).await.unwrap()
}

async fn connect(addr: SocketAddr) -> TcpStream {
    timeout(PATIENCE, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect")
}

async fn read_n(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    timeout(PATIENCE, stream.read_exact(&mut buf))
        .await
        .expect("data in time")
        .expect("data");
    buf
}

/// Sends `msg` and reads the same number of bytes back.
async fn round_trip(stream: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
    stream.write_all(msg).await.unwrap();
    read_n(stream, msg.len()).await
}

/// Asserts that nothing arrives for a while.
async fn assert_silent(stream: &mut TcpStream) {
    let read = timeout(SILENCE, stream.read(&mut [0u8; 64])).await;
    assert!(read.is_err(), "expected silence, got {read:?}");
}

/// Asserts that the peer resets or closes quickly, without data.
async fn assert_cut(stream: &mut TcpStream) {
    match timeout(PATIENCE, stream.read(&mut [0u8; 64])).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        other => panic!("expected reset or EOF, got {other:?}"),
    }
}

/// Polls `check` every 20 ms for up to 100 tries.
async fn eventually<Fut: Future<Output = bool>>(mut check: impl FnMut() -> Fut) -> bool {
    for _ in 0..100 {
        if check().await {
            return true;
        }
        tokio::time::sleep(ms(20)).await;
    }
    false
}

#[tokio::test]
async fn forwards_when_up_and_counts() {
    let link = start_link("up", echo_server().await, 0, Mode::Up).await;
    let mut stream = connect(link.local_addr()).await;
    assert_eq!(round_trip(&mut stream, b"hello").await, b"hello");
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(round_trip(&mut stream, &big).await, big);
    let stats = link.stats();
    assert_eq!((stats.connections_accepted, stats.connections_open), (1, 1));
    assert_eq!(
        (stats.bytes_to_upstream, stats.bytes_to_client),
        (200_005, 200_005)
    );
    drop(stream); // a client's close ends the connection
    assert!(eventually(|| async { link.stats().connections_open == 0 }).await);
    link.shutdown();
}

#[tokio::test]
async fn delay_applies_in_each_direction() {
    let link = start_link("delayed", echo_server().await, 50, Mode::Up).await;
    let mut stream = connect(link.local_addr()).await;
    for _ in 0..3 {
        let start = Instant::now();
        assert_eq!(round_trip(&mut stream, b"ping").await, b"ping");
        assert!(
            start.elapsed() >= ms(100),
            "round trip {:?}",
            start.elapsed()
        );
    }
    // A new delay applies to the open connection.
    link.set_delay(ms(80), ms(10));
    let start = Instant::now();
    assert_eq!(round_trip(&mut stream, b"pong").await, b"pong");
    assert!(
        start.elapsed() >= ms(160),
        "round trip {:?}",
        start.elapsed()
    );
    link.shutdown();
}

#[tokio::test]
async fn blackhole_holds_and_up_recovers() {
    let link = start_link("hole", echo_server().await, 0, Mode::Blackhole).await;
    let mut held = connect(link.local_addr()).await;
    held.write_all(b"held").await.unwrap();
    assert_silent(&mut held).await;
    link.set_mode(Mode::Up);
    let mut fresh = connect(link.local_addr()).await;
    assert_eq!(round_trip(&mut fresh, b"fresh").await, b"fresh");
    // What the partition held is delivered once it heals.
    assert_eq!(read_n(&mut held, 4).await, b"held");
    link.shutdown();
}

#[tokio::test]
async fn blackhole_stops_an_open_connection() {
    let link = start_link("cut", echo_server().await, 0, Mode::Up).await;
    let mut stream = connect(link.local_addr()).await;
    assert_eq!(round_trip(&mut stream, b"one").await, b"one");
    link.set_mode(Mode::Blackhole);
    stream.write_all(b"two").await.unwrap();
    assert_silent(&mut stream).await;
    link.set_mode(Mode::Up);
    assert_eq!(read_n(&mut stream, 3).await, b"two");
    link.shutdown();
}

#[tokio::test]
async fn refuse_resets_new_and_open_connections() {
    let link = start_link("refuse", echo_server().await, 0, Mode::Up).await;
    let mut open = connect(link.local_addr()).await;
    assert_eq!(round_trip(&mut open, b"hi").await, b"hi");
    link.set_mode(Mode::Refuse);
    assert_cut(&mut open).await;
    // A new connection may be refused outright or reset after the handshake.
    if let Ok(Ok(mut stream)) = timeout(PATIENCE, TcpStream::connect(link.local_addr())).await {
        let _ = stream.write_all(b"hello").await;
        assert_cut(&mut stream).await;
    }
    link.set_mode(Mode::Up);
    let mut stream = connect(link.local_addr()).await;
    assert_eq!(round_trip(&mut stream, b"back").await, b"back");
    link.shutdown();
}

#[tokio::test]
async fn reset_mid_stream_cuts_after_n_bytes() {
    let after_bytes = 1000;
    let upstream = blast_server(100_000).await;
    let link = start_link("rms", upstream, 0, Mode::ResetMidStream { after_bytes }).await;
    let mut stream = connect(link.local_addr()).await;
    let (mut total, mut buf) = (0u64, vec![0u8; 8192]);
    let end = loop {
        match timeout(PATIENCE, stream.read(&mut buf)).await {
            Ok(Ok(0)) => break Ok(()),
            Ok(Ok(n)) => total += n as u64,
            Ok(Err(e)) => break Err(e),
            Err(_) => panic!("no reset after {total} bytes"),
        }
        assert!(total <= after_bytes, "received {total} bytes");
    };
    let err = end.expect_err("a reset, not a clean EOF");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    link.shutdown();
}

#[tokio::test]
async fn shutdown_closes_the_listener() {
    let link = start_link("gone", echo_server().await, 0, Mode::Up).await;
    let mut stream = connect(link.local_addr()).await;
    assert_eq!(round_trip(&mut stream, b"x").await, b"x");
    link.shutdown();
    assert!(link.is_shut_down());
    assert_cut(&mut stream).await;
    let addr = link.local_addr();
    assert!(eventually(|| async move { TcpStream::connect(addr).await.is_err() }).await);
}

/// Starts an admin API for `links`; dropping the sender stops it.
async fn start_admin(links: Vec<LinkHandle>) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind(next_addr()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve_admin(listener, links, async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

#[tokio::test]
async fn admin_api_over_http() {
    let upstream = echo_server().await;
    let a = start_link("a", upstream, 5, Mode::Up).await;
    let b = start_link("b", upstream, 0, Mode::Refuse).await;
    let (admin, _stop) = start_admin(vec![a.clone(), b.clone()]).await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://{admin}{path}");
    let put = |path: &str, body: String| {
        let request = http.put(url(path)).body(body);
        async move {
            let resp = request.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };

    let list: Value = http
        .get(url("/links"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(
        (&list[0]["name"], &list[0]["mode"], &list[0]["delay_ms"]),
        (&json!("a"), &json!("up"), &json!(5))
    );
    assert_eq!(list[0]["listen"], a.local_addr().to_string());
    assert_eq!(list[0]["upstream"], upstream.to_string());
    assert_eq!(list[1]["mode"], "refuse");
    assert!(list[1]["stats"]["connections_accepted"].is_u64());

    let (status, state) = put("/links/a", json!({"mode": "partitioned"}).to_string()).await;
    assert_eq!((status, &state["mode"]), (200, &json!("blackhole")));
    assert_eq!(a.mode(), Mode::Blackhole);

    let body =
        json!({"mode": "reset-mid-stream", "after_bytes": 7, "delay_ms": 30, "jitter_ms": 2});
    let (status, state) = put("/links/a", body.to_string()).await;
    assert_eq!(
        (status, &state["after_bytes"], &state["delay_ms"]),
        (200, &json!(7), &json!(30))
    );
    assert_eq!(a.mode(), Mode::ResetMidStream { after_bytes: 7 });
    assert_eq!(a.delay(), (ms(30), ms(2)));

    let resp = http.get(url("/links/b")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["name"], "b");

    let (status, err) = put("/links/nope", json!({"mode": "up"}).to_string()).await;
    assert_eq!(status, 404);
    assert!(err["error"].as_str().unwrap().contains("nope"), "{err}");
    assert_eq!(http.get(url("/other")).send().await.unwrap().status(), 404);
    assert_eq!(http.get(url("/linksb")).send().await.unwrap().status(), 404);

    for bad in [
        "{not json",
        r#"{"mode":"sideways"}"#,
        r#"{"delay_ms":"fast"}"#,
        "{}",
    ] {
        let (status, err) = put("/links/b", bad.to_string()).await;
        assert_eq!(status, 400, "{bad}");
        assert!(!err["error"].as_str().unwrap().is_empty(), "{bad}: {err}");
    }
    assert_eq!(b.mode(), Mode::Refuse);
    assert_eq!(
        http.delete(url("/links/b")).send().await.unwrap().status(),
        405
    );
    a.shutdown();
    b.shutdown();
}

#[tokio::test]
async fn admin_client_drives_a_link() {
    let link = start_link("origin", echo_server().await, 0, Mode::Up).await;
    let (admin, stop) = start_admin(vec![link.clone()]).await;
    let client = AdminClient::new(admin);

    client.set_mode("origin", Mode::Blackhole).await.unwrap();
    assert_eq!(link.mode(), Mode::Blackhole);
    let mut stream = connect(link.local_addr()).await;
    stream.write_all(b"ping").await.unwrap();
    assert_silent(&mut stream).await;
    client.set_mode("origin", Mode::Up).await.unwrap();
    assert_eq!(read_n(&mut stream, 4).await, b"ping");

    client.set_delay("origin", ms(40), ms(4)).await.unwrap();
    let state = client.link("origin").await.unwrap();
    assert_eq!(
        (state.mode, state.delay_ms, state.jitter_ms),
        (Mode::Up, 40, 4)
    );
    assert_eq!(client.links().await.unwrap(), vec![state]);

    match client.set_mode("missing", Mode::Up).await {
        Err(WanError::AdminStatus {
            status: 404,
            message,
            ..
        }) => {
            assert!(message.contains("missing"), "{message}");
        }
        other => panic!("expected a 404, got {other:?}"),
    }
    assert!(client.set_mode("bad/name", Mode::Up).await.is_err());

    drop(stop); // once stopped, the API no longer answers
    let gone =
        eventually(|| async { matches!(client.links().await, Err(WanError::AdminConnect { .. })) });
    assert!(gone.await, "admin API still answering after shutdown");
    link.shutdown();
}

#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    wan: WanArgs,
}

fn cli(args: &[&str]) -> Result<WanArgs, clap::Error> {
    Cli::try_parse_from(std::iter::once("wan").chain(args.iter().copied())).map(|c| c.wan)
}

#[test]
fn cli_parses_links_and_options() {
    let args = cli(&[
        "--link",
        "origin=127.0.0.9:0->127.0.0.5:8080",
        "--link",
        "shield=127.0.0.10:7000->127.0.0.6:80",
        "--delay-ms",
        "40",
        "--jitter-ms",
        "5",
        "--mode",
        "partitioned",
        "--admin-listen",
        "127.0.0.11:0",
    ])
    .unwrap();
    let origin = LinkSpec {
        name: "origin".into(),
        listen: "127.0.0.9:0".parse().unwrap(),
        upstream: "127.0.0.5:8080".parse().unwrap(),
    };
    assert_eq!(args.links[0], origin);
    assert_eq!(args.links[1].name, "shield");
    assert_eq!(args.mode, Mode::Blackhole);
    assert_eq!(args.admin_listen, "127.0.0.11:0".parse().unwrap());
    let configs = args.link_configs().unwrap();
    assert_eq!((configs[1].delay, configs[1].jitter), (ms(40), ms(5)));

    let defaults = cli(&["--link", "o=127.0.0.9:0->127.0.0.5:1"]).unwrap();
    assert_eq!((defaults.mode, defaults.delay_ms), (Mode::Up, 0));
    assert!(defaults.admin_listen.ip().is_loopback());
    let rms = cli(&[
        "--link",
        "o=127.0.0.9:0->127.0.0.5:1",
        "--mode",
        "reset-mid-stream:64",
    ]);
    assert_eq!(rms.unwrap().mode, Mode::ResetMidStream { after_bytes: 64 });

    let err = cli(&["--link", "origin=127.0.0.9:0"]).unwrap_err();
    assert!(err.to_string().contains("NAME=LISTEN->UPSTREAM"), "{err}");
    assert!(cli(&[]).is_err(), "--link is required");
    assert!(cli(&["--link", "o=127.0.0.9:0->127.0.0.5:1", "--mode", "down"]).is_err());
    let twice = cli(&[
        "--link",
        "o=127.0.0.9:0->127.0.0.5:1",
        "--link",
        "o=127.0.0.10:0->127.0.0.5:1",
    ]);
    assert!(twice.unwrap().link_configs().is_err());
}

/// Collects what `run_with` prints.
struct Lines(tokio::sync::mpsc::UnboundedSender<Vec<u8>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.send(buf.to_vec());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn command_announces_listeners_and_stops() {
    let upstream = echo_server().await;
    let link_arg = format!("origin={}->{upstream}", next_addr());
    let admin_arg = next_addr().to_string();
    let args = cli(&[
        "--link",
        &link_arg,
        "--delay-ms",
        "10",
        "--admin-listen",
        &admin_arg,
    ])
    .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run_with(args, Lines(tx), async move {
        let _ = stopped.await;
    }));
    let mut out = String::new();
    while !out.contains("listening admin ") || !out.ends_with('\n') {
        let chunk = timeout(PATIENCE, rx.recv())
            .await
            .expect("output in time")
            .expect("output");
        out.push_str(&String::from_utf8(chunk).unwrap());
    }
    let addr_of = |name: &str| -> SocketAddr {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("listening {name} ")))
            .unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let (link_addr, admin_addr) = (addr_of("origin"), addr_of("admin"));
    let mut stream = connect(link_addr).await;
    assert_eq!(round_trip(&mut stream, b"via cli").await, b"via cli");
    let client = AdminClient::new(admin_addr);
    assert_eq!(client.link("origin").await.unwrap().delay_ms, 10);
    client.set_mode("origin", Mode::Refuse).await.unwrap();
    assert_cut(&mut stream).await;
    stop.send(()).unwrap();
    timeout(PATIENCE, task)
        .await
        .expect("stops in time")
        .unwrap()
        .unwrap();
}
