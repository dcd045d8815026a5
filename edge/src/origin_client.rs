//! The client side towards the origin: pooled keep-alive connections, DNS
//! through hickory, HTTPS through rustls (web PKI roots plus an optional CA
//! file, SNI from the origin's host name), connect / first-byte / body
//! timeouts, and a failure classification that the partition policy
//! reasons about.

use std::error::Error as StdError;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use edgecache::config::{FailureKind, OriginClientSettings};
use http::{Request, Response, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::EdgeBody;
use crate::resolver::{DnsError, HickoryResolver};

/// Why the origin gave no usable answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("origin {}: {detail}", kind.as_str())]
pub struct OriginError {
    /// The class of failure (what the route policy keys on).
    pub kind: FailureKind,
    /// The status, for `FailureKind::Status`.
    pub status: Option<u16>,
    /// A human-readable cause for logs and error bodies.
    pub detail: String,
    /// The origin was already known DOWN: nothing was sent.
    pub fail_fast: bool,
}

impl OriginError {
    /// A failure of the given kind.
    pub fn new(kind: FailureKind, detail: impl Into<String>) -> OriginError {
        OriginError {
            kind,
            status: None,
            detail: detail.into(),
            fail_fast: false,
        }
    }

    /// Whether a 504 (no answer) rather than a 502 (bad answer) describes it.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self.kind,
            FailureKind::ConnectRefused
                | FailureKind::ConnectTimeout
                | FailureKind::FirstByteTimeout
                | FailureKind::Reset
                | FailureKind::Dns
        )
    }
}

/// The result of reading an origin body under the object size limit.
pub enum BodyRead {
    /// The whole body, within the limit.
    Complete(Bytes),
    /// The body outgrew the limit: what was read so far, and the rest.
    TooLarge(Vec<Bytes>, Incoming),
    /// The body broke off or stalled.
    Failed(OriginError),
}

/// Where the origin is and how to reach it.
#[derive(Clone)]
pub struct OriginClient {
    client: Client<HttpsConnector<HttpConnector<HickoryResolver>>, EdgeBody>,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    settings: OriginClientSettings,
}

impl OriginClient {
    /// A client for the origin at `base` (e.g. `http://127.0.0.5:8080`).
    pub fn new(
        base: &Uri,
        settings: &OriginClientSettings,
        resolver: HickoryResolver,
    ) -> Result<OriginClient, OriginError> {
        let scheme = base.scheme().cloned().unwrap_or(http::uri::Scheme::HTTP);
        let authority = base.authority().cloned().ok_or_else(|| {
            OriginError::new(FailureKind::Dns, format!("origin URL {base} has no host"))
        })?;
        let mut connector = HttpConnector::new_with_resolver(resolver);
        connector.set_connect_timeout(Some(settings.connect_timeout.0));
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls_client_config(settings)?)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(connector);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(settings.pool_idle_timeout.0)
            .pool_max_idle_per_host(settings.pool_max_idle)
            .build(connector);
        Ok(OriginClient {
            client,
            scheme,
            authority,
            settings: settings.clone(),
        })
    }

    /// The origin's authority, for the Host header.
    pub fn authority(&self) -> &http::uri::Authority {
        &self.authority
    }

    /// The timeouts in force.
    pub fn settings(&self) -> &OriginClientSettings {
        &self.settings
    }

    /// The absolute origin URI for a request target.
    pub fn uri_for(&self, path_and_query: &str) -> Result<Uri, OriginError> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|e| OriginError::new(FailureKind::Reset, format!("bad target: {e}")))
    }

    /// Sends a request and waits for the response head, at most the
    /// first-byte timeout.
    pub async fn send(&self, req: Request<EdgeBody>) -> Result<Response<Incoming>, OriginError> {
        let timeout = self.settings.first_byte_timeout.0;
        crate::metrics::origin_request();
        let result = match tokio::time::timeout(timeout, self.client.request(req)).await {
            Err(_) => Err(OriginError::new(
                FailureKind::FirstByteTimeout,
                format!("no response head within {}ms", timeout.as_millis()),
            )),
            Ok(Err(e)) => Err(classify(&e)),
            Ok(Ok(resp)) => Ok(resp),
        };
        if let Err(e) = &result {
            crate::metrics::origin_failure(e.kind);
        }
        result
    }

    /// Reads a body up to `limit` bytes, each chunk within the body timeout.
    pub async fn read_body(&self, mut body: Incoming, limit: usize) -> BodyRead {
        let chunk_timeout = self.settings.body_timeout.0;
        // Stored bodies live long: size the buffer from Content-Length so
        // the store does not keep the slack of a doubling buffer.
        let declared = http_body::Body::size_hint(&body).exact();
        let mut buf = match declared {
            Some(len) if len as usize <= limit => BytesMut::with_capacity(len as usize),
            _ => BytesMut::new(),
        };
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut total = 0usize;
        loop {
            let frame = match tokio::time::timeout(chunk_timeout, body.frame()).await {
                Err(_) => {
                    crate::metrics::origin_failure(FailureKind::TruncatedBody);
                    return BodyRead::Failed(OriginError::new(
                        FailureKind::TruncatedBody,
                        format!("body stalled for {}ms", chunk_timeout.as_millis()),
                    ));
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    crate::metrics::origin_failure(FailureKind::TruncatedBody);
                    return BodyRead::Failed(OriginError::new(
                        FailureKind::TruncatedBody,
                        format!("body broke off after {total} bytes: {}", error_chain(&e)),
                    ));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue; // trailers are not stored
            };
            total += data.len();
            if total > limit {
                if !buf.is_empty() {
                    chunks.push(buf.split().freeze());
                }
                chunks.push(data);
                return BodyRead::TooLarge(chunks, body);
            }
            buf.extend_from_slice(&data);
        }
        if buf.capacity() > buf.len() + buf.len() / 16 + 64 {
            // Unknown length: copy once into an exact-size buffer.
            return BodyRead::Complete(Bytes::copy_from_slice(&buf));
        }
        BodyRead::Complete(buf.freeze())
    }
}

/// The TLS client config for an https origin: TLS 1.3 and 1.2, the web PKI
/// roots plus the certificates of `ca_file`. hyper-rustls sends the origin
/// URL's host name as SNI and checks the certificate against it.
fn tls_client_config(settings: &OriginClientSettings) -> Result<rustls::ClientConfig, OriginError> {
    let tls_error = |detail: String| OriginError::new(FailureKind::Tls, detail);
    let mut roots =
        rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca_file) = &settings.ca_file {
        let certs = crate::tls::read_certs(ca_file).map_err(|e| tls_error(e.to_string()))?;
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| tls_error(format!("{}: {e}", ca_file.display())))?;
        }
    }
    Ok(
        rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| tls_error(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Maps a client error to the failure kind the policy speaks of.
fn classify(e: &hyper_util::client::legacy::Error) -> OriginError {
    let detail = error_chain(e);
    let mut source: Option<&(dyn StdError + 'static)> = e.source();
    while let Some(err) = source {
        if err.downcast_ref::<DnsError>().is_some() {
            return OriginError::new(FailureKind::Dns, detail);
        }
        if is_tls_error(err) {
            return OriginError::new(FailureKind::Tls, detail);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    return OriginError::new(FailureKind::ConnectRefused, detail);
                }
                std::io::ErrorKind::TimedOut => {
                    return OriginError::new(FailureKind::ConnectTimeout, detail);
                }
                _ => {}
            }
        }
        source = err.source();
    }
    if e.is_connect() {
        OriginError::new(FailureKind::ConnectRefused, detail)
    } else {
        OriginError::new(FailureKind::Reset, detail)
    }
}

/// Whether `err` is a rustls error, possibly inside (nested) io::Errors:
/// tokio-rustls and hyper-rustls wrap handshake failures that way, and
/// `io::Error::source()` skips the wrapped error itself.
fn is_tls_error(err: &(dyn StdError + 'static)) -> bool {
    if err.downcast_ref::<rustls::Error>().is_some() {
        return true;
    }
    match err
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        Some(inner) => is_tls_error(inner),
        None => false,
    }
}

/// An error with its causes, on one line.
pub fn error_chain(e: &dyn StdError) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(err) = source {
        let s = err.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = err.source();
    }
    text
}

/// The longest a coalesced waiter waits for the leader's fetch.
pub fn waiter_timeout(settings: &OriginClientSettings) -> Duration {
    settings.first_byte_timeout.0
}
