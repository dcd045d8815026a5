//! The running lab's control API, on loopback (its address is in
//! `lab.json`), and the client the `edgecache lab ...` subcommands use:
//!
//! - `GET /status`: the lab with live node states and link modes;
//! - `POST /partition?a=A&b=B`, `POST /heal?a=A&b=B`: blackholes (or
//!   restores) every link between A and B (regions, nodes or `*`);
//! - `POST /kill?node=N`, `POST /restart?node=N`.
//!
//! Answers are JSON; errors are `{"error": "..."}` with 400, 404 or 500.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::shared::{ControlError, LabShared};
use super::state::LabFile;
use crate::wan::Mode;

/// How long a control request may take (a restart waits for the node).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(40);

/// Serves the control API until `stop` becomes true.
pub async fn serve(listener: TcpListener, lab: Arc<LabShared>, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "lab control: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let lab = Arc::clone(&lab);
        let service = service_fn(move |req| {
            let lab = Arc::clone(&lab);
            async move { Ok::<_, Infallible>(route(req, &lab).await) }
        });
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "lab control: connection error");
            }
        });
    }
}

/// The value of `name` in a query string (names and values are plain
/// tokens: node, region and link names, or `*`).
fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

async fn route(req: Request<Incoming>, lab: &LabShared) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let query = req.uri().query().unwrap_or("");
    let method = req.method().clone();
    let result: Result<Value, ControlError> = match (&method, path) {
        (&Method::GET, "/status") => serde_json::to_value(lab.snapshot().await)
            .map_err(|e| ControlError::Failed(e.to_string())),
        (&Method::POST, "/partition" | "/heal") => {
            let mode = if path == "/heal" {
                Mode::Up
            } else {
                Mode::Blackhole
            };
            match (param(query, "a"), param(query, "b")) {
                (Some(a), Some(b)) => lab
                    .set_links_between(a, b, mode)
                    .map(|links| json!({ "mode": mode.to_string(), "links": links })),
                _ => Err(ControlError::BadRequest("expected ?a=...&b=...".into())),
            }
        }
        (&Method::POST, "/kill" | "/restart") => match param(query, "node") {
            Some(node) if path == "/kill" => lab.kill(node).await.map(|n| json!(n)),
            Some(node) => lab.restart(node).await.map(|n| json!(n)),
            None => Err(ControlError::BadRequest("expected ?node=...".into())),
        },
        (_, "/status" | "/partition" | "/heal" | "/kill" | "/restart") => Err(
            ControlError::BadRequest(format!("{method} is not allowed on {path}")),
        ),
        _ => Err(ControlError::NotFound(format!("no such path `{path}`"))),
    };
    let (status, body) = match result {
        Ok(value) => (StatusCode::OK, value),
        Err(e) => {
            let status = match e {
                ControlError::NotFound(_) => StatusCode::NOT_FOUND,
                ControlError::BadRequest(_) => StatusCode::BAD_REQUEST,
                ControlError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            (status, json!({ "error": e.to_string() }))
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// A client of a running lab's control API.
#[derive(Debug, Clone)]
pub struct ControlClient {
    addr: SocketAddr,
}

impl ControlClient {
    /// A client for the lab described by `lab`.
    pub fn new(lab: &LabFile) -> ControlClient {
        ControlClient { addr: lab.control }
    }

    async fn call(&self, method: Method, path: &str) -> anyhow::Result<Value> {
        let (status, body) = super::http::request(method, self.addr, path, CONTROL_TIMEOUT)
            .await
            .context("the lab's control API did not answer (is the lab still running?)")?;
        let value: Value = serde_json::from_slice(&body)
            .with_context(|| format!("control API: bad answer to {path}"))?;
        if !status.is_success() {
            let message = value
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("unknown error");
            bail!("{message}");
        }
        Ok(value)
    }

    /// The live state of the lab.
    pub async fn status(&self) -> anyhow::Result<LabFile> {
        let value = self.call(Method::GET, "/status").await?;
        serde_json::from_value(value).context("control API: bad status")
    }

    /// Blackholes every link between `a` and `b`; answers the link names.
    pub async fn partition(&self, a: &str, b: &str) -> anyhow::Result<Vec<String>> {
        self.links_call("/partition", a, b).await
    }

    /// Restores every link between `a` and `b`; answers the link names.
    pub async fn heal(&self, a: &str, b: &str) -> anyhow::Result<Vec<String>> {
        self.links_call("/heal", a, b).await
    }

    async fn links_call(&self, path: &str, a: &str, b: &str) -> anyhow::Result<Vec<String>> {
        check_token(a)?;
        check_token(b)?;
        let value = self
            .call(Method::POST, &format!("{path}?a={a}&b={b}"))
            .await?;
        serde_json::from_value(value["links"].clone()).context("control API: bad link list")
    }

    /// Kills a node.
    pub async fn kill(&self, node: &str) -> anyhow::Result<Value> {
        check_token(node)?;
        self.call(Method::POST, &format!("/kill?node={node}")).await
    }

    /// Restarts a node.
    pub async fn restart(&self, node: &str) -> anyhow::Result<Value> {
        check_token(node)?;
        self.call(Method::POST, &format!("/restart?node={node}"))
            .await
    }
}

/// Node, region and link names (and `*`) go into URLs unescaped.
fn check_token(name: &str) -> anyhow::Result<()> {
    let ok = name == "*"
        || (!name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')));
    if !ok {
        bail!("`{name}` is not a node, region or link name");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params() {
        assert_eq!(param("a=eu-west&b=origin", "b"), Some("origin"));
        assert_eq!(param("a=eu-west", "b"), None);
        assert!(check_token("*").is_ok());
        assert!(check_token("a&b=c").is_err());
    }
}
