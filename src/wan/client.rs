//! A client for the admin HTTP API, so tests and tools can drive an emulator
//! running in another process.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tracing::debug;

use super::link::valid_link_name;
use super::{LinkState, Mode, WanError};

/// How long one admin request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Drives the admin API of a WAN emulator (see [`serve_admin`](super::serve_admin)).
/// Each call is one HTTP/1.1 request on a fresh connection.
#[derive(Clone, Debug)]
pub struct AdminClient {
    addr: SocketAddr,
}

impl AdminClient {
    /// A client for the admin API listening on `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        AdminClient { addr }
    }

    /// The admin API's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every link's state.
    pub async fn links(&self) -> Result<Vec<LinkState>, WanError> {
        let what = "GET /links".to_string();
        let body = self.request(Method::GET, "/links", None, &what).await?;
        self.decode(&body, &what)
    }

    /// One link's state.
    pub async fn link(&self, link: &str) -> Result<LinkState, WanError> {
        let path = self.link_path(link, "GET")?;
        let what = format!("GET {path}");
        let body = self.request(Method::GET, &path, None, &what).await?;
        self.decode(&body, &what)
    }

    /// Sets the mode of `link`.
    pub async fn set_mode(&self, link: &str, mode: Mode) -> Result<(), WanError> {
        let body = serde_json::to_value(mode).map_err(|e| WanError::AdminProtocol {
            addr: self.addr,
            what: format!("set mode of `{link}`"),
            message: format!("cannot encode mode {mode}: {e}"),
        })?;
        self.put(link, body).await
    }

    /// Sets the one-way delay and jitter of `link` (millisecond precision).
    pub async fn set_delay(
        &self,
        link: &str,
        delay: Duration,
        jitter: Duration,
    ) -> Result<(), WanError> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.put(
            link,
            json!({ "delay_ms": ms(delay), "jitter_ms": ms(jitter) }),
        )
        .await
    }

    async fn put(&self, link: &str, body: Value) -> Result<(), WanError> {
        let path = self.link_path(link, "PUT")?;
        let what = format!("PUT {path}");
        let body = Bytes::from(body.to_string());
        self.request(Method::PUT, &path, Some(body), &what)
            .await
            .map(drop)
    }

    fn link_path(&self, link: &str, method: &str) -> Result<String, WanError> {
        if valid_link_name(link) {
            Ok(format!("/links/{link}"))
        } else {
            Err(WanError::AdminProtocol {
                addr: self.addr,
                what: format!("{method} link `{link}`"),
                message: "invalid link name: expected 1 to 64 characters from [A-Za-z0-9._-]"
                    .to_string(),
            })
        }
    }

    fn decode<T: DeserializeOwned>(&self, body: &[u8], what: &str) -> Result<T, WanError> {
        serde_json::from_slice(body).map_err(|e| WanError::AdminProtocol {
            addr: self.addr,
            what: what.to_string(),
            message: format!("invalid JSON answer: {e}"),
        })
    }

    /// Sends one request; a non-2xx status is an error carrying the
    /// server's message.
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        what: &str,
    ) -> Result<Bytes, WanError> {
        let exchange = self.exchange(method, path, body, what);
        let (status, body) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| WanError::AdminTimeout {
                addr: self.addr,
                what: what.to_string(),
                timeout: REQUEST_TIMEOUT,
            })??;
        if status.is_success() {
            return Ok(body);
        }
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
        Err(WanError::AdminStatus {
            addr: self.addr,
            what: what.to_string(),
            status: status.as_u16(),
            message,
        })
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        what: &str,
    ) -> Result<(StatusCode, Bytes), WanError> {
        let addr = self.addr;
        let http_err = |source| WanError::AdminHttp {
            addr,
            what: what.to_string(),
            source,
        };
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| WanError::AdminConnect { addr, source })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http_err)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(%addr, error = %e, "admin client connection error");
            }
        });
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, addr.to_string())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| WanError::AdminProtocol {
                addr,
                what: what.to_string(),
                message: format!("cannot build the request: {e}"),
            })?;
        let response = sender.send_request(request).await.map_err(http_err)?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(http_err)?
            .to_bytes();
        Ok((status, body))
    }
}
