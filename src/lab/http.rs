//! A minimal HTTP/1.1 client for the lab's own plumbing: health checks,
//! the control API and origin counters, all on loopback. One request per
//! connection, bounded by a timeout.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Why a lab HTTP request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No answer within the timeout.
    #[error("{method} http://{addr}{path}: no answer within {timeout:?}")]
    Timeout {
        /// Method.
        method: Method,
        /// Server.
        addr: SocketAddr,
        /// Path.
        path: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The connection failed.
    #[error("{method} http://{addr}{path}: {message}")]
    Failed {
        /// Method.
        method: Method,
        /// Server.
        addr: SocketAddr,
        /// Path.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// Sends one request and reads the whole answer.
pub async fn request(
    method: Method,
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(StatusCode, Bytes), HttpError> {
    let exchange = exchange(method.clone(), addr, path);
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(message)) => Err(HttpError::Failed {
            method,
            addr,
            path: path.to_string(),
            message,
        }),
        Err(_) => Err(HttpError::Timeout {
            method,
            addr,
            path: path.to_string(),
            timeout,
        }),
    }
}

/// `GET path`, answering the status and body.
pub async fn get(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(StatusCode, Bytes), HttpError> {
    request(Method::GET, addr, path, timeout).await
}

async fn exchange(
    method: Method,
    addr: SocketAddr,
    path: &str,
) -> Result<(StatusCode, Bytes), String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, addr.to_string())
        .header(CONTENT_LENGTH, "0")
        .body(Full::new(Bytes::new()))
        .map_err(|e| format!("request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok((status, body))
}
