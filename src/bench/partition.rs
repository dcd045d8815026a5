//! `edgecache bench partition`: latency of a fresh hit, of a stale answer
//! served during a partition, and of an error answer during a partition,
//! measured in one run against a real origin and edge with a WAN link
//! between them.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

use super::client::{self, Check, Load, LoadResult, fmt_us};
use super::node_env;
use crate::lab::{NodeProcess, sibling_binary};
use crate::wan::{Link, LinkConfig, Mode};

/// The Host of requests on the `error` route.
const STRICT_HOST: &str = "strict.bench";

/// Flags of `edgecache bench partition`.
#[derive(Debug, Clone, clap::Args)]
pub struct PartitionArgs {
    /// Requests measured per kind (fresh hit, stale-served, error answer).
    #[arg(long, default_value_t = 20_000)]
    pub requests: u64,
    /// Concurrent keep-alive connections of the load client.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Body size of every object, in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: u64,
    /// Distinct objects per kind.
    #[arg(long, default_value_t = 100)]
    pub keys: usize,
    /// One-way delay of the WAN link between edge and origin, in ms (only
    /// misses and revalidations cross it).
    #[arg(long, default_value_t = 0)]
    pub wan_delay_ms: u64,
    /// Write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Latency figures of one kind of answer.
#[derive(Debug, Serialize)]
pub struct KindReport {
    /// `fresh-hit`, `stale-served` or `error-answer`.
    pub kind: &'static str,
    /// Completed requests.
    pub count: u64,
    /// Median latency, microseconds.
    pub p50_us: u64,
    /// 99th percentile latency, microseconds.
    pub p99_us: u64,
    /// 99.9th percentile latency, microseconds.
    pub p999_us: u64,
    /// Largest latency, microseconds.
    pub max_us: u64,
    /// Mean latency, microseconds.
    pub mean_us: f64,
    /// Answers per second over the phase (all connections).
    pub rate: f64,
    /// p50 divided by the fresh hit's p50 of the same run.
    pub p50_vs_fresh: f64,
    /// p99 divided by the fresh hit's p99 of the same run.
    pub p99_vs_fresh: f64,
    /// Count per status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Answers that were not of the expected kind.
    pub unexpected: u64,
    /// Transport errors and timeouts.
    pub errors: u64,
    /// The first unexpected answer or error, if any.
    pub first_problem: Option<String>,
}

/// The whole report, as written with `--json`.
#[derive(Debug, Serialize)]
pub struct PartitionReport {
    /// Always `partition`.
    pub bench: &'static str,
    /// Requests per kind.
    pub requests: u64,
    /// Load client connections.
    pub connections: usize,
    /// Object size in bytes.
    pub size: u64,
    /// Objects per kind.
    pub keys: usize,
    /// Time from blackholing the link to the edge reporting the origin down.
    pub detect_down_ms: u64,
    /// One entry per kind.
    pub kinds: Vec<KindReport>,
    /// CPUs of the machine.
    pub cpus: usize,
    /// Reminder on how to read the figures.
    pub note: &'static str,
}

fn edge_config(link: SocketAddr) -> String {
    format!(
        r#"origin = "http://{link}"

[origin_client]
connect_timeout = "1s"
first_byte_timeout = "1s"

[health]
failure_threshold = 1
check_interval = "200ms"
check_path = "/_gen/1"

[[routes]]
prefix = "/"
on_origin_failure = "serve-stale"
max_stale = "1h"

[[routes]]
host = "{STRICT_HOST}"
prefix = "/"
on_origin_failure = "error"
"#
    )
}

fn paths(size: u64, label: &str, keys: usize, ttl: u64) -> Arc<Vec<String>> {
    Arc::new(
        (0..keys)
            .map(|i| format!("/_gen/{size}/{label}-{i}?ttl={ttl}"))
            .collect(),
    )
}

fn cache_status(h: &http::HeaderMap) -> &str {
    h.get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Runs the partition benchmark.
pub async fn run(args: PartitionArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=10_000_000).contains(&args.requests),
        "--requests must be 1..=10000000"
    );
    anyhow::ensure!(
        (1..=100_000).contains(&args.keys),
        "--keys must be 1..=100000"
    );
    anyhow::ensure!(args.size <= 16 << 20, "--size must be at most 16 MiB");
    let origin_bin = sibling_binary("origin")?;
    let edge_bin = sibling_binary("edge")?;
    super::warn_if_debug(&edge_bin);
    let scratch =
        std::env::temp_dir().join(format!("edgecache-bench-partition-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let result = run_in(&args, &origin_bin, &edge_bin, &scratch).await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

async fn run_in(
    args: &PartitionArgs,
    origin_bin: &std::path::Path,
    edge_bin: &std::path::Path,
    scratch: &std::path::Path,
) -> anyhow::Result<()> {
    let base = Ipv4Addr::new(127, 0, 77, 1);
    let link_ip = Ipv4Addr::new(127, 0, 77, 2);
    let edge_ip = Ipv4Addr::new(127, 0, 77, 3);
    let (env, env_args) = node_env();
    let mut origin_args = env_args.clone();
    origin_args.extend([
        origin_bin.display().to_string(),
        "--listen".into(),
        format!("{base}:0"),
    ]);
    let mut origin = NodeProcess::spawn("origin", &env, &origin_args, &["http"])?;
    let origin_addr = origin.addr("http").context("origin address")?;
    let link = Link::start(LinkConfig {
        name: "origin".into(),
        listen: SocketAddr::from((link_ip, 0)),
        upstream: origin_addr,
        delay: Duration::from_millis(args.wan_delay_ms.min(10_000)),
        jitter: Duration::ZERO,
        mode: Mode::Up,
    })
    .await
    .context("starting the WAN link")?;
    let config = scratch.join("edge.toml");
    std::fs::write(&config, edge_config(link.local_addr()))?;
    let mut edge_args = env_args;
    edge_args.extend([
        edge_bin.display().to_string(),
        "--config".into(),
        config.display().to_string(),
        "--listen".into(),
        format!("{edge_ip}:0"),
        "--admin-listen".into(),
        format!("{edge_ip}:0"),
    ]);
    let mut edge = NodeProcess::spawn("edge", &env, &edge_args, &["http", "admin"])?;
    let result = measure(args, &edge, &link).await;
    link.shutdown();
    edge.stop(Duration::from_secs(3));
    origin.stop(Duration::from_secs(3));
    let report = result?;
    print_report(&report);
    if let Some(path) = &args.json {
        super::write_json(path, &report)?;
    }
    Ok(())
}

async fn measure(
    args: &PartitionArgs,
    edge: &NodeProcess,
    link: &crate::wan::LinkHandle,
) -> anyhow::Result<PartitionReport> {
    let http = edge.addr("http").context("edge address")?;
    let admin = edge.addr("admin").context("edge admin address")?;
    let default_host = http.to_string();
    let fresh = paths(args.size, "fresh", args.keys, 3600);
    let stale = paths(args.size, "stale", args.keys, 1);
    let strict = paths(args.size, "strict", args.keys, 1);
    let load = |host: &str, paths: &Arc<Vec<String>>, requests: u64, check: Check| Load {
        addr: http,
        host: host.to_string(),
        paths: Arc::clone(paths),
        connections: args.connections,
        requests,
        timeout: Duration::from_secs(10),
        deadline: Duration::from_secs(300),
        check,
    };
    let ok: Check = Arc::new(|s, _| s == http::StatusCode::OK);

    println!(
        "warming {} objects of {} bytes per kind",
        args.keys, args.size
    );
    let keys = args.keys as u64;
    let warmed_at = Instant::now();
    for (host, p) in [
        (default_host.as_str(), &fresh),
        (default_host.as_str(), &stale),
        (STRICT_HOST, &strict),
    ] {
        let r = client::run(&load(host, p, keys, Arc::clone(&ok))).await?;
        if r.unexpected + r.errors > 0 {
            bail!("warming failed: {:?}", r.first_problem);
        }
    }

    if let Ok(stats) = client::get_json(admin, "/_edge/stats").await {
        println!("edge holds {} entries after warming", stats["entries"]);
    }
    println!("measuring fresh hits ({} requests)", args.requests);
    let hit: Check = Arc::new(|s, h| {
        let cs = cache_status(h);
        s == http::StatusCode::OK && cs.contains("; hit") && !cs.contains("fwd=")
    });
    // A short untimed pass first, so every connection and entry is warm.
    client::run(&load(
        &default_host,
        &fresh,
        keys.max(200),
        Arc::clone(&hit),
    ))
    .await?;
    let fresh_result = client::run(&load(&default_host, &fresh, args.requests, hit)).await?;

    // The ttl=1 entries must be stale before the partition starts.
    let stale_at = warmed_at + Duration::from_millis(2100);
    tokio::time::sleep_until(stale_at.into()).await;

    println!("partitioning the edge from its origin (link blackholed)");
    link.set_mode(Mode::Blackhole);
    let cut = Instant::now();
    // One request on a stale entry: it waits out the first-byte timeout,
    // is answered stale, and marks the origin down.
    let _ = client::get(http, &default_host, &stale[0], Duration::from_secs(10)).await;
    wait_down(admin).await?;
    let detect_down_ms = u64::try_from(cut.elapsed().as_millis()).unwrap_or(u64::MAX);
    println!("edge reports the origin down after {detect_down_ms} ms");
    if let Ok(stats) = client::get_json(admin, "/_edge/stats").await {
        println!("edge holds {} entries at the partition", stats["entries"]);
    }

    println!("measuring stale answers during the partition");
    let stale_check: Check =
        Arc::new(|s, h| s == http::StatusCode::OK && cache_status(h).contains("fwd=stale"));
    let stale_result =
        client::run(&load(&default_host, &stale, args.requests, stale_check)).await?;

    println!("measuring error answers during the partition");
    let error_check: Check = Arc::new(|s, _| s.is_server_error());
    let error_result = client::run(&load(STRICT_HOST, &strict, args.requests, error_check)).await?;
    link.set_mode(Mode::Up);

    let f50 = fresh_result.hist.value_at_quantile(0.5).max(1) as f64;
    let f99 = fresh_result.hist.value_at_quantile(0.99).max(1) as f64;
    let kind = |name, r: LoadResult| KindReport {
        kind: name,
        count: r.completed(),
        p50_us: r.hist.value_at_quantile(0.5),
        p99_us: r.hist.value_at_quantile(0.99),
        p999_us: r.hist.value_at_quantile(0.999),
        max_us: r.hist.max(),
        mean_us: r.hist.mean(),
        rate: r.rate(),
        p50_vs_fresh: r.hist.value_at_quantile(0.5) as f64 / f50,
        p99_vs_fresh: r.hist.value_at_quantile(0.99) as f64 / f99,
        first_problem: r.first_problem.clone(),
        statuses: r.statuses,
        unexpected: r.unexpected,
        errors: r.errors,
    };
    Ok(PartitionReport {
        bench: "partition",
        requests: args.requests,
        connections: args.connections,
        size: args.size,
        keys: args.keys,
        detect_down_ms,
        kinds: vec![
            kind("fresh-hit", fresh_result),
            kind("stale-served", stale_result),
            kind("error-answer", error_result),
        ],
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        note: "load client, edge and origin share this machine; take figures on a quiet machine",
    })
}

/// Polls `/_edge/health` until the origin is reported down (at most 10 s).
async fn wait_down(admin: SocketAddr) -> anyhow::Result<()> {
    for _ in 0..100 {
        if let Ok(h) = client::get_json(admin, "/_edge/health").await
            && h["origins"][0]["state"] == "down"
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the edge did not report its origin down within 10 s of the partition")
}

fn print_report(r: &PartitionReport) {
    println!(
        "\n{} requests per kind, {} connections, {} B objects ({} CPUs; not representative unless the machine is quiet)",
        r.requests, r.connections, r.size, r.cpus
    );
    println!(
        "{:<14} {:>8} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8}  statuses",
        "kind", "count", "p50", "p99", "p99.9", "max", "p50/hit", "p99/hit"
    );
    for k in &r.kinds {
        let statuses: Vec<String> = k.statuses.iter().map(|(s, n)| format!("{s}:{n}")).collect();
        println!(
            "{:<14} {:>8} {:>9} {:>9} {:>9} {:>9} {:>8.2} {:>8.2}  {}",
            k.kind,
            k.count,
            fmt_us(k.p50_us as f64),
            fmt_us(k.p99_us as f64),
            fmt_us(k.p999_us as f64),
            fmt_us(k.max_us as f64),
            k.p50_vs_fresh,
            k.p99_vs_fresh,
            statuses.join(" ")
        );
        if k.unexpected + k.errors > 0 {
            println!(
                "  warning: {} unexpected answers, {} errors; first: {}",
                k.unexpected,
                k.errors,
                k.first_problem.as_deref().unwrap_or("-")
            );
        }
    }
}
