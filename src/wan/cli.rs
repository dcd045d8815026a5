//! `edgecache wan`: runs links and their admin API as a process.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::TcpListener;

use super::link::valid_link_name;
use super::{Link, LinkConfig, LinkHandle, Mode, WanError, serve_admin};

/// Arguments of `edgecache wan`.
#[derive(clap::Args, Debug)]
pub struct WanArgs {
    /// A link to emulate, `NAME=LISTEN->UPSTREAM` (repeatable), e.g.
    /// `origin=127.0.0.9:0->127.0.0.5:8080`. LISTEN must be a loopback
    /// address; port 0 picks a free port.
    #[arg(long = "link", value_name = "NAME=LISTEN->UPSTREAM", required = true)]
    pub links: Vec<LinkSpec>,
    /// One-way delay of every link, in each direction, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub delay_ms: u64,
    /// Random extra delay of every link, from 0 to this, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub jitter_ms: u64,
    /// Initial mode of every link: up, blackhole (or partitioned), refuse,
    /// reset-mid-stream:BYTES.
    #[arg(long, value_name = "MODE", default_value = "up")]
    pub mode: Mode,
    /// Address of the admin HTTP API (loopback only; port 0 picks one).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub admin_listen: SocketAddr,
}

/// One `--link NAME=LISTEN->UPSTREAM` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkSpec {
    /// Name of the link.
    pub name: String,
    /// Where the link listens.
    pub listen: SocketAddr,
    /// Where the link forwards to.
    pub upstream: SocketAddr,
}

impl FromStr for LinkSpec {
    type Err = WanError;

    /// Parses `NAME=LISTEN->UPSTREAM`, e.g. `origin=127.0.0.9:0->127.0.0.5:8080`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: String| WanError::InvalidLinkSpec {
            spec: s.to_string(),
            reason,
        };
        let (name, addrs) = s
            .split_once('=')
            .ok_or_else(|| invalid("missing `=` after the name".to_string()))?;
        let name = name.trim();
        if !valid_link_name(name) {
            return Err(invalid(format!(
                "bad name `{name}`: expected 1 to 64 characters from [A-Za-z0-9._-]"
            )));
        }
        if name == "admin" {
            return Err(invalid("the name `admin` is reserved".to_string()));
        }
        let (listen, upstream) = addrs
            .split_once("->")
            .ok_or_else(|| invalid("missing `->` between the addresses".to_string()))?;
        let addr = |what: &str, text: &str| {
            text.trim()
                .parse::<SocketAddr>()
                .map_err(|e| invalid(format!("bad {what} address `{}`: {e}", text.trim())))
        };
        let listen = addr("listen", listen)?;
        let upstream = addr("upstream", upstream)?;
        if !listen.ip().is_loopback() {
            return Err(invalid(format!(
                "listen address {listen} is not a loopback address"
            )));
        }
        Ok(LinkSpec {
            name: name.to_string(),
            listen,
            upstream,
        })
    }
}

impl WanArgs {
    /// The configuration of every link, checked for duplicate names.
    pub fn link_configs(&self) -> anyhow::Result<Vec<LinkConfig>> {
        let mut configs: Vec<LinkConfig> = Vec::with_capacity(self.links.len());
        for spec in &self.links {
            if configs.iter().any(|c| c.name == spec.name) {
                bail!("--link: the name `{}` is used twice", spec.name);
            }
            configs.push(LinkConfig {
                name: spec.name.clone(),
                listen: spec.listen,
                upstream: spec.upstream,
                delay: Duration::from_millis(self.delay_ms),
                jitter: Duration::from_millis(self.jitter_ms),
                mode: self.mode,
            });
        }
        Ok(configs)
    }
}

/// Runs `edgecache wan`: starts the links and the admin API, prints
/// `listening <link-name> <addr>` per link and `listening admin <addr>` to
/// stdout, and runs until SIGINT or SIGTERM.
pub async fn run(args: WanArgs) -> anyhow::Result<()> {
    // Install the handlers before announcing, so a signal sent as soon as
    // the lines are read is caught.
    let stop = StopSignals::install().context("cannot install signal handlers")?;
    run_with(args, std::io::stdout(), stop.wait()).await
}

/// Like [`run`], but announces the listeners on `out` and runs until `stop`
/// completes (for embedding and tests).
pub async fn run_with(
    args: WanArgs,
    mut out: impl Write,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let configs = args.link_configs()?;
    if !args.admin_listen.ip().is_loopback() {
        bail!(
            "--admin-listen {} is not a loopback address",
            args.admin_listen
        );
    }
    let mut links: Vec<LinkHandle> = Vec::with_capacity(configs.len());
    let started = async {
        for config in configs {
            links.push(Link::start(config).await?);
        }
        let admin = TcpListener::bind(args.admin_listen)
            .await
            .with_context(|| format!("admin API: cannot listen on {}", args.admin_listen))?;
        let admin_addr = admin
            .local_addr()
            .context("admin API: cannot read the bound address")?;
        for link in &links {
            writeln!(out, "listening {} {}", link.name(), link.local_addr())?;
        }
        writeln!(out, "listening admin {admin_addr}")?;
        out.flush()?;
        anyhow::Ok(admin)
    }
    .await;
    let admin = match started {
        Ok(admin) => admin,
        Err(e) => {
            links.iter().for_each(LinkHandle::shutdown);
            return Err(e);
        }
    };
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_task = tokio::spawn(serve_admin(admin, links.clone(), async move {
        // An error means the sender is gone: stop as well.
        let _ = admin_stopped.await;
    }));
    stop.await;
    tracing::info!("wan emulator: stopping");
    links.iter().for_each(LinkHandle::shutdown);
    // The receiver is gone only if the admin task already ended.
    let _ = stop_admin.send(());
    admin_task.await.context("admin API task failed")?;
    Ok(())
}

/// SIGINT and SIGTERM, installed up front.
struct StopSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(StopSignals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(StopSignals {})
        }
    }

    async fn wait(mut self) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => {}
                _ = self.int.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_link_specs() {
        let spec: LinkSpec = "origin=127.0.0.9:0->127.0.0.5:8080".parse().unwrap();
        assert_eq!(spec.name, "origin");
        assert_eq!(spec.listen, "127.0.0.9:0".parse().unwrap());
        assert_eq!(spec.upstream, "127.0.0.5:8080".parse().unwrap());
        let spec: LinkSpec = "eu.edge-1 = [::1]:7000 -> 127.0.0.5:80".parse().unwrap();
        assert_eq!(spec.name, "eu.edge-1");
        assert_eq!(spec.listen, "[::1]:7000".parse().unwrap());
    }

    #[test]
    fn rejects_bad_link_specs() {
        for (spec, needle) in [
            ("127.0.0.9:0->127.0.0.5:8080", "missing `=`"),
            ("=127.0.0.9:0->127.0.0.5:8080", "bad name"),
            ("a b=127.0.0.9:0->127.0.0.5:8080", "bad name"),
            ("admin=127.0.0.9:0->127.0.0.5:8080", "reserved"),
            ("o=127.0.0.9:0", "missing `->`"),
            ("o=127.0.0.9->127.0.0.5:8080", "bad listen"),
            ("o=127.0.0.9:0->localhost:80", "bad upstream"),
            ("o=0.0.0.0:0->127.0.0.5:80", "loopback"),
        ] {
            let err = spec.parse::<LinkSpec>().unwrap_err().to_string();
            assert!(err.contains(needle), "{spec}: {err}");
            assert!(err.contains("NAME=LISTEN->UPSTREAM"), "{err}");
        }
    }
}
