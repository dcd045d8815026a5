use std::io::Write;

use anyhow::Context;
use clap::Parser;
use edge::Edge;
use edge::cli::EdgeArgs;
use edgecache::config::EdgeConfig;

/// mimalloc: the hit path allocates a few small buffers per request (header
/// values, the cache key) and the store holds many small objects; mimalloc
/// is faster on both and packs small allocations without per-chunk headers.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    edge::runtime::for_this_process()
        .context("building the runtime")?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let args = EdgeArgs::parse();
    edgecache::logging::init(&args.log_format);
    edge::tls::provider();
    if let Some(path) = &args.check_config {
        EdgeConfig::load(path)?;
        println!("{}: ok", path.display());
        return Ok(());
    }
    edge::metrics::install().context("installing the metrics recorder")?;
    match edge::body_file::raise_descriptor_limit() {
        Ok(limit) => tracing::debug!(?limit, "descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the descriptor limit"),
    }
    let config = args.resolve()?;
    let node = Edge::start(config).await.context("starting the edge")?;
    // Before the listening lines: whoever waits for them may send SIGHUP,
    // SIGTERM or SIGINT.
    let mut hangups = hangups()?;
    let terminated = edgecache::signals::terminated();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening http {}", node.public_addr)?;
        if let Some(tls) = node.tls_addr {
            writeln!(out, "listening https {tls}")?;
        }
        if let Some(admin) = node.admin_addr {
            writeln!(out, "listening admin {admin}")?;
        }
        out.flush()?;
    }
    tokio::pin!(terminated);
    loop {
        tokio::select! {
            _ = &mut terminated => break,
            _ = hangups.recv() => reload(&node, &args),
        }
    }
    tracing::info!("shutting down: draining in-flight requests");
    node.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP: re-reads the config file (flags laid over it, as at start) and
/// the certificates; a refused reload keeps the running config.
fn reload(node: &Edge, args: &EdgeArgs) {
    let result = args
        .resolve()
        .map_err(edge::reload::ReloadError::from)
        .and_then(|config| node.reload(config));
    match result {
        Ok(()) => tracing::info!("config reloaded"),
        Err(e) => {
            let text = edge::reload::config_text(args.config.as_ref());
            edge::reload::log_refused(&e, text.as_deref());
        }
    }
}

#[cfg(unix)]
fn hangups() -> anyhow::Result<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    signal(SignalKind::hangup()).context("listening for SIGHUP")
}

#[cfg(not(unix))]
fn hangups() -> anyhow::Result<NoHangups> {
    Ok(NoHangups)
}

/// Where there is no SIGHUP, reloads never come.
#[cfg(not(unix))]
struct NoHangups;

#[cfg(not(unix))]
impl NoHangups {
    async fn recv(&mut self) -> Option<()> {
        std::future::pending().await
    }
}
