//! Which purge log backend a node uses, and how to reach NATS: the
//! `[purge]` config section and the matching command-line flags, shared by
//! the origin and the edge.
//!
//! ```toml
//! [purge]
//! backend = "nats"            # or "builtin" (the default)
//!
//! [purge.nats]
//! urls = ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"]
//! stream = "EDGECACHE_PURGE"
//! subject_prefix = "edgecache.purge"
//! # user = "edge", password = "..."  |  token = "..."  |  credentials_file = "edge.creds"
//! # tls = true, ca_file = "ca.pem", client_cert = "c.pem", client_key = "k.pem"
//! replicas = 3                # stream replicas (origin side)
//! max_age = "7d"              # retention (origin side)
//! max_msgs = 100000
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::HumanDuration;

/// Environment variable with the NATS password (overrides the config).
pub const PASSWORD_ENV: &str = "EDGECACHE_NATS_PASSWORD";

/// Environment variable with the NATS token (overrides the config).
pub const TOKEN_ENV: &str = "EDGECACHE_NATS_TOKEN";

/// The purge log backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PurgeBackend {
    /// The origin's own log file, streamed to edges by its control listener.
    #[default]
    Builtin,
    /// A replicated NATS JetStream stream; edges are durable consumers.
    Nats,
}

/// `[purge]`: the backend and its settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PurgeBusSettings {
    /// Which backend.
    pub backend: PurgeBackend,
    /// `[purge.nats]`: used when `backend = "nats"`.
    pub nats: NatsSettings,
}

impl PurgeBusSettings {
    /// The NATS settings when NATS is the backend.
    pub fn nats(&self) -> Option<&NatsSettings> {
        (self.backend == PurgeBackend::Nats).then_some(&self.nats)
    }

    /// Reads the `[purge]` section of a TOML file (other sections are
    /// ignored).
    pub fn load(path: &Path) -> Result<PurgeBusSettings, String> {
        #[derive(Deserialize)]
        struct File {
            #[serde(default)]
            purge: PurgeBusSettings,
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let file: File = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(file.purge)
    }
}

/// `[purge.nats]`: where the stream is and how to reach it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsSettings {
    /// Server URLs (`nats://host:port`, `tls://host:port`); the client
    /// fails over between them.
    pub urls: Vec<String>,
    /// The JetStream stream holding the purge log.
    pub stream: String,
    /// Subjects: `<prefix>.log` (the log), `<prefix>.edges.<edge>`
    /// (heartbeats), `<prefix>.applied.<edge>`, `<prefix>.dryrun.<edge>`.
    pub subject_prefix: String,
    /// User name (with `password`).
    pub user: Option<String>,
    /// Password (`EDGECACHE_NATS_PASSWORD` overrides).
    pub password: Option<String>,
    /// Token (`EDGECACHE_NATS_TOKEN` overrides).
    pub token: Option<String>,
    /// A `.creds` file (JWT and NKey seed).
    pub credentials_file: Option<PathBuf>,
    /// Require TLS.
    pub tls: bool,
    /// CA certificates (PEM) to verify the servers with.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM), with `client_key`.
    pub client_cert: Option<PathBuf>,
    /// Client private key (PEM).
    pub client_key: Option<PathBuf>,
    /// Stream replicas (origin side, when it creates the stream).
    pub replicas: usize,
    /// Retention: records older than this leave the stream (origin side).
    /// Make it at least the longest `max_stale` in use.
    pub max_age: HumanDuration,
    /// Retention: at most this many records (origin side).
    pub max_msgs: i64,
    /// How long one publish waits for the stream's acknowledgement.
    pub publish_timeout: HumanDuration,
    /// Publish attempts at least (same message id, so a retry never
    /// duplicates); retries go on for `publish_timeout` times this in all.
    pub publish_attempts: u32,
    /// How long a delivered record may stay unacknowledged before the
    /// stream delivers it again (edge side, when it creates its consumer).
    pub ack_wait: HumanDuration,
}

impl Default for NatsSettings {
    fn default() -> Self {
        NatsSettings {
            urls: vec!["nats://127.0.0.1:4222".to_string()],
            stream: "EDGECACHE_PURGE".to_string(),
            subject_prefix: "edgecache.purge".to_string(),
            user: None,
            password: None,
            token: None,
            credentials_file: None,
            tls: false,
            ca_file: None,
            client_cert: None,
            client_key: None,
            replicas: 1,
            max_age: HumanDuration(Duration::from_secs(7 * 24 * 3600)),
            max_msgs: 100_000,
            publish_timeout: HumanDuration(Duration::from_secs(2)),
            publish_attempts: 5,
            ack_wait: HumanDuration(Duration::from_secs(5)),
        }
    }
}

impl NatsSettings {
    /// Checks what can be checked without connecting.
    pub fn validate(&self) -> Result<(), String> {
        if self.urls.is_empty() {
            return Err("purge.nats.urls is empty".into());
        }
        let bad_name = |s: &str| s.is_empty() || s.contains(['.', '*', '>', ' ', '/', '\\']);
        if bad_name(&self.stream) {
            return Err(format!(
                "purge.nats.stream {:?} is not a stream name",
                self.stream
            ));
        }
        let bad_prefix = self.subject_prefix.is_empty()
            || self.subject_prefix.contains(['*', '>', ' '])
            || self.subject_prefix.split('.').any(str::is_empty);
        if bad_prefix {
            return Err(format!(
                "purge.nats.subject_prefix {:?} is not a subject prefix",
                self.subject_prefix
            ));
        }
        if self.user.is_some() != self.password.is_some() {
            return Err("purge.nats.user and purge.nats.password go together".into());
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err("purge.nats.client_cert and purge.nats.client_key go together".into());
        }
        if self.replicas == 0 || self.replicas > 5 {
            return Err("purge.nats.replicas must be 1 to 5".into());
        }
        if self.max_msgs < 1 || self.max_age.0.is_zero() {
            return Err("purge.nats.max_msgs and max_age must be positive".into());
        }
        if self.publish_attempts == 0 || self.publish_timeout.0.is_zero() {
            return Err("purge.nats.publish_attempts and publish_timeout must be positive".into());
        }
        Ok(())
    }
}

/// The purge backend flags, flattened into the `origin` and `edge`
/// commands; each overrides its `[purge]` config key.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PurgeBusArgs {
    /// Purge log backend (config: `purge.backend`).
    #[arg(long, value_enum)]
    pub purge_backend: Option<PurgeBackend>,
    /// A TOML file whose `[purge]` section configures the backend (the
    /// origin has no other config file; an edge reads `[purge]` from its
    /// `--config`).
    #[arg(long, value_name = "FILE")]
    pub purge_config: Option<PathBuf>,
    /// NATS server URL; repeat for several (config: `purge.nats.urls`).
    #[arg(long = "nats-url", value_name = "URL")]
    pub nats_urls: Vec<String>,
    /// JetStream stream name (config: `purge.nats.stream`).
    #[arg(long)]
    pub nats_stream: Option<String>,
    /// Subject prefix (config: `purge.nats.subject_prefix`).
    #[arg(long)]
    pub nats_subject_prefix: Option<String>,
    /// NATS user (config: `purge.nats.user`; password from
    /// EDGECACHE_NATS_PASSWORD or the config).
    #[arg(long)]
    pub nats_user: Option<String>,
    /// NATS credentials file (config: `purge.nats.credentials_file`).
    #[arg(long, value_name = "FILE")]
    pub nats_creds: Option<PathBuf>,
    /// Require TLS to NATS (config: `purge.nats.tls`).
    #[arg(long)]
    pub nats_tls: bool,
    /// CA file for NATS TLS (config: `purge.nats.ca_file`).
    #[arg(long, value_name = "FILE")]
    pub nats_ca_file: Option<PathBuf>,
    /// Stream replicas (config: `purge.nats.replicas`).
    #[arg(long)]
    pub nats_replicas: Option<usize>,
    /// Stream retention by age, e.g. 7d (config: `purge.nats.max_age`).
    #[arg(long)]
    pub nats_max_age: Option<String>,
    /// Stream retention by count (config: `purge.nats.max_msgs`).
    #[arg(long)]
    pub nats_max_msgs: Option<i64>,
    /// Publish acknowledgement timeout, e.g. 2s (config:
    /// `purge.nats.publish_timeout`).
    #[arg(long)]
    pub nats_publish_timeout: Option<String>,
    /// Consumer ack wait, e.g. 5s (config: `purge.nats.ack_wait`).
    #[arg(long)]
    pub nats_ack_wait: Option<String>,
}

impl PurgeBusArgs {
    /// Lays the flags (and the secrets from the environment) over `base`,
    /// then validates the result when NATS is the backend.
    pub fn apply(&self, base: PurgeBusSettings) -> Result<PurgeBusSettings, String> {
        let mut settings = match &self.purge_config {
            Some(path) => PurgeBusSettings::load(path)?,
            None => base,
        };
        let duration = |flag: &str, text: &str| {
            HumanDuration::parse(text).map_err(|e| format!("--{flag}: {e}"))
        };
        if let Some(backend) = self.purge_backend {
            settings.backend = backend;
        }
        let nats = &mut settings.nats;
        if !self.nats_urls.is_empty() {
            nats.urls.clone_from(&self.nats_urls);
        }
        if let Some(stream) = &self.nats_stream {
            nats.stream.clone_from(stream);
        }
        if let Some(prefix) = &self.nats_subject_prefix {
            nats.subject_prefix.clone_from(prefix);
        }
        if let Some(user) = &self.nats_user {
            nats.user = Some(user.clone());
        }
        if let Some(creds) = &self.nats_creds {
            nats.credentials_file = Some(creds.clone());
        }
        nats.tls |= self.nats_tls;
        if let Some(ca) = &self.nats_ca_file {
            nats.ca_file = Some(ca.clone());
        }
        if let Some(replicas) = self.nats_replicas {
            nats.replicas = replicas;
        }
        if let Some(age) = &self.nats_max_age {
            nats.max_age = duration("nats-max-age", age)?;
        }
        if let Some(msgs) = self.nats_max_msgs {
            nats.max_msgs = msgs;
        }
        if let Some(t) = &self.nats_publish_timeout {
            nats.publish_timeout = duration("nats-publish-timeout", t)?;
        }
        if let Some(t) = &self.nats_ack_wait {
            nats.ack_wait = duration("nats-ack-wait", t)?;
        }
        if let Ok(password) = std::env::var(PASSWORD_ENV) {
            nats.password = Some(password);
        }
        if let Ok(token) = std::env::var(TOKEN_ENV) {
            nats.token = Some(token);
        }
        if let Some(nats) = settings.nats() {
            nats.validate()?;
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_section_and_flags() {
        let text = r#"
backend = "nats"
[nats]
urls = ["nats://127.0.0.1:1"]
stream = "S"
max_age = "1h"
"#;
        let s: PurgeBusSettings = toml::from_str(text).expect("parse");
        assert_eq!(s.backend, PurgeBackend::Nats);
        assert_eq!(s.nats.max_age.0, Duration::from_secs(3600));
        let args = PurgeBusArgs {
            nats_stream: Some("T".into()),
            nats_replicas: Some(3),
            ..PurgeBusArgs::default()
        };
        let s = args.apply(s).expect("apply");
        assert_eq!((s.nats.stream.as_str(), s.nats.replicas), ("T", 3));
        assert!(PurgeBusSettings::default().nats().is_none());
        let bad = PurgeBusArgs {
            nats_stream: Some("a.b".into()),
            purge_backend: Some(PurgeBackend::Nats),
            ..PurgeBusArgs::default()
        };
        assert!(bad.apply(PurgeBusSettings::default()).is_err());
    }
}
