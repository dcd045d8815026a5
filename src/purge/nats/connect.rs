//! Connecting to NATS, the subjects the purge log uses, and the stream's
//! configuration.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use super::settings::NatsSettings;
use crate::purge::PurgeLogError;

/// How long connecting may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest sanitised edge token used in subjects and consumer names.
const MAX_TOKEN: usize = 48;

/// A NATS failure as a purge log error (nothing of NATS leaks further).
pub(crate) fn unavailable(what: &str, e: impl std::fmt::Display) -> PurgeLogError {
    PurgeLogError::Unavailable(format!("NATS: {what}: {e}"))
}

/// The subjects under the configured prefix.
#[derive(Debug, Clone)]
pub(crate) struct Subjects {
    prefix: String,
}

impl Subjects {
    pub fn new(settings: &NatsSettings) -> Subjects {
        Subjects {
            prefix: settings.subject_prefix.clone(),
        }
    }

    /// The stream's only subject: purge records.
    pub fn log(&self) -> String {
        format!("{}.log", self.prefix)
    }

    /// One edge's heartbeats.
    pub fn heartbeat(&self, token: &str) -> String {
        format!("{}.edges.{token}", self.prefix)
    }

    /// Every edge's heartbeats.
    pub fn heartbeats(&self) -> String {
        format!("{}.edges.*", self.prefix)
    }

    /// One edge's per-record acknowledgements (with affected counts).
    pub fn applied(&self, token: &str) -> String {
        format!("{}.applied.{token}", self.prefix)
    }

    /// Every edge's per-record acknowledgements.
    pub fn applied_all(&self) -> String {
        format!("{}.applied.*", self.prefix)
    }

    /// Dry-run requests to one edge.
    pub fn dry_run(&self, token: &str) -> String {
        format!("{}.dryrun.{token}", self.prefix)
    }
}

/// An edge id as a subject token and consumer name: `[A-Za-z0-9_-]` kept,
/// anything else replaced by `_`, with a checksum of the id appended when
/// that changed it (so that distinct ids stay distinct).
pub(crate) fn edge_token(id: &str) -> String {
    let clean: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(MAX_TOKEN)
        .collect();
    if clean == id && !clean.is_empty() {
        clean
    } else {
        format!("{clean}-{:08x}", crc32fast::hash(id.as_bytes()))
    }
}

/// Connects with the configured URLs, credentials and TLS. The client
/// reconnects by itself afterwards, for as long as it lives.
pub(crate) async fn connect(
    settings: &NatsSettings,
    name: &str,
) -> Result<async_nats::Client, PurgeLogError> {
    let mut options = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(CONNECT_TIMEOUT)
        .ping_interval(Duration::from_secs(2))
        .max_reconnects(None::<usize>);
    if let Some(path) = &settings.credentials_file {
        options = options
            .credentials_file(path)
            .await
            .map_err(|e| unavailable(&format!("credentials file {}", path.display()), e))?;
    }
    if let (Some(user), Some(password)) = (&settings.user, &settings.password) {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(token) = &settings.token {
        options = options.token(token.clone());
    }
    if settings.tls {
        // The nodes use aws-lc-rs; make it the process default so that the
        // client's TLS config builds whatever else is linked in.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        options = options.require_tls(true);
    }
    if let Some(ca) = &settings.ca_file {
        options = options.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&settings.client_cert, &settings.client_key) {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    options
        .connect(settings.urls.as_slice())
        .await
        .map_err(|e| unavailable(&format!("connect to {}", settings.urls.join(",")), e))
}

/// A JetStream context whose requests (and publish acknowledgements) time
/// out after `timeout`.
pub(crate) fn jetstream(client: async_nats::Client, timeout: Duration) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(timeout)
        .build(client)
}

/// The stream as the origin creates it: one subject, bounded by age and
/// count, de-duplicating by message id, replicated.
pub(crate) fn stream_config(settings: &NatsSettings, subjects: &Subjects) -> stream::Config {
    let max_age = settings.max_age.0;
    stream::Config {
        name: settings.stream.clone(),
        description: Some("edgecache purge log".to_string()),
        subjects: vec![subjects.log()],
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        max_age,
        max_messages: settings.max_msgs,
        storage: stream::StorageType::File,
        num_replicas: settings.replicas,
        duplicate_window: max_age.min(Duration::from_secs(120)),
        ..stream::Config::default()
    }
}

/// Gets the stream, creating it if missing, and brings its retention and
/// replicas to the configured values.
pub(crate) async fn ensure_stream(
    js: &jetstream::Context,
    settings: &NatsSettings,
    subjects: &Subjects,
) -> Result<stream::Stream, PurgeLogError> {
    let wanted = stream_config(settings, subjects);
    match js.get_stream(&settings.stream).await {
        Ok(mut existing) => {
            let info = existing
                .info()
                .await
                .map_err(|e| unavailable("stream info", e))?;
            let have = &info.config;
            let differs = have.max_age != wanted.max_age
                || have.max_messages != wanted.max_messages
                || have.num_replicas != wanted.num_replicas
                || have.subjects != wanted.subjects;
            if differs {
                let mut update = have.clone();
                update.max_age = wanted.max_age;
                update.max_messages = wanted.max_messages;
                update.num_replicas = wanted.num_replicas;
                update.subjects = wanted.subjects.clone();
                update.duplicate_window = wanted.duplicate_window;
                if let Err(e) = js.update_stream(update).await {
                    tracing::warn!(stream = %settings.stream, error = %e,
                        "cannot update the purge stream's retention; keeping it as it is");
                }
            }
            Ok(existing)
        }
        Err(e)
            if matches!(
                e.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(ref js)
                    if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
            ) =>
        {
            js.create_stream(wanted)
                .await
                .map_err(|e| unavailable("create the purge stream", e))
        }
        Err(e) => Err(unavailable("get the purge stream", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_tokens_are_subject_safe_and_distinct() {
        assert_eq!(edge_token("e1"), "e1");
        let a = edge_token("edge@127.0.0.1:80");
        let b = edge_token("edge@127_0_0_1:80");
        assert!(a.starts_with("edge_127_0_0_1_80-"), "{a}");
        assert_ne!(a, b);
        assert!(!edge_token("").is_empty());
        assert!(edge_token(&"x".repeat(200)).len() <= MAX_TOKEN + 9);
    }
}
