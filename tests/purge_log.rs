//! The origin side of purge: the control listener and its HTTP API, driven
//! by fake edges speaking `edgecache::wire` frames to a real origin process.
//! (The log file itself is tested in purge_file_log.rs.)

mod support;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use edgecache::purge::PurgeSelector;
use edgecache::wire::{ControlFrame, read_frame, write_frame};
use serde_json::{Value, json};
use support::{Proc, TempDir, bin, client, next_ip};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const TOKEN: &str = "purge-log-test-token";

// ------------------------------------------------------------ processes

/// A real origin with a control listener, a purge log and a token file.
fn start_origin(dir: &TempDir, with_token: bool, extra: &[&str]) -> Proc {
    let ip = next_ip();
    let mut args = vec![
        "--listen".to_string(),
        format!("{ip}:0"),
        "--control-listen".into(),
        format!("{ip}:0"),
        "--purge-log".into(),
        dir.path().join("purge.log").display().to_string(),
    ];
    if with_token {
        let token = dir.write("token", format!("{TOKEN}\n"));
        args.push("--purge-token-file".into());
        args.push(token.display().to_string());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    Proc::start(bin("origin"), args, ip, &["http", "control"])
}

async fn call(
    control: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> (u16, Value) {
    let url = format!("http://{control}{path}");
    let mut req = match method {
        "POST" => client().post(url),
        _ => client().get(url),
    };
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.header("content-type", "application/json").body(body);
    }
    let resp = req.send().await.expect("control API answers");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

async fn purge(control: SocketAddr, body: Value) -> Value {
    let (status, answer) = call(
        control,
        "POST",
        "/_purge",
        Some(TOKEN),
        Some(body.to_string()),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    answer
}

async fn head_seq(control: SocketAddr) -> u64 {
    let (status, v) = call(control, "GET", "/_control/health", None, None).await;
    assert_eq!(status, 200, "{v}");
    v["head_seq"].as_u64().expect("head_seq")
}

async fn edges(control: SocketAddr) -> Vec<Value> {
    let (status, v) = call(control, "GET", "/_edges", Some(TOKEN), None).await;
    assert_eq!(status, 200, "{v}");
    v.as_array().expect("an array").clone()
}

/// Polls `/_edges` until `edge`'s `field` is `want` (bounded).
async fn wait_edge(control: SocketAddr, edge: &str, field: &str, want: Value) {
    for _ in 0..100 {
        let all = edges(control).await;
        if all.iter().any(|e| e["id"] == edge && e[field] == want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "edge {edge} never had {field} = {want}: {:?}",
        edges(control).await
    );
}

fn edge_status<'a>(answer: &'a Value, edge: &str) -> &'a Value {
    answer["edges"]
        .as_array()
        .and_then(|all| all.iter().find(|e| e["id"] == edge))
        .unwrap_or_else(|| panic!("no edge {edge} in {answer}"))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A fake edge: sends Hello, then (in the background) acks every Record and
/// ResetCache with `affected`, answers dry runs, heartbeats every second,
/// and reports every frame but heartbeats.
struct FakeEdge {
    welcome: ControlFrame,
    frames: mpsc::UnboundedReceiver<ControlFrame>,
    tasks: Vec<JoinHandle<()>>,
}

impl FakeEdge {
    async fn connect(
        control: SocketAddr,
        id: &str,
        last_applied: u64,
        cache_since_ms: u64,
        ack: Option<u64>,
    ) -> FakeEdge {
        let mut stream = TcpStream::connect(control).await.expect("connect");
        let hello = ControlFrame::Hello {
            edge_id: id.into(),
            region: format!("region-of-{id}"),
            public_addr: format!("{id}.example:80"),
            last_applied,
            cache_since_ms,
        };
        write_frame(&mut stream, &hello).await.expect("send Hello");
        let welcome: ControlFrame =
            tokio::time::timeout(Duration::from_secs(10), read_frame(&mut stream))
                .await
                .expect("Welcome in time")
                .expect("Welcome");
        assert!(
            matches!(welcome, ControlFrame::Welcome { .. }),
            "{welcome:?}"
        );
        let (mut rd, mut wr) = stream.into_split();
        let (report, frames) = mpsc::unbounded_channel();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<ControlFrame>();
        let reader = tokio::spawn(async move {
            while let Ok(frame) = read_frame::<_, ControlFrame>(&mut rd).await {
                let reply = match (&frame, ack) {
                    (ControlFrame::Heartbeat { .. }, _) => continue,
                    (ControlFrame::Record(r), Some(affected)) => Some(ControlFrame::Applied {
                        seq: r.seq,
                        affected,
                    }),
                    (ControlFrame::ResetCache { up_to_seq, .. }, Some(_)) => {
                        Some(ControlFrame::Applied {
                            seq: *up_to_seq,
                            affected: 0,
                        })
                    }
                    (ControlFrame::DryRun { request, .. }, Some(affected)) => {
                        Some(ControlFrame::DryRunResult {
                            request: *request,
                            affected: affected * 10,
                        })
                    }
                    _ => None,
                };
                if let Some(reply) = reply {
                    let _ = out_tx.send(reply);
                }
                if report.send(frame).is_err() {
                    break;
                }
            }
        });
        let writer = tokio::spawn(async move {
            let mut beat = tokio::time::interval(Duration::from_secs(1));
            loop {
                let frame = tokio::select! {
                    f = out_rx.recv() => match f { Some(f) => f, None => break },
                    _ = beat.tick() => ControlFrame::Heartbeat { at_ms: now_ms(), seq: 0 },
                };
                if write_frame(&mut wr, &frame).await.is_err() {
                    break;
                }
            }
        });
        FakeEdge {
            welcome,
            frames,
            tasks: vec![reader, writer],
        }
    }

    /// The next reported frame within `within`.
    async fn next(&mut self, within: Duration) -> Option<ControlFrame> {
        tokio::time::timeout(within, self.frames.recv())
            .await
            .ok()
            .flatten()
    }

    /// Sequence numbers of the next `n` records (panics on anything else).
    async fn records(&mut self, n: usize) -> Vec<u64> {
        let mut out = Vec::new();
        for _ in 0..n {
            match self.next(Duration::from_secs(10)).await {
                Some(ControlFrame::Record(r)) => out.push(r.seq),
                other => panic!("expected a record, got {other:?} after {out:?}"),
            }
        }
        out
    }

    /// Asserts nothing but heartbeats arrives for a while.
    async fn quiet(&mut self) {
        if let Some(frame) = self.next(Duration::from_millis(400)).await {
            panic!("unexpected frame {frame:?}");
        }
    }
}

impl Drop for FakeEdge {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[tokio::test]
async fn purge_api_refuses_bad_requests_and_appends_nothing() {
    let dir = TempDir::new("purgeapi-bad");
    let origin = start_origin(&dir, true, &[]);
    let control = origin.addr("control");
    let good = json!({"urls": ["http://cdn.example/a.css"]}).to_string();

    let (status, _) = call(control, "POST", "/_purge", None, Some(good.clone())).await;
    assert_eq!(status, 401);
    let (status, _) = call(control, "POST", "/_purge", Some("wrong"), Some(good)).await;
    assert_eq!(status, 401);
    let (status, _) = call(control, "GET", "/_edges", None, None).await;
    assert_eq!(status, 401);

    for bad in [
        "{not json",
        r#"{"urls": ["http://cdn.example/a"], "unknown": 1}"#,
        r#"{"all": true}"#,
        r#"{"all": true, "confirm": "yes"}"#,
        r#"{"urls": []}"#,
        r#"{"prefixes": []}"#,
        r#"{"tags": []}"#,
        r#"{}"#,
        r#"{"urls": ["/relative.css"]}"#,
        r#"{"urls": ["http://a/"], "tags": ["t"]}"#,
    ] {
        let (status, answer) = call(
            control,
            "POST",
            "/_purge",
            Some(TOKEN),
            Some(bad.to_string()),
        )
        .await;
        assert_eq!(status, 400, "{bad}: {answer}");
        assert!(answer["error"].is_string(), "{bad}: {answer}");
    }
    assert_eq!(head_seq(control).await, 0, "nothing was appended");

    let (status, _) = call(
        control,
        "GET",
        &format!("/_purge/status/{}", uuid::Uuid::now_v7()),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 404);

    // With no token configured the purge API is off (never a default).
    if std::env::var_os("EDGECACHE_PURGE_TOKEN").is_none() {
        let dir = TempDir::new("purgeapi-notoken");
        let origin = start_origin(&dir, false, &[]);
        let body = json!({"all": true, "confirm": "all"}).to_string();
        let (status, answer) = call(
            origin.addr("control"),
            "POST",
            "/_purge",
            Some(TOKEN),
            Some(body),
        )
        .await;
        assert_eq!(status, 503);
        assert_eq!(answer["error"], "no purge token configured");
        assert_eq!(head_seq(origin.addr("control")).await, 0);
    }
}

#[tokio::test]
async fn edges_apply_purges_in_order_and_catch_up_after_a_disconnect() {
    let dir = TempDir::new("purgeapi-edges");
    let origin = start_origin(&dir, true, &[]);
    let control = origin.addr("control");
    let mut a = FakeEdge::connect(control, "a", 0, 0, Some(3)).await;
    let mut b = FakeEdge::connect(control, "b", 0, 0, Some(1)).await;
    assert!(matches!(
        a.welcome,
        ControlFrame::Welcome {
            head_seq: 0,
            oldest_seq: 1
        }
    ));

    let first = purge(
        control,
        json!({"urls": ["HTTP://CDN.Example:80/a.css"], "soft": false}),
    )
    .await;
    assert_eq!(first["seq"], 1);
    assert_eq!(first["complete"], true, "{first}");
    assert_eq!(edge_status(&first, "a")["status"], "applied");
    assert_eq!(edge_status(&first, "a")["affected"], 3);
    assert_eq!(edge_status(&first, "b")["affected"], 1);
    assert_eq!(edge_status(&first, "b")["region"], "region-of-b");
    purge(
        control,
        json!({"prefixes": ["https://cdn.example:443/img/"]}),
    )
    .await;
    purge(control, json!({"tags": ["t1", "t2"], "soft": true})).await;
    for edge in [&mut a, &mut b] {
        let mut got = Vec::new();
        for _ in 0..3 {
            match edge.next(Duration::from_secs(10)).await {
                Some(ControlFrame::Record(r)) => got.push((r.seq, r.selector, r.soft)),
                other => panic!("expected a record, got {other:?}"),
            }
        }
        assert_eq!(
            got,
            [
                (
                    1,
                    PurgeSelector::Urls(vec!["http://cdn.example/a.css".into()]),
                    false
                ),
                (
                    2,
                    PurgeSelector::Prefixes(vec!["https://cdn.example/img/".into()]),
                    false
                ),
                (3, PurgeSelector::Tags(vec!["t1".into(), "t2".into()]), true),
            ]
        );
    }

    // b goes away: it is reported unreachable, a still applies.
    drop(b);
    wait_edge(control, "b", "connected", json!(false)).await;
    let missed = purge(
        control,
        json!({"urls": ["http://cdn.example/b.css"], "wait_ms": 2000}),
    )
    .await;
    assert_eq!(missed["seq"], 4);
    assert_eq!(edge_status(&missed, "a")["status"], "applied");
    assert_eq!(edge_status(&missed, "b")["status"], "unreachable");
    assert_eq!(edge_status(&missed, "b")["affected"], Value::Null);
    assert_eq!(missed["complete"], false);
    purge(
        control,
        json!({"all": true, "confirm": "all", "wait_ms": 0}),
    )
    .await;
    assert_eq!(a.records(2).await, [4, 5]);

    // b comes back from 3 and gets exactly 4 and 5.
    let mut b = FakeEdge::connect(control, "b", 3, 0, Some(1)).await;
    assert!(matches!(
        b.welcome,
        ControlFrame::Welcome { head_seq: 5, .. }
    ));
    assert_eq!(b.records(2).await, [4, 5]);
    b.quiet().await;
    wait_edge(control, "b", "lag", json!(0)).await;
    let id = missed["id"].as_str().expect("id");
    let (status, view) = call(
        control,
        "GET",
        &format!("/_purge/status/{id}"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(edge_status(&view, "b")["status"], "applied");
    assert_eq!(view["complete"], true);
    let all = edges(control).await;
    assert_eq!(all.len(), 2);
    for e in &all {
        assert_eq!(e["connected"], true, "{e}");
        assert_eq!(e["last_applied"], 5, "{e}");
        assert!(e["last_heartbeat_ms_ago"].as_u64().expect("ms") < 10_000);
    }

    // A dry run asks the edges and appends nothing.
    let dry = purge(control, json!({"tags": ["t9"], "dry_run": true})).await;
    assert_eq!(dry["dry_run"], true);
    assert_eq!(edge_status(&dry, "a")["affected"], 30);
    assert_eq!(edge_status(&dry, "b")["affected"], 10);
    assert_eq!(head_seq(control).await, 5);

    // An edge that does not ack is pending.
    let mut mute = FakeEdge::connect(control, "mute", 5, 0, None).await;
    let pending = purge(control, json!({"tags": ["t3"], "wait_ms": 300})).await;
    assert_eq!(edge_status(&pending, "mute")["status"], "pending");
    assert_eq!(edge_status(&pending, "a")["status"], "applied");
    assert_eq!(pending["complete"], false);
    assert_eq!(mute.records(1).await, [6]);

    // A fresh edge gets only the purges issued since its cache began.
    let mut fresh = FakeEdge::connect(control, "fresh", 0, now_ms() + 1, Some(0)).await;
    fresh.quiet().await;
    let mut cold = FakeEdge::connect(control, "cold", 0, 0, Some(0)).await;
    assert_eq!(cold.records(6).await, [1, 2, 3, 4, 5, 6]);
}

#[tokio::test]
async fn restarted_origin_continues_the_sequence_and_resets_lagging_edges() {
    let dir = TempDir::new("purgeapi-restart");
    let keep = ["--purge-log-max-records", "2"];
    let mut origin = start_origin(&dir, true, &keep);
    for i in 0..3 {
        let answer = purge(origin.addr("control"), json!({"tags": [format!("t{i}")]})).await;
        assert_eq!(answer["seq"], i + 1);
    }
    origin.kill();

    let origin = start_origin(&dir, true, &keep);
    let control = origin.addr("control");
    assert_eq!(head_seq(control).await, 3);
    assert_eq!(purge(control, json!({"tags": ["t3"]})).await["seq"], 4);
    let (_, health) = call(control, "GET", "/_control/health", None, None).await;
    assert_eq!(health["oldest_seq"], 3, "{health}");

    // Behind what the log holds: drop everything.
    let mut behind = FakeEdge::connect(control, "behind", 1, 0, Some(0)).await;
    assert!(matches!(
        behind.welcome,
        ControlFrame::Welcome {
            head_seq: 4,
            oldest_seq: 3
        }
    ));
    match behind.next(Duration::from_secs(10)).await {
        Some(ControlFrame::ResetCache { up_to_seq: 4, .. }) => {}
        other => panic!("expected ResetCache up to 4, got {other:?}"),
    }
    behind.quiet().await;
    wait_edge(control, "behind", "last_applied", json!(4)).await;

    // Just within the log: the missed records.
    let mut close = FakeEdge::connect(control, "close", 2, 0, Some(0)).await;
    assert_eq!(close.records(2).await, [3, 4]);
    // Ahead of the log (it was replaced): drop everything too.
    let mut ahead = FakeEdge::connect(control, "ahead", 9, 0, Some(0)).await;
    assert!(matches!(
        ahead.next(Duration::from_secs(10)).await,
        Some(ControlFrame::ResetCache { up_to_seq: 4, .. })
    ));
}

#[tokio::test]
async fn garbage_on_the_control_port_does_not_crash_the_origin() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = TempDir::new("purgeapi-garbage");
    let origin = start_origin(&dir, true, &[]);
    let control = origin.addr("control");
    let mut edge = FakeEdge::connect(control, "steady", 0, 0, Some(2)).await;

    let attempts: [&[u8]; 5] = [
        b"\x00\xffgarbage\r\n\r\n",
        &[0x01, 0xff, 0xff, 0xff, 0xff],
        &[0x01, 0, 0, 0, 3, 200, 201, 202],
        &[0x02, 0, 0, 0, 1, 0],
        b"\x01",
    ];
    for bytes in attempts {
        let mut stream = TcpStream::connect(control).await.expect("connect");
        stream.write_all(bytes).await.expect("write");
        // The origin closes the connection (after an Error frame or an
        // HTTP 400), within the Hello timeout.
        let mut sink = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut sink)).await;
        assert!(read.is_ok(), "connection for {bytes:?} was not closed");
    }
    // A frame that is valid but not a Hello.
    let mut stream = TcpStream::connect(control).await.expect("connect");
    let beat = ControlFrame::Heartbeat { at_ms: 1, seq: 1 };
    write_frame(&mut stream, &beat).await.expect("write");
    let reply: ControlFrame =
        tokio::time::timeout(Duration::from_secs(10), read_frame(&mut stream))
            .await
            .expect("answer in time")
            .expect("a frame");
    assert!(matches!(reply, ControlFrame::Error { .. }), "{reply:?}");

    assert_eq!(head_seq(control).await, 0);
    let answer = purge(control, json!({"urls": ["http://cdn.example/x"]})).await;
    assert_eq!(edge_status(&answer, "steady")["status"], "applied");
    assert_eq!(edge_status(&answer, "steady")["affected"], 2);
    assert_eq!(edge.records(1).await, [1]);
}
