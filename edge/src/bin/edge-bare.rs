//! The benchmark's ceiling: a bare hyper 1 + moka server that applies no
//! caching rules at all. It looks up the path, writes the stored status,
//! headers and body, and fetches from the origin on a miss (no coalescing,
//! no freshness, no Vary, no purge). `edgecache bench hits` runs it next
//! to the edge so that the cost of doing the RFC 9111 work shows as a
//! ratio measured in the same run. Not for serving anyone.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use http::{HeaderMap, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use moka::future::Cache;

/// A bare caching server for benchmark baselines.
#[derive(Parser)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The origin, as `http://host:port`.
    #[arg(long)]
    origin: String,
    /// Cache capacity in bytes (bodies plus a flat 256 per entry).
    #[arg(long, default_value_t = 1 << 30)]
    capacity: u64,
}

type Stored = Arc<(StatusCode, HeaderMap, Bytes)>;

#[derive(Clone)]
struct Bare {
    cache: Cache<String, Stored>,
    client: Client<HttpConnector, Full<Bytes>>,
    origin: Arc<str>,
}

/// On the same runtime as the edge (single-threaded when allowed one CPU,
/// as the benchmark pins it), so that the ratio between them is the
/// caching work alone.
fn main() -> anyhow::Result<()> {
    edge::runtime::for_this_process()
        .context("building the runtime")?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let bare = Bare {
        cache: Cache::builder()
            .weigher(|k: &String, v: &Stored| {
                u32::try_from(k.len() + v.2.len() + 256).unwrap_or(u32::MAX)
            })
            .max_capacity(args.capacity)
            .build(),
        client: Client::builder(TokioExecutor::new()).build_http(),
        origin: args.origin.trim_end_matches('/').into(),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    println!("listening http {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let bare = bare.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let bare = bare.clone();
                async move { Ok::<_, Infallible>(bare.answer(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

impl Bare {
    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let key = req
            .uri()
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_string();
        let stored = match self.cache.get(&key).await {
            Some(stored) => stored,
            None => match self.fetch(&key).await {
                Some(stored) => {
                    self.cache.insert(key, stored.clone()).await;
                    stored
                }
                None => {
                    let mut resp = Response::new(Full::new(Bytes::new()));
                    *resp.status_mut() = StatusCode::BAD_GATEWAY;
                    return resp;
                }
            },
        };
        let mut resp = Response::new(Full::new(stored.2.clone()));
        *resp.status_mut() = stored.0;
        *resp.headers_mut() = stored.1.clone();
        resp
    }

    async fn fetch(&self, path_and_query: &str) -> Option<Stored> {
        let uri: Uri = format!("{}{path_and_query}", self.origin).parse().ok()?;
        let resp = self.client.get(uri).await.ok()?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.ok()?.to_bytes();
        let mut headers = parts.headers;
        headers.remove(header::CONNECTION);
        headers.remove(header::TRANSFER_ENCODING);
        Some(Arc::new((parts.status, headers, body)))
    }
}
