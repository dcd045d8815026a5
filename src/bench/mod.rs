//! `edgecache bench`: benchmarks anyone can rerun.
//!
//! - `edgecache bench partition`: fresh-hit, stale-served and error-answer
//!   latency (p50 / p99) in one run, with a WAN link between edge and origin
//!   cut during the run.
//! - `edgecache bench hits`: cache-hit throughput, latency, CPU per request
//!   and memory of edgecache next to nginx (proxy_cache) and Varnish, driven
//!   in turns by wrk with server and load generator on different CPUs.
//! - `edgecache bench coalesce`: a cold key asked for by 1,000 clients at
//!   once: origin requests, and how long after the first answer the last.
//! - `edgecache bench purge`: purge propagation, from the purge request to
//!   every edge applying it (p50 / p99), optionally over WAN-delayed
//!   control links.
//!
//! Figures are only meaningful on a quiet machine.

mod client;
mod coalesce;
mod hits;
mod nats_server;
mod partition;
mod purge;

use std::path::PathBuf;

pub use coalesce::CoalesceArgs;
pub use hits::HitsArgs;
pub use partition::PartitionArgs;
pub use purge::PurgeBenchArgs;

/// Flags of `edgecache bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Which benchmark to run.
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// The benchmarks.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Fresh-hit, stale-served and error-answer latency, in one run, with the
    /// edge partitioned from its origin for the last two.
    Partition(PartitionArgs),
    /// Cache hits per second, latency, CPU per request and memory of
    /// edgecache, nginx and Varnish side by side (wrk, several rounds).
    Hits(HitsArgs),
    /// Purge propagation: from the purge request to every edge applying it,
    /// p50 / p99 over many purges.
    Purge(PurgeBenchArgs),
    /// A cold key asked for by many clients at once: requests reaching the
    /// origin, and the spread of the answers after the origin's.
    Coalesce(CoalesceArgs),
}

/// Runs a benchmark.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Partition(a) => partition::run(a).await,
        BenchCommand::Hits(a) => hits::run(a).await,
        BenchCommand::Purge(a) => purge::run(a).await,
        BenchCommand::Coalesce(a) => coalesce::run(a).await,
    }
}

/// The program and leading arguments that start a node quietly (access logs
/// and per-request warnings off: `RUST_LOG=error`) and, when `cpus` is given, pinned with taskset.
/// `env` and `taskset` exec the node, so the child's pid is the node's.
fn node_command(cpus: Option<&str>) -> (PathBuf, Vec<String>) {
    let mut args = vec!["RUST_LOG=error".to_string()];
    if let Some(cpus) = cpus {
        args.extend(["taskset".to_string(), "-c".to_string(), cpus.to_string()]);
    }
    (PathBuf::from("/usr/bin/env"), args)
}

/// Writes a benchmark's results as pretty JSON to `path` and says so.
fn write_json(path: &std::path::Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::write(path, serde_json::to_string_pretty(value)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Warns when the nodes are unoptimised debug builds.
fn warn_if_debug(node: &std::path::Path) {
    if node.parent().is_some_and(|d| d.ends_with("debug")) {
        println!(
            "warning: {} is a debug build; build with --release for meaningful figures",
            node.display()
        );
    }
}

/// [`node_command`] without CPU pinning.
fn node_env() -> (PathBuf, Vec<String>) {
    node_command(None)
}
