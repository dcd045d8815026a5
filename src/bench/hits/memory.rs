//! The memory check: resident memory of a fresh server after caching N bytes
//! of objects, against N (target: at most 1.15 x N plus the base).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::procstat::tree_stat;
use super::targets::{self, StartContext, Target};
use crate::bench::client::{self, Load};

/// The allowed growth of resident memory per cached body byte.
pub const LIMIT_FACTOR: f64 = 1.15;

/// One memory measurement.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryResult {
    /// The server.
    pub target: String,
    /// Body size of each object.
    pub object_size: u64,
    /// Objects cached.
    pub objects: u64,
    /// Body bytes cached (N).
    pub body_bytes: u64,
    /// Resident memory before filling, KiB.
    pub rss_base_kib: u64,
    /// Resident memory after filling, KiB.
    pub rss_after_kib: u64,
    /// (after - base) / N.
    pub growth_per_byte: f64,
    /// Whether after <= 1.15 x N + base.
    pub within_target: bool,
    /// Entries the edge reports holding (edgecache only).
    pub store_entries: Option<u64>,
    /// Bytes the edge's store reports weighing (edgecache only).
    pub store_bytes: Option<u64>,
    /// Answers that were not 200.
    pub failed: u64,
}

/// Fills a fresh instance of `name` with `total` bytes of `size`-byte
/// objects and measures its resident memory.
pub async fn check(
    name: &str,
    size: u64,
    total: u64,
    ctx: &StartContext<'_>,
) -> anyhow::Result<MemoryResult> {
    let objects = total.div_ceil(size.max(1)).clamp(1, 2_000_000);
    let mut target: Target = targets::start(name, &format!("mem-{size}"), ctx).await?;
    let result = fill_and_measure(&target, size, objects).await;
    target.stop();
    result
}

async fn fill_and_measure(
    target: &Target,
    size: u64,
    objects: u64,
) -> anyhow::Result<MemoryResult> {
    let host = target.addr.to_string();
    // One request so lazily built state (pools, runtimes) is in the base.
    let _ = client::get(
        target.addr,
        &host,
        "/_gen/1/base?ttl=86400",
        Duration::from_secs(5),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = tree_stat(target.pid()).rss_kib;
    let paths: Vec<String> = (0..objects)
        .map(|i| format!("/_gen/{size}/m{i}?ttl=86400"))
        .collect();
    let load = Load {
        addr: target.addr,
        host,
        paths: Arc::new(paths),
        connections: 16,
        requests: objects,
        timeout: Duration::from_secs(20),
        deadline: Duration::from_secs(1800),
        check: Arc::new(|s, _| s == http::StatusCode::OK),
    };
    let r = client::run(&load).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (mut store_entries, mut store_bytes) = (None, None);
    if let Some(admin) = target.admin
        && let Ok(stats) = client::get_json(admin, "/_edge/stats").await
    {
        store_entries = stats["entries"].as_u64();
        store_bytes = stats["bytes"].as_u64();
    }
    let after = tree_stat(target.pid()).rss_kib;
    let body_bytes = objects * size;
    let growth = after.saturating_sub(base) as f64 * 1024.0 / body_bytes.max(1) as f64;
    Ok(MemoryResult {
        target: target.name.to_string(),
        object_size: size,
        objects,
        body_bytes,
        rss_base_kib: base,
        rss_after_kib: after,
        growth_per_byte: growth,
        within_target: growth <= LIMIT_FACTOR,
        store_entries,
        store_bytes,
        failed: r.unexpected + r.errors,
    })
}

/// Prints the memory results as a table.
pub fn print(results: &[MemoryResult]) {
    if results.is_empty() {
        return;
    }
    println!("\nmemory after caching N bytes (target: RSS growth <= {LIMIT_FACTOR} x N)");
    println!(
        "{:<10} {:>8} {:>9} {:>10} {:>10} {:>10} {:>8}  verdict",
        "target", "object", "objects", "N MiB", "base MiB", "after MiB", "growth"
    );
    for m in results {
        println!(
            "{:<10} {:>8} {:>9} {:>10.1} {:>10.1} {:>10.1} {:>7.2}x  {}{}",
            m.target,
            m.object_size,
            m.objects,
            m.body_bytes as f64 / (1 << 20) as f64,
            m.rss_base_kib as f64 / 1024.0,
            m.rss_after_kib as f64 / 1024.0,
            m.growth_per_byte,
            if m.within_target { "ok" } else { "over" },
            if m.failed > 0 {
                format!(" ({} failed requests)", m.failed)
            } else {
                String::new()
            }
        );
    }
}
