//! A tiny HTTP/1.1 keep-alive load client: N connections, each sending its
//! share of a fixed number of GET requests back to back, latencies recorded
//! in an HDR histogram (microseconds, send to last body byte).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Largest latency the histograms record: one minute, in microseconds.
const MAX_LATENCY_US: u64 = 60_000_000;

/// Reconnects allowed per connection before it gives up.
const MAX_RECONNECTS: u32 = 20;

/// Decides whether an answer is the expected kind (e.g. a hit).
pub type Check = Arc<dyn Fn(StatusCode, &HeaderMap) -> bool + Send + Sync>;

/// What to send: where, with which Host, which paths (round robin).
#[derive(Clone)]
pub struct Load {
    /// Server address.
    pub addr: SocketAddr,
    /// Host header value.
    pub host: String,
    /// Request targets, used round robin over all connections.
    pub paths: Arc<Vec<String>>,
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// Total requests over all connections.
    pub requests: u64,
    /// Per-request timeout (head and body).
    pub timeout: Duration,
    /// The whole run stops at this deadline even if requests are left.
    pub deadline: Duration,
    /// Which answers count as expected.
    pub check: Check,
}

/// The outcome of a load run.
pub struct LoadResult {
    /// Latencies of completed requests, in microseconds.
    pub hist: Histogram<u64>,
    /// Count per response status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that completed but failed the check.
    pub unexpected: u64,
    /// Requests that failed at the transport level (or timed out).
    pub errors: u64,
    /// An example of a failed check or error, for the report.
    pub first_problem: Option<String>,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
    /// Body bytes received.
    pub body_bytes: u64,
}

impl LoadResult {
    fn empty() -> anyhow::Result<LoadResult> {
        Ok(LoadResult {
            hist: new_histogram()?,
            statuses: BTreeMap::new(),
            unexpected: 0,
            errors: 0,
            first_problem: None,
            elapsed: Duration::ZERO,
            body_bytes: 0,
        })
    }

    fn merge(&mut self, other: LoadResult) -> anyhow::Result<()> {
        self.hist
            .add(&other.hist)
            .map_err(|e| anyhow!("merging histograms: {e:?}"))?;
        for (s, n) in other.statuses {
            *self.statuses.entry(s).or_default() += n;
        }
        self.unexpected += other.unexpected;
        self.errors += other.errors;
        self.body_bytes += other.body_bytes;
        if self.first_problem.is_none() {
            self.first_problem = other.first_problem;
        }
        Ok(())
    }

    /// Completed requests (expected or not).
    pub fn completed(&self) -> u64 {
        self.hist.len()
    }

    /// Completed requests per second of wall-clock time.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.completed() as f64 / secs
        } else {
            0.0
        }
    }
}

/// A histogram of 1 us to one minute with 3 significant digits.
pub fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).map_err(|e| anyhow!("histogram: {e:?}"))
}

/// Runs `load` and merges the connections' results.
pub async fn run(load: &Load) -> anyhow::Result<LoadResult> {
    anyhow::ensure!(!load.paths.is_empty(), "no paths to request");
    let connections = load.connections.clamp(1, 4096);
    let started = Instant::now();
    let deadline = started + load.deadline;
    let mut tasks = Vec::with_capacity(connections);
    for c in 0..connections {
        let share = load.requests / connections as u64
            + u64::from((c as u64) < load.requests % connections as u64);
        let load = load.clone();
        tasks.push(tokio::spawn(async move {
            connection(&load, share, c, connections, deadline).await
        }));
    }
    let mut total = LoadResult::empty()?;
    for t in tasks {
        let part = t.await.context("load connection task")??;
        total.merge(part)?;
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

async fn connect(addr: SocketAddr, timeout: Duration) -> anyhow::Result<SendRequest<Empty<Bytes>>> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .with_context(|| format!("connecting to {addr}: timed out"))?
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .with_context(|| format!("HTTP/1.1 handshake with {addr}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One keep-alive connection sending `count` requests in a row: connection
/// `index` of `stride` takes paths `index`, `index + stride`, ... so that
/// `paths.len()` requests over all connections visit every path once.
async fn connection(
    load: &Load,
    count: u64,
    index: usize,
    stride: usize,
    deadline: Instant,
) -> anyhow::Result<LoadResult> {
    let mut out = LoadResult::empty()?;
    let host = HeaderValue::from_str(&load.host).context("host header")?;
    let mut sender: Option<SendRequest<Empty<Bytes>>> = None;
    let mut reconnects = 0u32;
    for i in 0..count {
        if Instant::now() >= deadline {
            break;
        }
        let s = match sender.as_mut() {
            Some(s) => s,
            None => {
                if reconnects > MAX_RECONNECTS {
                    break;
                }
                reconnects += 1;
                match connect(load.addr, load.timeout).await {
                    Ok(s) => sender.insert(s),
                    Err(e) => {
                        out.errors += 1;
                        out.first_problem.get_or_insert_with(|| format!("{e:#}"));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                }
            }
        };
        let n = index as u64 + i * stride as u64;
        let path = &load.paths[(n % load.paths.len() as u64) as usize];
        let req = Request::get(path.as_str())
            .header(header::HOST, host.clone())
            .body(Empty::<Bytes>::new())
            .context("building a request")?;
        let started = Instant::now();
        match one_request(s, req, load.timeout).await {
            Ok((status, headers, len)) => {
                let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                out.hist.saturating_record(us.clamp(1, MAX_LATENCY_US));
                *out.statuses.entry(status.as_u16()).or_default() += 1;
                out.body_bytes += len;
                if !(load.check)(status, &headers) {
                    out.unexpected += 1;
                    out.first_problem.get_or_insert_with(|| {
                        let cs = headers
                            .get("cache-status")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-");
                        format!("{path}: status {status}, cache-status {cs}")
                    });
                }
            }
            Err(e) => {
                out.errors += 1;
                out.first_problem
                    .get_or_insert_with(|| format!("{path}: {e:#}"));
                sender = None;
            }
        }
    }
    Ok(out)
}

async fn one_request(
    sender: &mut SendRequest<Empty<Bytes>>,
    req: Request<Empty<Bytes>>,
    timeout: Duration,
) -> anyhow::Result<(StatusCode, HeaderMap, u64)> {
    let work = async {
        sender.ready().await.context("connection not ready")?;
        let resp = sender.send_request(req).await.context("sending")?;
        let status = resp.status();
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.context("reading the body")?;
        anyhow::Ok((status, parts.headers, body.to_bytes().len() as u64))
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| anyhow!("no complete answer within {timeout:?}"))?
}

/// One GET, on a new connection; returns status, headers and body.
pub async fn get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> anyhow::Result<(StatusCode, HeaderMap, Bytes)> {
    let work = async {
        let mut sender = connect(addr, timeout).await?;
        let req = Request::get(path)
            .header(header::HOST, host)
            .body(Empty::<Bytes>::new())
            .context("building a request")?;
        let resp = sender.send_request(req).await.context("sending")?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.context("reading the body")?;
        anyhow::Ok((parts.status, parts.headers, body.to_bytes()))
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| anyhow!("GET http://{addr}{path}: no answer within {timeout:?}"))?
}

/// GETs a JSON document.
pub async fn get_json(addr: SocketAddr, path: &str) -> anyhow::Result<serde_json::Value> {
    let (status, _, body) = get(addr, &addr.to_string(), path, Duration::from_secs(5)).await?;
    anyhow::ensure!(status.is_success(), "GET {path} on {addr}: {status}");
    serde_json::from_slice(&body).with_context(|| format!("GET {path} on {addr}: not JSON"))
}

/// Formats microseconds for humans: `85us`, `1.25ms`, `2.10s`.
pub fn fmt_us(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0}us")
    } else if us < 1_000_000.0 {
        format!("{:.2}ms", us / 1000.0)
    } else {
        format!("{:.2}s", us / 1_000_000.0)
    }
}
