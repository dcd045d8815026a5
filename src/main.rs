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
    /// Start an origin and edges in three regions on loopback.
    Lab(edgecache::lab::LabArgs),
    /// Run WAN emulator links (TCP proxies with delay and faults).
    Wan(edgecache::wan::WanArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    edgecache::logging::init(&cli.log_format);
    match cli.command {
        Some(Command::Lab(args)) => edgecache::lab::run(args).await,
        Some(Command::Wan(args)) => edgecache::wan::run(args).await,
        None => {
            let args = edgecache::lab::LabArgs {
                port: 8080,
                admin_port: 9080,
                scratch: None,
                check: false,
            };
            edgecache::lab::run(args).await
        }
    }
}
