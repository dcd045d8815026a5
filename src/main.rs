use clap::{Parser, Subcommand};

/// edgecache: a geo-replicated CDN edge cache. With no command, runs the lab.
#[derive(Debug, Parser)]
#[command(name = "edgecache", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Log format: human or json.
    #[arg(long, global = true, default_value = "human")]
    log_format: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the lab (origin, edges in every region, emulated WAN links,
    /// steering DNS) on loopback, or drive a running one.
    Lab(edgecache::lab::LabArgs),
    /// Measure latency from each region to the steered edge (or every edge).
    Probe(edgecache::probe::ProbeArgs),
    /// Run WAN emulator links (TCP proxies with delay and faults).
    Wan(edgecache::wan::WanArgs),
    /// Benchmarks: partition latencies, cache hits next to nginx and Varnish.
    Bench(edgecache::bench::BenchArgs),
    /// Purge content from every edge through the origin's control API.
    Purge(edgecache::purge_cli::PurgeArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    edgecache::logging::init(&cli.log_format);
    match cli.command {
        Some(Command::Lab(args)) => edgecache::lab::run(args).await,
        Some(Command::Wan(args)) => edgecache::wan::run(args).await,
        Some(Command::Bench(args)) => edgecache::bench::run(args).await,
        Some(Command::Purge(args)) => edgecache::purge_cli::run(args).await,
        Some(Command::Probe(args)) => edgecache::probe::run(args).await,
        None => edgecache::lab::run(edgecache::lab::LabArgs::defaults()).await,
    }
}
