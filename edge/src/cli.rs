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
    after_help = "Examples:\n  edge --origin http://127.0.0.1:8080 --listen 127.0.0.1:8081 --admin-listen 127.0.0.1:9081\n  edge --config edge.toml\n  edge --check-config edge.toml"
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
    /// Log format: human or json.
    #[arg(long, default_value = "human")]
    pub log_format: String,
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
        config.validate("", &path)?;
        Ok(config)
    }
}
