//! One timed request: connect from a client address through the region's
//! link, send a GET, and time the response head (TTFB) and the whole body;
//! then classify the answer by its status and `Cache-Status`.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HOST;
use http::{Method, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpSocket;

/// What kind of answer a request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A fresh hit at the edge.
    Hit,
    /// Fetched from upstream (a miss at the edge).
    Miss,
    /// A stale copy revalidated upstream.
    Revalidated,
    /// A stale copy served because the origin failed (at some tier).
    Stale,
    /// A 5xx answer, or no answer at all.
    Error,
    /// Anything else (passes, uncacheable answers).
    Other,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 6] = [
        Kind::Hit,
        Kind::Miss,
        Kind::Revalidated,
        Kind::Stale,
        Kind::Error,
        Kind::Other,
    ];

    /// The kind's name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Hit => "hit",
            Kind::Miss => "miss",
            Kind::Revalidated => "revalidated",
            Kind::Stale => "stale",
            Kind::Error => "error",
            Kind::Other => "other",
        }
    }
}

/// One measured request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Its kind.
    pub kind: Kind,
    /// Time to the response head (to the failure, for errors).
    pub ttfb: Duration,
    /// Time to the end of the body (to the failure, for errors).
    pub total: Duration,
}

/// Classifies an answer. `Cache-Status` lists one entry per cache, the
/// closest to the client last (RFC 9211): a stale copy served at any tier
/// (`hit; fwd=stale`) makes it `stale`; otherwise the last entry decides.
pub fn classify(status: u16, cache_status: Option<&str>) -> Kind {
    if status >= 500 {
        return Kind::Error;
    }
    let Some(value) = cache_status else {
        return Kind::Other;
    };
    let entries: Vec<Vec<&str>> = value
        .split(',')
        .map(|entry| entry.split(';').skip(1).map(str::trim).collect())
        .collect();
    let has = |params: &[&str], p: &str| params.contains(&p);
    if entries
        .iter()
        .any(|params| has(params, "hit") && has(params, "fwd=stale"))
    {
        return Kind::Stale;
    }
    let Some(last) = entries.last() else {
        return Kind::Other;
    };
    if has(last, "hit") {
        Kind::Hit
    } else if has(last, "fwd=stale") {
        Kind::Revalidated
    } else if last
        .iter()
        .any(|p| matches!(*p, "fwd=miss" | "fwd=uri-miss" | "fwd=vary-miss"))
    {
        Kind::Miss
    } else {
        Kind::Other
    }
}

/// Sends `GET path` with `Host: host` to `link` from `client` (port 0)
/// and times it; never takes longer than `timeout`.
pub async fn timed_get(
    link: SocketAddr,
    client: Ipv4Addr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Sample {
    let start = Instant::now();
    let result = tokio::time::timeout(timeout, exchange(link, client, host, path, start)).await;
    match result {
        Ok(Ok(sample)) => sample,
        Ok(Err(e)) => {
            tracing::debug!(%link, path, error = %e, "probe request failed");
            failed(start.elapsed())
        }
        Err(_) => failed(timeout),
    }
}

fn failed(elapsed: Duration) -> Sample {
    Sample {
        kind: Kind::Error,
        ttfb: elapsed,
        total: elapsed,
    }
}

async fn exchange(
    link: SocketAddr,
    client: Ipv4Addr,
    host: &str,
    path: &str,
    start: Instant,
) -> Result<Sample, String> {
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    socket
        .bind(SocketAddr::from((client, 0)))
        .map_err(|e| format!("bind {client}: {e}"))?;
    let stream = socket
        .connect(link)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(HOST, host)
        .header("user-agent", "edgecache-probe")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let ttfb = start.elapsed();
    let status = response.status().as_u16();
    let cache_status = response
        .headers()
        .get_all("cache-status")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        frame.map_err(|e| format!("body: {e}"))?;
    }
    let total = start.elapsed();
    let cache_status = (!cache_status.is_empty()).then_some(cache_status.as_str());
    Ok(Sample {
        kind: classify(status, cache_status),
        ttfb,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_answers() {
        assert_eq!(classify(200, Some("edge-a; hit; ttl=42")), Kind::Hit);
        assert_eq!(classify(200, Some("edge-a; fwd=miss; stored")), Kind::Miss);
        assert_eq!(
            classify(
                200,
                Some("shield; fwd=uri-miss; stored, edge-b; fwd=miss; stored")
            ),
            Kind::Miss
        );
        assert_eq!(
            classify(
                200,
                Some("edge-a; fwd=stale; fwd-status=304; ttl=0; stored")
            ),
            Kind::Revalidated
        );
        assert_eq!(
            classify(
                200,
                Some(
                    "shield; hit; fwd=stale; ttl=-3; detail=origin-unreachable, edge; fwd=stale; fwd-status=304"
                )
            ),
            Kind::Stale
        );
        assert_eq!(classify(504, Some("edge; fwd=miss")), Kind::Error);
        assert_eq!(classify(200, None), Kind::Other);
        assert_eq!(classify(200, Some("edge; fwd=bypass")), Kind::Other);
    }
}
