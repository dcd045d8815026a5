//! The admin HTTP API of the WAN emulator:
//!
//! - `GET /links`: every link's [`LinkState`], as a JSON array;
//! - `GET /links/<name>`: one link's state;
//! - `PUT /links/<name>` with `{"mode":"blackhole"}`,
//!   `{"mode":"reset-mid-stream","after_bytes":100}` and/or
//!   `{"delay_ms":50,"jitter_ms":5}`: changes the link, answers its new state.
//!
//! Errors are JSON `{"error":"..."}`: 404 for an unknown link or path, 400
//! for a malformed body, 405 for another method.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, warn};

use super::{LinkHandle, MAX_DELAY, Mode};

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;
/// How long open admin connections get to finish after shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves the admin API for `links` on `listener` until `shutdown`
/// completes; open connections then finish their current request.
pub async fn serve_admin(
    listener: TcpListener,
    links: Vec<LinkHandle>,
    shutdown: impl Future<Output = ()>,
) {
    let links: Arc<[LinkHandle]> = links.into();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                tokio::spawn(serve_connection(
                    stream,
                    Arc::clone(&links),
                    stop_rx.clone(),
                ));
            }
            Err(e) => {
                warn!(error = %e, "admin API: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    stop_tx.send_replace(true);
}

async fn serve_connection(
    stream: TcpStream,
    links: Arc<[LinkHandle]>,
    mut stop: watch::Receiver<bool>,
) {
    let service = service_fn(move |req| {
        let links = Arc::clone(&links);
        async move { Ok::<_, Infallible>(route(req, &links).await) }
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let finished = tokio::select! {
        result = conn.as_mut() => Some(result),
        // Drop the watch guard before awaiting again (it is not `Send`).
        _ = stop.wait_for(|s| *s) => None,
    };
    let result = match finished {
        Some(result) => result,
        None => {
            conn.as_mut().graceful_shutdown();
            tokio::time::timeout(DRAIN_TIMEOUT, conn)
                .await
                .unwrap_or(Ok(()))
        }
    };
    if let Err(e) = result {
        debug!(error = %e, "admin API: connection error");
    }
}

/// Answers one request.
async fn route(req: Request<Incoming>, links: &[LinkHandle]) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix("/links") else {
        return error(StatusCode::NOT_FOUND, format!("no such path `{path}`"));
    };
    if rest.is_empty() || rest == "/" {
        if req.method() != Method::GET {
            return not_allowed("GET");
        }
        let states: Vec<_> = links.iter().map(LinkHandle::state).collect();
        return json_response(StatusCode::OK, &json!(states));
    }
    let Some(name) = rest.strip_prefix('/') else {
        return error(StatusCode::NOT_FOUND, format!("no such path `{path}`"));
    };
    let Some(link) = links.iter().find(|l| l.name() == name) else {
        return error(StatusCode::NOT_FOUND, format!("unknown link `{name}`"));
    };
    match *req.method() {
        Method::GET => json_response(StatusCode::OK, &json!(link.state())),
        Method::PUT => {
            let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(body) => body.to_bytes(),
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("cannot read the body (at most {MAX_BODY} bytes): {e}"),
                    );
                }
            };
            match parse_update(&body) {
                Ok(update) => {
                    update.apply(link);
                    json_response(StatusCode::OK, &json!(link.state()))
                }
                Err(message) => error(StatusCode::BAD_REQUEST, message),
            }
        }
        _ => not_allowed("GET, PUT"),
    }
}

/// A change requested by `PUT /links/<name>`.
#[derive(Debug, PartialEq, Eq)]
struct Update {
    mode: Option<Mode>,
    delay: Option<Duration>,
    jitter: Option<Duration>,
}

impl Update {
    fn apply(&self, link: &LinkHandle) {
        if self.delay.is_some() || self.jitter.is_some() {
            let (delay, jitter) = link.delay();
            link.set_delay(self.delay.unwrap_or(delay), self.jitter.unwrap_or(jitter));
        }
        if let Some(mode) = self.mode {
            link.set_mode(mode);
        }
    }
}

const UPDATE_HELP: &str = r#"expected a JSON object such as {"mode":"blackhole"}, {"mode":"reset-mid-stream","after_bytes":100} or {"delay_ms":50,"jitter_ms":5}"#;

/// Parses a `PUT` body; the error is a message for the client.
fn parse_update(body: &[u8]) -> Result<Update, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}; {UPDATE_HELP}"))?;
    let Value::Object(mut fields) = value else {
        return Err(format!("the body is not a JSON object; {UPDATE_HELP}"));
    };
    let delay = take_ms(&mut fields, "delay_ms")?;
    let jitter = take_ms(&mut fields, "jitter_ms")?;
    let mode = match (fields.remove("mode"), fields.remove("after_bytes")) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(r#"`after_bytes` needs "mode":"reset-mid-stream""#.to_string());
        }
        (Some(mode), after_bytes) => {
            let has_after_bytes = after_bytes.is_some();
            let mut object = Map::new();
            object.insert("mode".to_string(), mode);
            if let Some(after_bytes) = after_bytes {
                object.insert("after_bytes".to_string(), after_bytes);
            }
            let mode: Mode = serde_json::from_value(Value::Object(object)).map_err(|e| {
                format!(
                    "invalid mode: {e}; expected up, blackhole (or partitioned), refuse \
                     or reset-mid-stream with after_bytes"
                )
            })?;
            if has_after_bytes && !matches!(mode, Mode::ResetMidStream { .. }) {
                return Err(format!("`after_bytes` does not apply to mode `{mode}`"));
            }
            Some(mode)
        }
    };
    if let Some(unknown) = fields.keys().next() {
        return Err(format!(
            "unknown field `{unknown}`; expected mode, after_bytes, delay_ms, jitter_ms"
        ));
    }
    if mode.is_none() && delay.is_none() && jitter.is_none() {
        return Err(format!("nothing to change; {UPDATE_HELP}"));
    }
    Ok(Update {
        mode,
        delay,
        jitter,
    })
}

/// Removes `key` from `fields` as a duration in milliseconds.
fn take_ms(fields: &mut Map<String, Value>, key: &str) -> Result<Option<Duration>, String> {
    let Some(value) = fields.remove(key) else {
        return Ok(None);
    };
    let max_ms = MAX_DELAY.as_millis();
    match value.as_u64() {
        Some(ms) if u128::from(ms) <= max_ms => Ok(Some(Duration::from_millis(ms))),
        _ => Err(format!(
            "`{key}` must be a whole number of milliseconds from 0 to {max_ms}, not {value}"
        )),
    }
}

fn json_response(status: StatusCode, value: &Value) -> Response<Full<Bytes>> {
    let mut body = value.to_string();
    body.push('\n');
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, message: String) -> Response<Full<Bytes>> {
    json_response(status, &json!({ "error": message }))
}

fn not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed; allowed: {allow}"),
    );
    response
        .headers_mut()
        .insert(ALLOW, http::HeaderValue::from_static(allow));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Update, String> {
        parse_update(body.as_bytes())
    }

    #[test]
    fn parses_modes() {
        let update = parse(r#"{"mode":"blackhole"}"#).unwrap();
        assert_eq!(update.mode, Some(Mode::Blackhole));
        assert_eq!(update.delay, None);
        assert_eq!(
            parse(r#"{"mode":"partitioned"}"#).unwrap().mode,
            Some(Mode::Blackhole)
        );
        assert_eq!(
            parse(r#"{"mode":"reset-mid-stream","after_bytes":9}"#)
                .unwrap()
                .mode,
            Some(Mode::ResetMidStream { after_bytes: 9 })
        );
    }

    #[test]
    fn parses_delays() {
        let update = parse(r#"{"delay_ms":50,"jitter_ms":5,"mode":"up"}"#).unwrap();
        assert_eq!(update.mode, Some(Mode::Up));
        assert_eq!(update.delay, Some(Duration::from_millis(50)));
        assert_eq!(update.jitter, Some(Duration::from_millis(5)));
        let update = parse(r#"{"jitter_ms":0}"#).unwrap();
        assert_eq!((update.delay, update.jitter), (None, Some(Duration::ZERO)));
    }

    #[test]
    fn rejects_bad_bodies_with_a_message() {
        for (body, needle) in [
            ("not json", "invalid JSON"),
            ("[1]", "not a JSON object"),
            ("{}", "nothing to change"),
            (r#"{"mode":"bogus"}"#, "invalid mode"),
            (r#"{"mode":7}"#, "invalid mode"),
            (r#"{"mode":"reset-mid-stream"}"#, "after_bytes"),
            (r#"{"after_bytes":3}"#, "needs"),
            (r#"{"mode":"up","after_bytes":3}"#, "does not apply"),
            (r#"{"delay_ms":-1}"#, "delay_ms"),
            (r#"{"delay_ms":1.5}"#, "delay_ms"),
            (r#"{"delay_ms":100000000}"#, "delay_ms"),
            (r#"{"mode":"up","colour":"red"}"#, "unknown field `colour`"),
        ] {
            let err = parse(body).unwrap_err();
            assert!(err.contains(needle), "{body}: {err}");
        }
    }
}
