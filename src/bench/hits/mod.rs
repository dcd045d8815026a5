//! `edgecache bench hits`: cache hits of edgecache, nginx (proxy_cache) and
//! Varnish side by side. Each server runs on its own loopback address pinned
//! to the server CPUs; wrk, pinned to other CPUs, drives them in turns for
//! several rounds so machine noise hits all alike.

mod memory;
mod peers;
mod plot;
mod procstat;
mod summary;
mod targets;
mod wrk;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

use super::client::{self, Load};
use crate::config::{ByteSize, HumanDuration};
use crate::lab::sibling_binary;
use memory::MemoryResult;
use summary::RunRecord;
use targets::{StartContext, Target};

/// Flags of `edgecache bench hits`.
#[derive(Debug, Clone, clap::Args)]
pub struct HitsArgs {
    /// Rounds; in each, every workload is run against every target in turn.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Length of each wrk run, e.g. `10s`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Workloads: object sizes (`1k`, `16k`, `256k`: KiB), `many` (random
    /// keys among `--keys` objects of 1 KiB) and `browser` (one 1 KiB
    /// object, requested with the ten fields a browser sends).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1k,16k,256k,many,browser"
    )]
    pub sizes: Vec<String>,
    /// Objects of the `many` workload.
    #[arg(long, default_value_t = 10_000)]
    pub keys: usize,
    /// Servers to compare (those that cannot be installed or started are
    /// skipped with a message).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "edgecache,bare,nginx,varnish"
    )]
    pub targets: Vec<String>,
    /// wrk connections.
    #[arg(long, default_value_t = 64)]
    pub connections: u32,
    /// wrk threads.
    #[arg(long, default_value_t = 1)]
    pub threads: u32,
    /// CPUs the servers are pinned to (taskset -c).
    #[arg(long, default_value = "0")]
    pub server_cpus: String,
    /// CPUs wrk is pinned to (taskset -c).
    #[arg(long, default_value = "1")]
    pub load_cpus: String,
    /// Never install missing nginx, varnish or wrk.
    #[arg(long)]
    pub no_install: bool,
    /// Bytes cached for the memory check (0 skips it), e.g. `128MiB`.
    #[arg(long, default_value = "128MiB", value_parser = parse_bytes)]
    pub memory_bytes: u64,
    /// Object sizes of the memory check.
    #[arg(long, value_delimiter = ',', default_value = "1k,64k,256k")]
    pub memory_sizes: Vec<String>,
    /// Write the raw rounds, summary and memory check as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write an SVG plot of the results.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Scratch directory for configs, scripts and logs (kept); default: a
    /// temporary directory, removed at the end.
    #[arg(long)]
    pub scratch: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    HumanDuration::parse(s)
        .map(|d| d.0)
        .map_err(|e| e.to_string())
}

fn parse_bytes(s: &str) -> Result<u64, String> {
    ByteSize::parse(s).map(|b| b.0).map_err(|e| e.to_string())
}

/// `1k` -> 1024, `256k`, `1m` -> MiB, or plain bytes.
fn parse_size(s: &str) -> anyhow::Result<u64> {
    let s = s.trim().to_ascii_lowercase();
    let (num, factor) = match s.strip_suffix('k') {
        Some(n) => (n, 1 << 10),
        None => match s.strip_suffix('m') {
            Some(n) => (n, 1 << 20),
            None => (s.as_str(), 1),
        },
    };
    let n: u64 = num.parse().with_context(|| format!("bad size {s:?}"))?;
    let size = n.checked_mul(factor).context("size overflows")?;
    anyhow::ensure!(
        (1..=64 << 20).contains(&size),
        "size {s} must be 1 B..64 MiB"
    );
    Ok(size)
}

/// One workload: the paths wrk requests and the script it runs.
struct Workload {
    name: String,
    size: u64,
    paths: Vec<String>,
    script: PathBuf,
    /// The URL path given to wrk (the script picks paths for `many`).
    url_path: String,
}

fn workloads(args: &HitsArgs, scratch: &Path) -> anyhow::Result<Vec<Workload>> {
    let single = scratch.join("single.lua");
    std::fs::write(&single, wrk::single_script())?;
    let mut out = Vec::new();
    for name in &args.sizes {
        let name = name.trim().to_ascii_lowercase();
        if out.iter().any(|w: &Workload| w.name == name) {
            continue;
        }
        if name == "many" {
            let paths: Vec<String> = (0..args.keys)
                .map(|i| format!("/_gen/1024/k{i}?ttl=86400"))
                .collect();
            let list = scratch.join("many-keys.txt");
            std::fs::write(&list, paths.join("\n") + "\n")?;
            let script = scratch.join("many.lua");
            std::fs::write(&script, wrk::many_keys_script(&list)?)?;
            out.push(Workload {
                name,
                size: 1024,
                url_path: paths[0].clone(),
                paths,
                script,
            });
        } else if name == "browser" {
            let script = scratch.join("browser.lua");
            std::fs::write(&script, wrk::browser_script())?;
            let path = "/_gen/1024/obj?ttl=86400".to_string();
            out.push(Workload {
                name,
                size: 1024,
                paths: vec![path.clone()],
                script,
                url_path: path,
            });
        } else {
            let size = parse_size(&name)?;
            let path = format!("/_gen/{size}/obj?ttl=86400");
            out.push(Workload {
                name,
                size,
                paths: vec![path.clone()],
                script: single.clone(),
                url_path: path,
            });
        }
    }
    Ok(out)
}

/// The JSON document of `--json`.
#[derive(Serialize)]
struct HitsReport<'a> {
    bench: &'static str,
    rounds: u32,
    duration_secs: f64,
    connections: u32,
    threads: u32,
    server_cpus: &'a str,
    load_cpus: &'a str,
    cpus: usize,
    skipped: &'a [(String, String)],
    runs: &'a [RunRecord],
    summary: &'a [summary::SummaryRow],
    peak_rss_kib: &'a BTreeMap<String, u64>,
    memory: &'a [MemoryResult],
    note: &'static str,
}

/// Runs the hits benchmark.
pub async fn run(args: HitsArgs) -> anyhow::Result<()> {
    anyhow::ensure!((1..=100).contains(&args.rounds), "--rounds must be 1..=100");
    anyhow::ensure!(
        args.duration >= Duration::from_secs(1) && args.duration <= Duration::from_secs(600),
        "--duration must be 1s..10m"
    );
    anyhow::ensure!(
        (1..=1_000_000).contains(&args.keys),
        "--keys must be 1..=1000000"
    );
    anyhow::ensure!(
        (1..=10_000).contains(&args.connections),
        "--connections must be 1..=10000"
    );
    anyhow::ensure!((1..=64).contains(&args.threads), "--threads must be 1..=64");
    anyhow::ensure!(
        args.memory_bytes <= 16 << 30,
        "--memory-bytes must be at most 16GiB"
    );
    // Checked before the rounds, not after them.
    for size in &args.memory_sizes {
        parse_size(size).context("--memory-sizes")?;
    }
    let scratch = match &args.scratch {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("edgecache-bench-hits-{}", std::process::id())),
    };
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let result = run_in(&args, &scratch).await;
    if args.scratch.is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    result
}

async fn run_in(args: &HitsArgs, scratch: &Path) -> anyhow::Result<()> {
    let origin_bin = sibling_binary("origin")?;
    let edge_bin = sibling_binary("edge")?;
    super::warn_if_debug(&edge_bin);
    let bare_bin = crate::lab::package_binary("edge", "edge-bare")?;
    let tools = peers::ensure_tools(!args.no_install, scratch).await;
    let Some(wrk_bin) = tools.wrk.clone() else {
        bail!("wrk is not installed (apt-get install wrk) and could not be installed");
    };
    let workloads = workloads(args, scratch)?;
    anyhow::ensure!(!workloads.is_empty(), "no workloads (--sizes)");

    let mut origin = targets::start_origin(&origin_bin, &args.server_cpus)?;
    let origin_addr = origin.addr("http").context("origin address")?;
    println!("origin on {origin_addr} (pid {})", origin.child.id());
    let ctx = StartContext {
        edge_bin: &edge_bin,
        bare_bin: &bare_bin,
        tools: &tools,
        origin: origin_addr,
        cpus: &args.server_cpus,
        scratch,
        capacity: 1 << 30,
    };
    let mut skipped: Vec<(String, String)> = Vec::new();
    let mut running: Vec<Target> = Vec::new();
    for name in &args.targets {
        let name = name.trim();
        let Some(known) = targets::ALL.iter().find(|t| **t == name) else {
            bail!(
                "unknown target {name:?}; expected some of {:?}",
                targets::ALL
            );
        };
        match targets::start(known, "hits", &ctx).await {
            Ok(t) => {
                println!("{:<10} on {} (pid {})", t.name, t.addr, t.pid());
                running.push(t);
            }
            Err(e) => {
                println!("skipping {name}: {e:#}");
                skipped.push((name.to_string(), format!("{e:#}")));
            }
        }
    }
    anyhow::ensure!(!running.is_empty(), "no target could be started");

    let result = measure(args, &wrk_bin, &workloads, &running, origin_addr).await;
    let mut peak_rss = BTreeMap::new();
    for t in &running {
        peak_rss.insert(t.name.to_string(), procstat::tree_stat(t.pid()).hwm_kib);
    }
    for t in running.iter_mut() {
        t.stop();
    }
    let runs = result?;

    let mut memory_results = Vec::new();
    if args.memory_bytes > 0 {
        for t in args.targets.iter().map(|t| t.trim()) {
            if t == "nginx" || skipped.iter().any(|(s, _)| s == t) {
                continue;
            }
            for size in &args.memory_sizes {
                let size = parse_size(size)?;
                println!(
                    "memory check: {t}, {} MiB of {size} B objects",
                    args.memory_bytes >> 20
                );
                let ctx = StartContext {
                    capacity: (args.memory_bytes * 2).max(256 << 20),
                    ..ctx
                };
                match memory::check(t, size, args.memory_bytes, &ctx).await {
                    Ok(m) => memory_results.push(m),
                    Err(e) => println!("memory check of {t} failed: {e:#}"),
                }
            }
        }
    }
    origin.stop(Duration::from_secs(3));

    let names: Vec<&str> = targets::ALL
        .iter()
        .copied()
        .filter(|n| runs.iter().any(|r| r.target == *n))
        .collect();
    let wnames: Vec<String> = workloads.iter().map(|w| w.name.clone()).collect();
    let rows = summary::summarize(&runs, &wnames, &names, &peak_rss);
    println!(
        "\n{} round(s) of {}s per workload and target; servers on CPU {}, wrk on CPU {}",
        args.rounds,
        args.duration.as_secs(),
        args.server_cpus,
        args.load_cpus
    );
    println!("(figures are only representative on an otherwise quiet machine)");
    summary::print(&rows);
    memory::print(&memory_results);
    if !rows.iter().any(|r| r.target == "nginx") {
        println!("\nnginx did not run: no ratios to nginx");
    }
    for (name, why) in &skipped {
        println!("skipped {name}: {why}");
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let Some(path) = &args.json {
        let report = HitsReport {
            bench: "hits",
            rounds: args.rounds,
            duration_secs: args.duration.as_secs_f64(),
            connections: args.connections,
            threads: args.threads,
            server_cpus: &args.server_cpus,
            load_cpus: &args.load_cpus,
            cpus,
            skipped: &skipped,
            runs: &runs,
            summary: &rows,
            peak_rss_kib: &peak_rss,
            memory: &memory_results,
            note: "servers pinned to server_cpus, wrk to load_cpus; take figures on a quiet machine",
        };
        super::write_json(path, &report)?;
    }
    if let Some(path) = &args.plot {
        let subtitle = format!(
            "{} round(s) x {}s, {} connections, {} CPUs",
            args.rounds,
            args.duration.as_secs(),
            args.connections,
            cpus
        );
        plot::write_svg(path, &rows, &wnames, &names, &subtitle)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Warms every target, then runs the rounds.
async fn measure(
    args: &HitsArgs,
    wrk_bin: &Path,
    workloads: &[Workload],
    running: &[Target],
    origin: std::net::SocketAddr,
) -> anyhow::Result<Vec<RunRecord>> {
    for t in running {
        for w in workloads {
            warm(t, w).await?;
        }
    }
    let mut runs = Vec::new();
    for round in 1..=args.rounds {
        for w in workloads {
            // Rotate the order each round so no target always goes first.
            let n = running.len();
            for i in 0..n {
                let t = &running[(i + round as usize) % n];
                let wrk = wrk::WrkRun {
                    wrk: wrk_bin,
                    cpus: &args.load_cpus,
                    threads: args.threads,
                    connections: args.connections,
                    duration: args.duration,
                    script: w.script.clone(),
                };
                let origin_before = origin_requests(origin).await;
                let before = procstat::tree_stat(t.pid());
                let result = wrk
                    .run(&format!("http://{}{}", t.addr, w.url_path))
                    .await
                    .with_context(|| format!("wrk against {}", t.name))?;
                let after = procstat::tree_stat(t.pid());
                let origin_after = origin_requests(origin).await;
                let cpu = (after.cpu_secs - before.cpu_secs).max(0.0);
                let system = (after.system_secs - before.system_secs).clamp(0.0, cpu);
                let per_cpu = if cpu > 0.0 {
                    result.requests as f64 / cpu
                } else {
                    0.0
                };
                println!(
                    "round {round} {:<5} {:<10} {:>9.0} req/s  p50 {:>8}  p99 {:>8}  {:>9.0} req/CPU-s",
                    w.name,
                    t.name,
                    result.rps,
                    client::fmt_us(result.p50_us),
                    client::fmt_us(result.p99_us),
                    per_cpu
                );
                runs.push(RunRecord {
                    round,
                    workload: w.name.clone(),
                    target: t.name.to_string(),
                    wrk: result,
                    cpu_secs: cpu,
                    system_cpu_secs: system,
                    requests_per_cpu_sec: per_cpu,
                    origin_requests: origin_after.saturating_sub(origin_before),
                });
            }
        }
    }
    Ok(runs)
}

/// Fetches every path of `w` twice; the second pass must be hits.
async fn warm(t: &Target, w: &Workload) -> anyhow::Result<()> {
    let mut load = Load {
        addr: t.addr,
        host: t.addr.to_string(),
        paths: Arc::new(w.paths.clone()),
        connections: 8,
        requests: w.paths.len() as u64,
        timeout: Duration::from_secs(20),
        deadline: Duration::from_secs(600),
        check: Arc::new(|s, _| s == http::StatusCode::OK),
    };
    let first = client::run(&load).await?;
    if first.unexpected + first.errors > 0 {
        bail!(
            "warming {} ({}) failed: {}",
            t.name,
            w.name,
            first.first_problem.unwrap_or_default()
        );
    }
    load.check = t.hit_check();
    let second = client::run(&load).await?;
    let hits = second.completed() - second.unexpected;
    println!(
        "warmed {:<10} {:<5} {} objects of {} B: {hits}/{} hits on the second pass",
        t.name,
        w.name,
        w.paths.len(),
        w.size,
        second.completed()
    );
    if hits * 100 < second.completed() * 99 {
        println!(
            "  warning: {} is not serving hits ({})",
            t.name,
            second.first_problem.unwrap_or_default()
        );
    }
    Ok(())
}

/// The origin's request counter (0 when unavailable).
async fn origin_requests(origin: std::net::SocketAddr) -> u64 {
    client::get_json(origin, "/_stats")
        .await
        .ok()
        .and_then(|v| v["requests"].as_u64())
        .unwrap_or(0)
}
