use std::io::Write;

use anyhow::Context;
use clap::Parser;
use edge::Edge;
use edge::cli::EdgeArgs;
use edgecache::config::EdgeConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = EdgeArgs::parse();
    edgecache::logging::init(&args.log_format);
    if let Some(path) = &args.check_config {
        EdgeConfig::load(path)?;
        println!("{}: ok", path.display());
        return Ok(());
    }
    let config = args.resolve()?;
    let node = Edge::start(config).await.context("starting the edge")?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening http {}", node.public_addr)?;
        if let Some(admin) = node.admin_addr {
            writeln!(out, "listening admin {admin}")?;
        }
        out.flush()?;
    }
    edgecache::signals::terminated().await;
    tracing::info!("shutting down");
    node.shutdown().await;
    Ok(())
}
