//! `edgecache bench purge`: purge propagation, the time from an operator's
//! purge request to every edge applying it.
//!
//! It starts an origin with its purge control listener and N edges that
//! follow it, each edge's control connection running through its own
//! emulated WAN link (`--wan-delay-ms` one way). Then, one after another,
//! it caches an object on every edge and purges it with `POST /_purge`
//! and `wait_ms`: the origin answers once every edge has acknowledged the
//! purge, so the request's round trip is the propagation time (append and
//! fsync to the log, stream to every edge, apply, acknowledge).
//!
//! `--backends builtin,nats` runs the same loop once per purge log backend
//! and prints them side by side. For `nats`, a local `nats-server` with
//! JetStream (data in the scratch directory) carries the log and the edges'
//! acknowledgements; the edges reach it directly, so `--wan-delay-ms`
//! applies to the built-in backend only. Without `nats-server` the `nats`
//! run is skipped with a message.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::{Value, json};

use super::client::{self, fmt_us, new_histogram};
use super::nats_server::{NatsServer, find_nats_server};
use crate::lab::{NodeProcess, random_token, sibling_binary};
use crate::purge::nats::PurgeBackend;
use crate::purge_cli::{TOKEN_ENV, not_applied, post_purge};
use crate::wan::{Link, LinkConfig, LinkHandle, Mode};

/// The Host of the benchmark's objects (and of the purged URLs).
const HOST: &str = "purge.bench";

/// Flags of `edgecache bench purge`.
#[derive(Debug, Clone, clap::Args)]
pub struct PurgeBenchArgs {
    /// Purges measured, one after another.
    #[arg(long, default_value_t = 100)]
    pub purges: u64,
    /// Edges following the control plane.
    #[arg(long, default_value_t = 3)]
    pub edges: usize,
    /// One-way delay of each edge's WAN link to the control listener, in
    /// ms (a purge and its acknowledgement each cross it once).
    #[arg(long, default_value_t = 0)]
    pub wan_delay_ms: u64,
    /// How long the origin waits for the edges per purge (`wait_ms`); a
    /// purge not applied everywhere by then counts as incomplete.
    #[arg(long, default_value_t = 10_000)]
    pub wait_ms: u64,
    /// Purge log backends to measure, one after the other: `builtin`,
    /// `nats` (a local nats-server with JetStream), or `builtin,nats`.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "builtin")]
    pub backends: Vec<PurgeBackend>,
    /// Write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// The report, as written with `--json`: one result per backend run.
#[derive(Debug, Serialize)]
pub struct PurgeBenchReport {
    /// Always `purge`.
    pub bench: &'static str,
    /// Purges sent per backend.
    pub purges: u64,
    /// Edges.
    pub edges: usize,
    /// One-way delay of each edge's control link, ms (builtin only).
    pub wan_delay_ms: u64,
    /// One entry per backend measured, in the order run.
    pub results: Vec<PurgeReport>,
    /// Backends asked for but not measured, with the reason.
    pub skipped: Vec<SkippedBackend>,
    /// CPUs of the machine.
    pub cpus: usize,
    /// Reminder on how to read the figures.
    pub note: &'static str,
}

/// A backend that was not measured.
#[derive(Debug, Serialize)]
pub struct SkippedBackend {
    /// `builtin` or `nats`.
    pub backend: &'static str,
    /// Why.
    pub reason: String,
}

/// The figures of one backend.
#[derive(Debug, Serialize)]
pub struct PurgeReport {
    /// `builtin` or `nats`.
    pub backend: &'static str,
    /// One-way delay on the edges' purge path, ms; `None` for `nats`
    /// (the edges reach the nats-server directly, no emulated link).
    pub wan_delay_ms: Option<u64>,
    /// Purges every edge applied within `wait_ms` (`complete: true`).
    pub complete: u64,
    /// Purges answered with an edge still pending or unreachable.
    pub incomplete: u64,
    /// Purges refused or unanswered (HTTP or transport errors).
    pub errors: u64,
    /// Entries the edges reported removed, over all purges.
    pub entries_removed: u64,
    /// Median propagation time of complete purges, microseconds.
    pub p50_us: u64,
    /// 99th percentile, microseconds.
    pub p99_us: u64,
    /// Largest, microseconds.
    pub max_us: u64,
    /// Mean, microseconds.
    pub mean_us: f64,
    /// The first problem seen, if any.
    pub first_problem: Option<String>,
}

fn backend_name(backend: PurgeBackend) -> &'static str {
    match backend {
        PurgeBackend::Builtin => "builtin",
        PurgeBackend::Nats => "nats",
    }
}

/// Runs the purge propagation benchmark.
pub async fn run(args: PurgeBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=1_000_000).contains(&args.purges),
        "--purges must be 1..=1000000"
    );
    anyhow::ensure!((1..=50).contains(&args.edges), "--edges must be 1..=50");
    anyhow::ensure!(
        args.wan_delay_ms <= 10_000,
        "--wan-delay-ms must be at most 10000"
    );
    anyhow::ensure!(
        (1..=120_000).contains(&args.wait_ms),
        "--wait-ms must be 1..=120000"
    );
    let origin_bin = sibling_binary("origin")?;
    let edge_bin = sibling_binary("edge")?;
    super::warn_if_debug(&edge_bin);
    let scratch =
        std::env::temp_dir().join(format!("edgecache-bench-purge-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let result = run_backends(&args, &origin_bin, &edge_bin, &scratch).await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

async fn run_backends(
    args: &PurgeBenchArgs,
    origin_bin: &Path,
    edge_bin: &Path,
    scratch: &Path,
) -> anyhow::Result<()> {
    let mut backends: Vec<PurgeBackend> = Vec::new();
    for b in &args.backends {
        if !backends.contains(b) {
            backends.push(*b);
        }
    }
    anyhow::ensure!(!backends.is_empty(), "--backends names no backend");
    let mut report = PurgeBenchReport {
        bench: "purge",
        purges: args.purges,
        edges: args.edges,
        wan_delay_ms: args.wan_delay_ms,
        results: Vec::new(),
        skipped: Vec::new(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        note: "client, origin (fsync per purge), edges and nats-server share this \
               machine; take figures on a quiet machine",
    };
    let mut failed: Vec<String> = Vec::new();
    for backend in backends {
        let name = backend_name(backend);
        println!("\n== backend {name} ==");
        let dir = scratch.join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let nats = match backend {
            PurgeBackend::Builtin => None,
            PurgeBackend::Nats => {
                let Some(bin) = find_nats_server() else {
                    let reason = "nats-server not found on PATH \
                                  (Debian: apt-get install nats-server)"
                        .to_string();
                    println!("skipping the nats backend: {reason}");
                    report.skipped.push(SkippedBackend {
                        backend: name,
                        reason,
                    });
                    continue;
                };
                println!(
                    "nats: the edges take purges from the nats-server directly; \
                     --wan-delay-ms ({} ms) applies to the builtin backend only",
                    args.wan_delay_ms
                );
                match NatsServer::start(&bin, &dir).await {
                    Ok(server) => Some(server),
                    Err(e) => {
                        println!("nats backend failed: {e:#}");
                        failed.push(format!("{name}: {e:#}"));
                        continue;
                    }
                }
            }
        };
        match run_in(args, backend, nats, origin_bin, edge_bin, &dir).await {
            Ok(r) => report.results.push(r),
            Err(e) => {
                println!("{name} backend failed: {e:#}");
                failed.push(format!("{name}: {e:#}"));
            }
        }
    }
    print_report(&report);
    if let Some(path) = &args.json {
        super::write_json(path, &report)?;
    }
    if !failed.is_empty() {
        bail!("backend run(s) failed: {}", failed.join("; "));
    }
    Ok(())
}

/// The started nodes and links, stopped when dropped (the nats-server,
/// if any, last).
struct Nodes {
    origin: NodeProcess,
    edges: Vec<NodeProcess>,
    links: Vec<LinkHandle>,
    _nats: Option<NatsServer>,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for link in &self.links {
            link.shutdown();
        }
        for edge in &mut self.edges {
            edge.terminate();
        }
        for edge in &mut self.edges {
            edge.stop(Duration::from_secs(3));
        }
        self.origin.stop(Duration::from_secs(3));
    }
}

async fn run_in(
    args: &PurgeBenchArgs,
    backend: PurgeBackend,
    nats: Option<NatsServer>,
    origin_bin: &Path,
    edge_bin: &Path,
    scratch: &Path,
) -> anyhow::Result<PurgeReport> {
    let bus_args = nats.as_ref().map(NatsServer::node_args).unwrap_or_default();
    let token = random_token()?;
    let quiet = ("RUST_LOG".to_string(), "error".to_string());
    let origin_ip = Ipv4Addr::new(127, 0, 78, 1);
    let mut origin_args = vec![
        "--listen".to_string(),
        format!("{origin_ip}:0"),
        "--control-listen".into(),
        format!("{origin_ip}:0"),
        "--purge-log".into(),
        scratch.join("purge.log").display().to_string(),
    ];
    origin_args.extend(bus_args.iter().cloned());
    let envs = [quiet.clone(), (TOKEN_ENV.to_string(), token.clone())];
    let origin = NodeProcess::spawn_with_env(
        "origin",
        origin_bin,
        &origin_args,
        &envs,
        &["http", "control"],
    )?;
    let origin_http = origin.addr("http").context("origin address")?;
    let control = origin.addr("control").context("origin control address")?;
    let mut nodes = Nodes {
        origin,
        edges: Vec::new(),
        links: Vec::new(),
        _nats: nats,
    };
    for i in 0..args.edges {
        let n = u8::try_from(i).context("too many edges")?;
        let edge_ip = Ipv4Addr::new(127, 0, 78, 10 + n);
        let mut edge_args = vec![
            "--origin".to_string(),
            format!("http://{origin_http}"),
            "--listen".into(),
            format!("{edge_ip}:0"),
            "--admin-listen".into(),
            format!("{edge_ip}:0"),
            "--id".into(),
            format!("edge-{i}"),
            "--region".into(),
            format!("bench-{i}"),
        ];
        if backend == PurgeBackend::Builtin {
            let link = Link::start(LinkConfig {
                name: format!("control-{i}"),
                listen: SocketAddr::from((Ipv4Addr::new(127, 0, 78, 100 + n), 0)),
                upstream: control,
                delay: Duration::from_millis(args.wan_delay_ms),
                jitter: Duration::ZERO,
                mode: Mode::Up,
            })
            .await
            .context("starting an edge's control link")?;
            edge_args.extend(["--control".to_string(), link.local_addr().to_string()]);
            nodes.links.push(link);
        } else {
            edge_args.extend(bus_args.iter().cloned());
        }
        let name = format!("edge-{i}");
        let edge = NodeProcess::spawn_with_env(
            &name,
            edge_bin,
            &edge_args,
            std::slice::from_ref(&quiet),
            &["http", "admin"],
        )?;
        nodes.edges.push(edge);
    }
    wait_joined(control, args.edges).await?;
    let report = measure(args, backend, &nodes, control, &token).await?;
    drop(nodes);
    Ok(report)
}

/// Waits (at most 30 s) until `edges` edges are connected to the control
/// plane.
async fn wait_joined(control: SocketAddr, edges: usize) -> anyhow::Result<()> {
    let mut connected = 0;
    for _ in 0..300 {
        connected = client::get_json(control, "/_control/health")
            .await
            .ok()
            .and_then(|h| h["edges_connected"].as_u64())
            .unwrap_or(0);
        if connected >= edges as u64 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("only {connected} of {edges} edges joined the control plane within 30 s")
}

/// Whether `edge` answers `path` from its cache.
async fn is_hit(edge: SocketAddr, path: &str) -> anyhow::Result<bool> {
    let (status, headers, _) = client::get(edge, HOST, path, Duration::from_secs(10)).await?;
    let cs = headers
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Ok(status.is_success() && cs.contains("; hit"))
}

async fn measure(
    args: &PurgeBenchArgs,
    backend: PurgeBackend,
    nodes: &Nodes,
    control: SocketAddr,
    token: &str,
) -> anyhow::Result<PurgeReport> {
    let edges: Vec<SocketAddr> = nodes
        .edges
        .iter()
        .map(|e| e.addr("http").context("edge address"))
        .collect::<anyhow::Result<_>>()?;
    let mut hist = new_histogram()?;
    let (mut complete, mut incomplete, mut errors, mut removed) = (0u64, 0u64, 0u64, 0u64);
    let mut first_problem: Option<String> = None;
    let authority = control.to_string();
    let step = (args.purges / 10).max(1);
    let wan_delay_ms = (backend == PurgeBackend::Builtin).then_some(args.wan_delay_ms);
    match wan_delay_ms {
        Some(ms) => println!(
            "{} purges through {} edge(s), {ms} ms one way on each control link",
            args.purges, args.edges
        ),
        None => println!(
            "{} purges through {} edge(s) over nats (no emulated WAN link)",
            args.purges, args.edges
        ),
    }
    let mut last_path = String::new();
    for i in 0..args.purges {
        // Untimed: the object to purge is cached on every edge.
        let path = format!("/_gen/256/purge-bench-{i}?ttl=3600");
        for edge in &edges {
            client::get(*edge, HOST, &path, Duration::from_secs(10))
                .await
                .with_context(|| format!("warming {path} on {edge}"))?;
        }
        let body = json!({ "urls": [format!("http://{HOST}{path}")], "wait_ms": args.wait_ms });
        let started = Instant::now();
        let answer = post_purge(&authority, token, &body).await;
        let took = started.elapsed();
        let problem = match answer {
            Ok((status, text)) if status.is_success() => {
                match serde_json::from_str::<Value>(&text) {
                    Ok(answer) => {
                        removed += affected(&answer);
                        let missing = not_applied(&answer);
                        let listed = answer["edges"].as_array().map_or(0, Vec::len);
                        if answer["complete"] == true && missing.is_empty() && listed == args.edges
                        {
                            let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
                            hist.saturating_record(us.max(1));
                            complete += 1;
                            None
                        } else {
                            incomplete += 1;
                            Some(format!(
                                "purge {i}: {listed} edge(s) listed, not applied: {missing:?}"
                            ))
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        Some(format!("purge {i}: answer is not JSON: {e}"))
                    }
                }
            }
            Ok((status, text)) => {
                errors += 1;
                Some(format!("purge {i}: {status} {}", text.trim()))
            }
            Err(e) => {
                errors += 1;
                Some(format!("purge {i}: {e:#}"))
            }
        };
        if let Some(p) = problem {
            first_problem.get_or_insert(p);
        }
        if (i + 1) % step == 0 {
            println!("  {}/{} purges", i + 1, args.purges);
        }
        last_path = path;
    }
    // Sanity: the last purged object is gone from every edge.
    for edge in &edges {
        if is_hit(*edge, &last_path).await? {
            first_problem.get_or_insert(format!("{last_path} still a hit on {edge} after purge"));
        }
    }
    Ok(PurgeReport {
        backend: backend_name(backend),
        wan_delay_ms,
        complete,
        incomplete,
        errors,
        entries_removed: removed,
        p50_us: hist.value_at_quantile(0.5),
        p99_us: hist.value_at_quantile(0.99),
        max_us: hist.max(),
        mean_us: hist.mean(),
        first_problem,
    })
}

/// Entries removed or marked, summed over the edges of one purge answer.
fn affected(answer: &Value) -> u64 {
    answer["edges"].as_array().map_or(0, |es| {
        es.iter().filter_map(|e| e["affected"].as_u64()).sum()
    })
}

fn print_report(r: &PurgeBenchReport) {
    println!(
        "\npurge propagation: {} purges per backend, {} edges ({} CPUs; \
         not representative unless the machine is quiet)",
        r.purges, r.edges, r.cpus
    );
    println!(
        "{:<8} {:>6} {:>9} {:>9} {:>9} {:>9}  {:>8} {:>10} {:>6}  removed",
        "backend", "wan ms", "p50", "p99", "max", "mean", "complete", "incomplete", "errors"
    );
    for x in &r.results {
        println!(
            "{:<8} {:>6} {:>9} {:>9} {:>9} {:>9}  {:>8} {:>10} {:>6}  {}",
            x.backend,
            x.wan_delay_ms
                .map_or_else(|| "n/a".to_string(), |ms| ms.to_string()),
            fmt_us(x.p50_us as f64),
            fmt_us(x.p99_us as f64),
            fmt_us(x.max_us as f64),
            fmt_us(x.mean_us),
            x.complete,
            x.incomplete,
            x.errors,
            x.entries_removed
        );
    }
    for s in &r.skipped {
        println!("{:<8} skipped: {}", s.backend, s.reason);
    }
    if r.results.iter().any(|x| x.wan_delay_ms.is_none()) {
        println!(
            "  nats: edges take purges from the nats-server directly; \
             --wan-delay-ms applies to builtin only"
        );
    }
    for x in &r.results {
        if let Some(p) = &x.first_problem {
            println!("  warning ({}): {p}", x.backend);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_affected() {
        let answer = json!({"edges": [{"affected": 1}, {"affected": null}, {"affected": 2}]});
        assert_eq!(affected(&answer), 3);
        assert_eq!(affected(&json!({})), 0);
    }
}
