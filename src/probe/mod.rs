//! `edgecache probe`: latency as the clients of each region see it. Finds
//! the running lab, resolves the CDN name through its steering DNS from an
//! address in the region's client subnet (hickory-resolver), then measures
//! time to first byte and total time of hits, misses, revalidations,
//! stale-served and error answers against the steered edge (or every
//! edge), through the links that carry the region's round trips.

mod plot;
mod report;
mod request;
mod resolve;
mod workload;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::Semaphore;

pub use report::{Record, Report, csv, table};
pub use request::{Kind, Sample, classify, timed_get};
pub use resolve::{ResolveError, client_ip, resolve};
pub use workload::{Objects, Target};

use crate::lab::control::ControlClient;
use crate::lab::{LabFile, LabTarget, find_lab};

/// How many region-to-edge paths are measured at once.
const PARALLEL_TARGETS: usize = 6;

/// Flags of `edgecache probe`.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// Measure from this region only (default: every region).
    #[arg(long, value_name = "REGION", conflicts_with = "all_regions")]
    pub region: Option<String>,
    /// Measure from every region (the default).
    #[arg(long)]
    pub all_regions: bool,
    /// Measure every edge, not just the one the steering DNS answers.
    #[arg(long)]
    pub all_edges: bool,
    /// Requests of each kind (hit, miss, revalidation, strict) per edge and
    /// phase.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub requests: u64,
    /// One JSON array of records {region, edge, kind, count, p50_ms,
    /// p90_ms, p99_ms, max_ms, ...} on stdout.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// CSV on stdout, with a header line.
    #[arg(long)]
    pub csv: bool,
    /// Also draw the results into an SVG file, one panel per region.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// `partition`: measure, cut every region off the origin, measure,
    /// heal, measure.
    #[arg(long, value_enum)]
    pub scenario: Option<Scenario>,
    /// Longest a single request may take, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// The lab.
    #[command(flatten)]
    pub target: LabTarget,
}

/// A fault scenario run around the measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Before, during and after cutting the origin off from every region.
    Partition,
}

/// Runs `edgecache probe`.
pub async fn run(args: ProbeArgs) -> anyhow::Result<()> {
    let lab = find_lab(args.target.lab.as_deref())?;
    let regions: Vec<String> = match &args.region {
        Some(region) => {
            if lab.topology.region(region).is_none() {
                let known: Vec<&str> = lab
                    .topology
                    .regions
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect();
                bail!(
                    "no region `{region}` in the lab (regions: {})",
                    known.join(", ")
                );
            }
            vec![region.clone()]
        }
        None => lab
            .topology
            .regions
            .iter()
            .map(|r| r.name.clone())
            .collect(),
    };
    let targets = targets(&lab, &regions, args.all_edges).await?;
    let phases: Vec<Option<String>> = match args.scenario {
        None => vec![None],
        Some(Scenario::Partition) => ["before", "during", "after"]
            .iter()
            .map(|p| Some(p.to_string()))
            .collect(),
    };
    let total = targets.len() as u64 * phases.len() as u64 * args.requests * Objects::PER_ROUND;
    let progress = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} {msg:<16} [{bar:40}] {pos}/{len} requests ({eta})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let timeout = Duration::from_millis(args.timeout_ms);
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let objects = Objects::new(&run_id);
    let mut report = Report::new(targets.clone(), phases.clone());
    let control = ControlClient::new(&lab);
    progress.set_message("priming");
    run_all(&targets, |t| {
        let objects = objects.clone();
        let host = lab.cdn_name.clone();
        async move { workload::prime(&t, &objects, &host, timeout).await }
    })
    .await;
    for (p, phase) in phases.iter().enumerate() {
        match phase.as_deref() {
            Some("during") => {
                let links = control.partition("*", "origin").await?;
                note(
                    &progress,
                    &format!("partition: {} links to the origin blackholed", links.len()),
                );
            }
            Some("after") => {
                control.heal("*", "origin").await?;
                note(
                    &progress,
                    "healed: waiting 1s for the edges to see the origin again",
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ => {}
        }
        progress.set_message(phase.clone().unwrap_or_else(|| "measuring".into()));
        let results = run_all(&targets, |t| {
            let objects = objects.clone();
            let host = lab.cdn_name.clone();
            let progress = progress.clone();
            let rounds = args.requests;
            async move { workload::measure(&t, &objects, &host, rounds, timeout, &progress).await }
        })
        .await;
        for (i, samples) in results.into_iter().enumerate() {
            report.add(p, i, &samples);
        }
    }
    progress.finish_and_clear();
    let records = report.records();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&records)?);
    } else if args.csv {
        print!("{}", csv(&records));
    } else {
        print!("{}", table(&records));
    }
    if let Some(path) = &args.plot {
        plot::draw(&records, path)?;
        eprintln!("plot written to {}", path.display());
    }
    Ok(())
}

/// Tells the user what the scenario does: above the progress bar, or on
/// stderr when there is none.
fn note(progress: &ProgressBar, message: &str) {
    if progress.is_hidden() {
        eprintln!("{message}");
    } else {
        progress.println(message);
    }
}

/// Runs `job` for every target, a few at a time; answers in target order.
async fn run_all<F, Fut, T>(targets: &[Target], job: F) -> Vec<T>
where
    F: Fn(Target) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let permits = Arc::new(Semaphore::new(PARALLEL_TARGETS));
    let handles: Vec<_> = targets
        .iter()
        .map(|t| {
            let fut = job(t.clone());
            let permits = Arc::clone(&permits);
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                fut.await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        match handle.await {
            Ok(value) => out.push(value),
            Err(e) => tracing::warn!(error = %e, "probe task failed"),
        }
    }
    out
}

/// The paths to measure: per region, the steered edge (resolved through
/// the steering DNS) or, with `all_edges`, every edge.
async fn targets(
    lab: &LabFile,
    regions: &[String],
    all_edges: bool,
) -> anyhow::Result<Vec<Target>> {
    let mut out = Vec::new();
    for name in regions {
        let region = lab
            .topology
            .region(name)
            .with_context(|| format!("no region `{name}`"))?;
        let client = client_ip(region);
        let steered = match resolve(lab.dns, client, &lab.cdn_name).await {
            Ok(ips) => ips
                .first()
                .and_then(|ip| lab.edge_at((*ip).into()))
                .map(|n| n.name.clone()),
            Err(e) if all_edges => {
                tracing::warn!(error = %e, "steering DNS gave no edge");
                None
            }
            Err(e) => return Err(e.into()),
        };
        let edges: Vec<String> = if all_edges {
            // Nearest first.
            let mut edges: Vec<(u32, String)> = lab
                .topology
                .edges()
                .map(|(r, e)| {
                    (
                        lab.topology.rtt_ms(name, &r.name).unwrap_or(u32::MAX),
                        e.to_string(),
                    )
                })
                .collect();
            edges.sort_by_key(|(rtt, _)| *rtt);
            edges.into_iter().map(|(_, e)| e).collect()
        } else {
            steered.iter().cloned().collect()
        };
        if edges.is_empty() {
            bail!("the steering DNS answered no edge of the lab for {name}");
        }
        for edge in edges {
            let link = lab
                .client_link(name, &edge)
                .with_context(|| format!("no link from {name}'s clients to {edge}"))?;
            out.push(Target {
                region: name.clone(),
                steered: steered.as_deref() == Some(edge.as_str()),
                edge,
                link: link.listen,
                client,
                rtt_ms: link.rtt_ms,
            });
        }
    }
    Ok(out)
}
