//! The production surface, end to end on real processes: HTTPS (HTTP/2,
//! SNI, certificate reload), HTTPS to the origin and its failures, SIGHUP
//! config reload, SIGTERM draining, `/metrics`, the JSON access log, and the
//! security limits (421, 431, 414, 413, slowloris, unkeyed headers).

mod support;

#[path = "production/observability.rs"]
mod observability;
#[path = "production/security.rs"]
mod security;
#[path = "production/signals.rs"]
mod signals;
#[path = "production/tls.rs"]
mod tls;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use support::*;

/// A test certificate authority.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("CA key");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA cert"),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Writes `<tag>.pem` and `<tag>.key` for a leaf valid for `names`.
    fn leaf(&self, dir: &TempDir, tag: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let params = CertificateParams::new(names).expect("leaf params");
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf cert");
        let cert_path = dir.write(&format!("{tag}.pem"), cert.pem());
        let key_path = dir.write(&format!("{tag}.key"), key.serialize_pem());
        (cert_path, key_path)
    }
}

/// Starts `edge` with `args`, its stderr (logs) going to `log`.
fn start_edge_logged(
    args: Vec<String>,
    ip: std::net::Ipv4Addr,
    expect: &[&str],
    log: &Path,
) -> Proc {
    let program = bin("edge");
    let stderr = std::fs::File::create(log).expect("create log file");
    let mut child = Command::new(&program)
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .env("RUST_LOG", "info")
        .spawn()
        .expect("spawn edge");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let mut listeners: Vec<(String, SocketAddr)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !expect.iter().all(|n| listeners.iter().any(|(l, _)| l == n)) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            panic!("edge {args:?} did not print {expect:?}; log: {}", read(log));
        };
        let mut parts = line.split_whitespace();
        if let (Some("listening"), Some(name), Some(addr)) =
            (parts.next(), parts.next(), parts.next())
        {
            if let Ok(addr) = addr.parse() {
                listeners.push((name.to_string(), addr));
            }
        }
    }
    Proc {
        child,
        ip,
        listeners,
        program,
        args,
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Edge args for a config file, listeners on a fresh address.
fn config_args(config: &Path, ip: std::net::Ipv4Addr) -> Vec<String> {
    vec![
        "--config".into(),
        config.display().to_string(),
        "--listen".into(),
        format!("{ip}:0"),
        "--admin-listen".into(),
        format!("{ip}:0"),
    ]
}

/// Polls `cond` every 100 ms for at most `secs` seconds.
async fn eventually<F: FnMut() -> bool>(secs: u64, mut cond: F) -> bool {
    for _ in 0..secs * 10 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cond()
}

/// Sends raw bytes, then reads what comes back until EOF or `wait`.
fn raw_exchange(addr: SocketAddr, request: &[u8], wait: Duration) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(wait)).expect("read timeout");
    let _ = stream.write_all(request);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An HTTP/1.1 client bound to one connection, to prove it stays open.
async fn one_connection(
    addr: SocketAddr,
) -> hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    sender
}

async fn get_on(
    sender: &mut hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    path: &str,
) -> (u16, String) {
    use http_body_util::BodyExt;
    sender.ready().await.expect("connection still open");
    let req = http::Request::get(path)
        .header("host", "site.test")
        .body(http_body_util::Empty::new())
        .expect("request");
    let resp = sender
        .send_request(req)
        .await
        .expect("response on the same connection");
    let status = resp.status().as_u16();
    let cs = resp
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let _ = resp.into_body().collect().await;
    (status, cs)
}

/// A tiny origin that records every request head and answers 200 "ok",
/// cacheable for a minute.
struct RecordingOrigin {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

impl RecordingOrigin {
    fn start() -> RecordingOrigin {
        let listener = TcpListener::bind((next_ip(), 0)).expect("bind recording origin");
        let addr = listener.local_addr().expect("addr");
        let heads = Arc::new(Mutex::new(Vec::new()));
        let record = heads.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let record = record.clone();
                std::thread::spawn(move || serve_recorded(stream, &record));
            }
        });
        RecordingOrigin { addr, heads }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

fn serve_recorded(stream: TcpStream, record: &Mutex<Vec<String>>) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line.to_ascii_lowercase());
        }
        if let Ok(mut heads) = record.lock() {
            heads.push(head);
        }
        let resp = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncache-control: max-age=60\r\n\r\nok";
        if writer.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}
