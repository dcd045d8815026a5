//! The `edge` command line; every flag has a config-file key.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use edgecache::config::{ConfigError, EdgeConfig};

/// The edgecache edge node: caches an origin's content by the HTTP rules.
#[derive(Debug, Parser)]
#[command(
    name = "edge",
    version,
    after_help = "Examples:\n  edge --origin http://127.0.0.1:8080 --listen 127.0.0.1:8081 --admin-listen 127.0.0.1:9081\n  edge --config edge.toml\n  edge --check-config edge.toml\n  edge --origin https://origin.example --tls-listen 0.0.0.0:8443 --cert cert.pem --key key.pem\n  kill -HUP <pid>   # reload the config file and certificates\n  kill -TERM <pid>  # drain in-flight requests, then exit 0"
)]
pub struct EdgeArgs {
    /// Origin base URL (config: `origin`).
    #[arg(long)]
    pub origin: Option<String>,
    /// Public listener address (config: `listen`).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Admin listener address (config: `admin_listen`).
    #[arg(long)]
    pub admin_listen: Option<SocketAddr>,
    /// Config file (TOML).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Validate a config file and exit.
    #[arg(long, value_name = "FILE")]
    pub check_config: Option<PathBuf>,
    /// Cache capacity, e.g. 256MiB (config: `cache.capacity`).
    #[arg(long)]
    pub capacity: Option<String>,
    /// Purge control listener `HOST:PORT` (config: `control.addr`).
    #[arg(long)]
    pub control: Option<String>,
    /// This edge's id for the control plane (config: `control.id`).
    #[arg(long)]
    pub id: Option<String>,
    /// This edge's region (config: `control.region`).
    #[arg(long)]
    pub region: Option<String>,
    /// HTTPS listener address (config: `tls.listen`).
    #[arg(long, value_name = "ADDR")]
    pub tls_listen: Option<SocketAddr>,
    /// Certificate chain PEM for HTTPS, with --key (config: `tls.certs`;
    /// comes first, so it is the default certificate).
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key PEM for --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Log format: human or json.
    #[arg(long, default_value = "human")]
    pub log_format: String,
    /// The purge log backend (`--purge-backend nats --nats-url ...`).
    #[command(flatten)]
    pub purge_bus: edgecache::purge::nats::PurgeBusArgs,
}

impl EdgeArgs {
    /// The config file (or defaults) with the flags laid over it.
    pub fn resolve(&self) -> Result<EdgeConfig, ConfigError> {
        let (mut config, path) = match &self.config {
            Some(path) => (EdgeConfig::load(path)?, path.clone()),
            None => (EdgeConfig::default(), PathBuf::from("<flags>")),
        };
        if let Some(origin) = &self.origin {
            config.origin = Some(origin.clone());
        }
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(admin) = self.admin_listen {
            config.admin_listen = Some(admin);
        }
        if let Some(capacity) = &self.capacity {
            config.cache.capacity =
                edgecache::config::ByteSize::parse(capacity).map_err(|e| ConfigError::Invalid {
                    path: PathBuf::from("<flags>"),
                    line: 0,
                    key: "capacity".into(),
                    reason: e.to_string(),
                })?;
        }
        if let Some(control) = &self.control {
            config.control.addr = Some(control.clone());
        }
        if let Some(id) = &self.id {
            config.control.id = Some(id.clone());
        }
        if let Some(region) = &self.region {
            config.control.region = Some(region.clone());
        }
        config.purge = self
            .purge_bus
            .apply(config.purge.clone())
            .map_err(|reason| ConfigError::Invalid {
                path: PathBuf::from("<flags>"),
                line: 0,
                key: "purge".into(),
                reason,
            })?;
        if let Some(tls) = self.tls_listen {
            config.tls.listen = Some(tls);
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            let pair = edgecache::config::CertPair {
                cert: cert.clone(),
                key: key.clone(),
            };
            config.tls.certs.insert(0, pair);
        }
        config.validate("", &path)?;
        Ok(config)
    }
}
