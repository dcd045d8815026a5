//! `edgecache lab`: an origin with a sample site, edges in every region of a
//! topology (tiered behind each region's shield), the emulated WAN links
//! between them and from each region's clients, the steering DNS, and a
//! control API, each node a real process on its own loopback address.
//!
//! `edgecache lab partition|heal|kill|restart|status` drive a running lab,
//! found through `lab.json` (see [`state`]).

mod commands;
pub mod control;
pub mod http;
mod nats;
pub mod nodes;
pub mod plan;
mod process;
mod runner;
mod sample_site;
pub mod shared;
pub mod state;
mod table;

use std::path::PathBuf;

pub use process::{NodeProcess, package_binary, sibling_binary, stop_child};
pub use state::{LabFile, find_lab, random_token};

/// Flags of `edgecache lab`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LabArgs {
    /// Drive a running lab instead of starting one.
    #[command(subcommand)]
    pub action: Option<LabAction>,
    /// How to start the lab.
    #[command(flatten)]
    pub start: StartArgs,
}

impl LabArgs {
    /// `edgecache lab` with every default (what `edgecache` alone runs).
    pub fn defaults() -> LabArgs {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            start: StartArgs,
        }
        let parsed = <Defaults as clap::Parser>::try_parse_from(["lab"]);
        LabArgs {
            action: None,
            start: parsed.unwrap_or_else(|e| e.exit()).start,
        }
    }
}

/// How to start the lab. It runs until Ctrl-C, SIGTERM, SIGHUP, or the exit
/// of the process that started it.
#[derive(Debug, Clone, clap::Args)]
pub struct StartArgs {
    /// Topology file (TOML); the built-in one (us-east, eu-west, ap-south,
    /// two edges each, origin in us-east) when absent.
    #[arg(long, value_name = "FILE")]
    pub topology: Option<PathBuf>,
    /// Port of every node's and link's public listener, each on its own
    /// loopback address (0: ephemeral ports).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Port of every edge's admin listener (0: ephemeral ports).
    #[arg(long, default_value_t = 9080)]
    pub admin_port: u16,
    /// Port of the steering DNS server, UDP and TCP (0: ephemeral).
    #[arg(long, default_value_t = 8053)]
    pub dns_port: u16,
    /// Port of the lab's control API (0: ephemeral).
    #[arg(long, default_value_t = 0)]
    pub control_port: u16,
    /// Port of the origin's purge control listener (the purge API and the
    /// edges' purge stream), on its own loopback address (0: ephemeral;
    /// `edgecache purge` finds it in `lab.json`).
    #[arg(long, default_value_t = 0)]
    pub purge_port: u16,
    /// Scratch directory for the sample site, edge configs and `lab.json`
    /// (default: a new directory under the system temp dir, removed at
    /// exit).
    #[arg(long, value_name = "DIR")]
    pub scratch: Option<PathBuf>,
    /// Start, print the tables, and stop again (a smoke test of the lab).
    #[arg(long)]
    pub check: bool,
    /// Do not write the pointer file other commands use to find the lab
    /// (for tests running beside a developer's lab).
    #[arg(long)]
    pub no_pointer: bool,
    /// The purge log: the origin's built-in file, or a local nats-server
    /// with JetStream (data in the scratch directory).
    #[arg(long, value_enum, default_value_t = crate::purge::nats::PurgeBackend::Builtin)]
    pub purge_bus: crate::purge::nats::PurgeBackend,
}

/// Which running lab a command talks to.
#[derive(Debug, Clone, clap::Args)]
pub struct LabTarget {
    /// The running lab's `lab.json` (default: the lab the pointer file in
    /// the temp dir names).
    #[arg(long, value_name = "LAB_JSON", env = state::LAB_ENV)]
    pub lab: Option<PathBuf>,
}

/// Commands for a running lab.
#[derive(Debug, clap::Subcommand)]
pub enum LabAction {
    /// Partition A from B: blackhole every link between them (A and B are
    /// regions, nodes or `*`), e.g. `lab partition eu-west origin`.
    Partition(PairArgs),
    /// Heal a partition between A and B.
    Heal(PairArgs),
    /// Kill a node (SIGKILL), e.g. `lab kill edge-eu-west-1`.
    Kill(NodeArgs),
    /// Restart a node on its addresses.
    Restart(NodeArgs),
    /// Show every node with its region, role, addresses and state.
    Status(StatusArgs),
}

/// Two sides of a partition.
#[derive(Debug, clap::Args)]
pub struct PairArgs {
    /// A region, a node or `*`.
    pub a: String,
    /// A region, a node or `*`.
    pub b: String,
    /// The lab.
    #[command(flatten)]
    pub target: LabTarget,
}

/// One node.
#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// Node name (see `lab status`).
    pub node: String,
    /// The lab.
    #[command(flatten)]
    pub target: LabTarget,
}

/// Flags of `lab status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// JSON for scripts: every node with its region, role, addresses and
    /// state, and every link.
    #[arg(long)]
    pub json: bool,
    /// The lab.
    #[command(flatten)]
    pub target: LabTarget,
}

/// Runs `edgecache lab ...`.
pub async fn run(args: LabArgs) -> anyhow::Result<()> {
    match args.action {
        None => runner::run(&args.start).await,
        Some(action) => commands::run(action).await,
    }
}
