//! Origin health: consecutive failures mark an origin DOWN, heartbeats
//! confirm it and bring it back UP. While DOWN, requests do not wait for
//! timeouts: the cache answers what it may, the rest fail fast.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use edgecache::config::{FailureKind, HealthSettings};
use http::{Method, Request};
use serde::Serialize;
use tokio::sync::watch;

use crate::body::EdgeBody;
use crate::origin_client::{OriginClient, OriginError};

/// Whether an origin is taking requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OriginState {
    /// Answering.
    Up,
    /// Failing: requests fail fast or are served from the cache.
    Down,
}

#[derive(Debug, Clone, Serialize)]
struct Inner {
    state: OriginState,
    #[serde(with = "httpdate_serde")]
    since: SystemTime,
    consecutive_failures: u32,
    consecutive_successes: u32,
    last_error: Option<String>,
    #[serde(skip)]
    last_kind: Option<FailureKind>,
    transitions: u64,
}

mod httpdate_serde {
    use std::time::SystemTime;

    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&httpdate::fmt_http_date(*t))
    }
}

/// One origin (primary or backup) and its health.
pub struct Upstream {
    /// Display name: the origin URL.
    pub name: String,
    /// `primary` or `backup`.
    pub role: &'static str,
    /// The client for it.
    pub client: OriginClient,
    settings: HealthSettings,
    down: AtomicBool,
    inner: Mutex<Inner>,
}

impl Upstream {
    /// A new upstream, UP until proven otherwise.
    pub fn new(
        name: String,
        role: &'static str,
        client: OriginClient,
        settings: HealthSettings,
    ) -> Upstream {
        Upstream {
            name,
            role,
            client,
            settings,
            down: AtomicBool::new(false),
            inner: Mutex::new(Inner {
                state: OriginState::Up,
                since: SystemTime::now(),
                consecutive_failures: 0,
                consecutive_successes: 0,
                last_error: None,
                last_kind: None,
                transitions: 0,
            }),
        }
    }

    /// Whether it is marked DOWN (a lock-free read for the request path).
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    /// Whether failures have begun (heartbeats then probe it).
    pub fn is_suspect(&self) -> bool {
        self.is_down() || self.lock().consecutive_failures > 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a usable answer from real traffic. Real traffic does not
    /// reach a DOWN origin, so recovery is the heartbeat's job.
    pub fn record_success(&self) {
        let mut inner = self.lock();
        inner.consecutive_failures = 0;
        if inner.state == OriginState::Up {
            inner.consecutive_successes = inner.consecutive_successes.saturating_add(1);
        }
    }

    /// Records a failure; past the threshold the origin goes DOWN.
    pub fn record_failure(&self, err: &OriginError) {
        let mut inner = self.lock();
        inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
        inner.consecutive_successes = 0;
        inner.last_error = Some(err.to_string());
        inner.last_kind = Some(err.kind);
        if inner.state == OriginState::Up
            && inner.consecutive_failures >= self.settings.failure_threshold
        {
            inner.state = OriginState::Down;
            inner.since = SystemTime::now();
            inner.transitions += 1;
            self.down.store(true, Ordering::Release);
            tracing::warn!(
                origin = %self.name,
                failures = inner.consecutive_failures,
                cause = %err,
                "origin marked DOWN"
            );
        }
    }

    /// Records a heartbeat that succeeded; enough of them bring it UP.
    fn record_probe_success(&self) {
        let mut inner = self.lock();
        inner.consecutive_failures = 0;
        inner.consecutive_successes = inner.consecutive_successes.saturating_add(1);
        if inner.state == OriginState::Down
            && inner.consecutive_successes >= self.settings.recovery_threshold
        {
            inner.state = OriginState::Up;
            inner.since = SystemTime::now();
            inner.transitions += 1;
            self.down.store(false, Ordering::Release);
            tracing::info!(origin = %self.name, "origin marked UP: heartbeat succeeded");
        }
    }

    /// The error a fail-fast answer reports while DOWN.
    pub fn down_error(&self) -> OriginError {
        let inner = self.lock();
        let mut err = OriginError::new(
            inner.last_kind.unwrap_or(FailureKind::ConnectRefused),
            format!(
                "origin {} is DOWN since {}: {}",
                self.name,
                httpdate::fmt_http_date(inner.since),
                inner.last_error.as_deref().unwrap_or("unknown")
            ),
        );
        err.fail_fast = true;
        err
    }

    /// State for `/_edge/health`.
    pub fn snapshot(&self) -> serde_json::Value {
        let inner = self.lock().clone();
        serde_json::json!({
            "origin": self.name,
            "role": self.role,
            "state": inner.state,
            "since": httpdate::fmt_http_date(inner.since),
            "consecutive_failures": inner.consecutive_failures,
            "last_error": inner.last_error,
            "transitions": inner.transitions,
        })
    }

    /// Sends a request and records the outcome in the health state.
    pub async fn send(
        &self,
        req: Request<EdgeBody>,
    ) -> Result<http::Response<hyper::body::Incoming>, OriginError> {
        match self.client.send(req).await {
            Ok(resp) => Ok(resp),
            Err(e) => {
                self.record_failure(&e);
                Err(e)
            }
        }
    }

    /// One heartbeat: a GET of the check path; any answer below 500 is life.
    async fn probe(&self) -> Result<(), OriginError> {
        let uri = self.client.uri_for(&self.settings.check_path)?;
        let mut req = Request::new(EdgeBody::Empty);
        *req.method_mut() = Method::GET;
        *req.uri_mut() = uri;
        if let Ok(host) = http::HeaderValue::from_str(self.client.authority().as_str()) {
            req.headers_mut().insert(http::header::HOST, host);
        }
        req.headers_mut().insert(
            http::header::USER_AGENT,
            http::HeaderValue::from_static("edgecache-heartbeat"),
        );
        let resp = self.client.send(req).await?;
        let status = resp.status();
        // Drain the body so the connection can be reused.
        let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
        if status.is_server_error() {
            let mut err =
                OriginError::new(FailureKind::Status, format!("heartbeat answered {status}"));
            err.status = Some(status.as_u16());
            return Err(err);
        }
        Ok(())
    }
}

/// Runs heartbeats for an upstream until shutdown: one probe at a time,
/// every `check_interval`, while it is DOWN or failures have begun (and
/// always, with `check_when_up`).
pub async fn heartbeat(upstream: std::sync::Arc<Upstream>, mut shutdown: watch::Receiver<bool>) {
    let interval = upstream.settings.check_interval.0;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        if !(upstream.is_suspect() || upstream.settings.check_when_up) {
            continue;
        }
        match upstream.probe().await {
            Ok(()) => upstream.record_probe_success(),
            Err(e) => {
                tracing::debug!(origin = %upstream.name, error = %e, "heartbeat failed");
                upstream.record_failure(&e);
            }
        }
    }
}
