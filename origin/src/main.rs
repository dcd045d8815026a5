//! The `origin` command: serves a content directory for edgecache edges.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use edgecache::purge::nats::{NatsLog, PurgeBusArgs};
use edgecache::purge::{DEFAULT_MAX_AGE, DEFAULT_MAX_RECORDS, FileLog, FileLogConfig};
use origin::control::{ControlServer, PurgeToken, default_log_path};
use origin::{DEFAULT_CACHE_CONTROL, Origin, OriginConfig};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

/// How often the purge log's compaction policy is checked while idle.
const PURGE_LOG_MAINTENANCE: Duration = Duration::from_secs(600);

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// The edgecache origin: static files with real validators, generated
/// content and test hooks.
#[derive(Debug, Parser)]
#[command(name = "origin", version, about)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Directory of static files to serve.
    #[arg(long)]
    root: Option<PathBuf>,
    /// Cache-Control when no `_headers` rule sets one.
    #[arg(long, default_value = DEFAULT_CACHE_CONTROL)]
    default_cache_control: String,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    /// Address of the control listener (edges' purge stream and the purge
    /// API, on one port); no control listener when absent.
    #[arg(long)]
    control_listen: Option<String>,
    /// The purge log file [default: <temp dir>/edgecache-purge-<control
    /// port>.log, which only survives restarts on a fixed port].
    #[arg(long)]
    purge_log: Option<PathBuf>,
    /// File holding the purge API's bearer token (else the
    /// EDGECACHE_PURGE_TOKEN environment variable; with neither, the purge
    /// API answers 503).
    #[arg(long)]
    purge_token_file: Option<PathBuf>,
    /// Purge log compaction: keep at most this many records.
    #[arg(long, default_value_t = DEFAULT_MAX_RECORDS)]
    purge_log_max_records: usize,
    /// Purge log compaction: keep no record older than this many seconds.
    #[arg(long, default_value_t = DEFAULT_MAX_AGE.as_secs())]
    purge_log_max_age_secs: u64,
    /// The purge log backend: built-in file (default) or NATS JetStream
    /// (`--purge-backend nats --nats-url ... --nats-stream ...`).
    #[command(flatten)]
    purge_bus: PurgeBusArgs,
}

/// Binds the control listener and opens its purge log.
async fn control(
    args: &Args,
) -> anyhow::Result<Option<(tokio::net::TcpListener, ControlServer, Option<FileLog>)>> {
    let Some(addr) = &args.control_listen else {
        if args.purge_log.is_some() || args.purge_token_file.is_some() {
            tracing::warn!("--purge-log and --purge-token-file need --control-listen");
        }
        return Ok(None);
    };
    let token = PurgeToken::load(args.purge_token_file.as_deref())?;
    if token.is_none() {
        tracing::warn!("no purge token configured: the purge API answers 503");
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let port = listener.local_addr().context("control address")?.port();
    let bus = args
        .purge_bus
        .apply(Default::default())
        .map_err(|e| anyhow::anyhow!("purge backend: {e}"))?;
    if let Some(nats) = bus.nats() {
        let log = NatsLog::connect(nats)
            .await
            .context("cannot open the purge log on NATS")?;
        let server = ControlServer::new(Arc::new(log.clone()), token);
        let _follower = server.follow_edges(Arc::new(log));
        return Ok(Some((listener, server, None)));
    }
    let path = args
        .purge_log
        .clone()
        .unwrap_or_else(|| default_log_path(port));
    let config = FileLogConfig {
        max_records: args.purge_log_max_records,
        max_age: Duration::from_secs(args.purge_log_max_age_secs),
        ..FileLogConfig::default()
    };
    let open_path = path.clone();
    let log = tokio::task::spawn_blocking(move || FileLog::open_with(open_path, config))
        .await
        .context("purge log open task")?
        .with_context(|| format!("cannot open the purge log {}", path.display()))?;
    let server = ControlServer::new(Arc::new(log.clone()), token);
    Ok(Some((listener, server, Some(log))))
}

/// Applies the purge log's compaction policy now and then.
async fn maintain(log: FileLog) {
    loop {
        tokio::time::sleep(PURGE_LOG_MAINTENANCE).await;
        let log = log.clone();
        match tokio::task::spawn_blocking(move || log.maintain()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "purge log maintenance failed"),
            Err(e) => tracing::warn!(error = %e, "purge log maintenance task failed"),
        }
    }
}

/// Completes once `rx` carries `true` (or its sender is gone).
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.log_format);
    let origin = Origin::new(OriginConfig {
        root: args.root.clone(),
        default_cache_control: args.default_cache_control.clone(),
    })?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr().context("listener address")?;
    let control = control(&args).await?;
    // Before the listening lines: whoever waits for them may stop the origin.
    let terminated = edgecache::signals::terminated();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening http {addr}").context("write to stdout")?;
        if let Some((control, _, _)) = &control {
            let control = control.local_addr().context("control address")?;
            writeln!(out, "listening control {control}").context("write to stdout")?;
        }
        out.flush().context("flush stdout")?;
    }
    tracing::info!(%addr, "origin listening");
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        terminated.await;
        tracing::info!("shutdown requested");
        let _ = stop_tx.send(true);
    });
    let control = async {
        if let Some((listener, server, log)) = control {
            let maintenance = log.map(|log| tokio::spawn(maintain(log)));
            server.serve(listener, stopped(stop_rx.clone())).await;
            if let Some(maintenance) = maintenance {
                maintenance.abort();
            }
        }
    };
    tokio::join!(origin.serve(listener, stopped(stop_rx.clone())), control);
    Ok(())
}
