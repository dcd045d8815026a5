//! The memory check: resident memory of a fresh server after caching N bytes
//! of objects, against N (target: at most 1.15 x N plus a fixed base).
//!
//! The fill runs in two halves with a reading after each, so that what each
//! further byte costs (the slope between the readings) is told apart from
//! what the fill costs once whatever N is (connections' buffers, the
//! allocator's arenas for concurrent fills: the fixed base the target
//! allows beside the node's resident memory at start).

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
    /// Resident memory after filling the first half of the objects, KiB.
    pub rss_half_kib: u64,
    /// Resident memory after filling, KiB.
    pub rss_after_kib: u64,
    /// (after - base) / N: everything the fill added, per body byte.
    pub growth_per_byte: f64,
    /// (after - half) / (the second half's body bytes): what each further
    /// body byte costs once the fill's fixed costs are paid.
    pub marginal_per_byte: f64,
    /// The growth not explained by the marginal cost (after - base -
    /// marginal x N), KiB: what filling costs whatever N is.
    pub fixed_kib: i64,
    /// Whether the marginal cost is within 1.15 per byte.
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
    let half = objects / 2;
    let first = fill(target, paths[..half as usize].to_vec()).await?;
    let mid = tree_stat(target.pid()).rss_kib;
    let second = fill(target, paths[half as usize..].to_vec()).await?;
    let (mut store_entries, mut store_bytes) = (None, None);
    if let Some(admin) = target.admin
        && let Ok(stats) = client::get_json(admin, "/_edge/stats").await
    {
        store_entries = stats["entries"].as_u64();
        store_bytes = stats["bytes"].as_u64();
    }
    let after = tree_stat(target.pid()).rss_kib;
    let body_bytes = objects * size;
    let Growth {
        growth,
        marginal,
        fixed_kib,
    } = Growth::of([base, mid, after], half * size, body_bytes);
    Ok(MemoryResult {
        target: target.name.to_string(),
        object_size: size,
        objects,
        body_bytes,
        rss_base_kib: base,
        rss_half_kib: mid,
        rss_after_kib: after,
        growth_per_byte: growth,
        marginal_per_byte: marginal,
        fixed_kib,
        within_target: marginal <= LIMIT_FACTOR,
        store_entries,
        store_bytes,
        failed: first + second,
    })
}

/// Resident memory growth per body byte, from readings before, halfway
/// and after a fill.
#[derive(Debug, PartialEq)]
struct Growth {
    growth: f64,
    marginal: f64,
    fixed_kib: i64,
}

impl Growth {
    /// `rss_kib`: before, after `first_bytes` of bodies, after `body_bytes`.
    fn of(rss_kib: [u64; 3], first_bytes: u64, body_bytes: u64) -> Growth {
        let [base, mid, after] = rss_kib.map(|kib| kib as f64 * 1024.0);
        let growth = (after - base).max(0.0) / body_bytes.max(1) as f64;
        let second_bytes = body_bytes.saturating_sub(first_bytes).max(1) as f64;
        let marginal = (after - mid) / second_bytes;
        let fixed = after - base - marginal * body_bytes as f64;
        Growth {
            growth,
            marginal,
            fixed_kib: (fixed / 1024.0).round() as i64,
        }
    }
}

/// Requests every path once over 16 connections, then lets the node settle
/// for a second (it hands freed memory back once fills stop); returns the
/// answers that were not 200.
async fn fill(target: &Target, paths: Vec<String>) -> anyhow::Result<u64> {
    let load = Load {
        addr: target.addr,
        host: target.addr.to_string(),
        requests: paths.len() as u64,
        paths: Arc::new(paths),
        connections: 16,
        timeout: Duration::from_secs(20),
        deadline: Duration::from_secs(1800),
        check: Arc::new(|s, _| s == http::StatusCode::OK),
    };
    let r = client::run(&load).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(r.unexpected + r.errors)
}

/// Prints the memory results as a table.
pub fn print(results: &[MemoryResult]) {
    if results.is_empty() {
        return;
    }
    println!(
        "\nmemory after caching N bytes (target: at most {LIMIT_FACTOR} x N plus a fixed base; \
         growth: (after - base) / N; per byte: the slope between the fill's halves; \
         fixed: the rest of the growth)"
    );
    println!(
        "{:<10} {:>8} {:>9} {:>8} {:>9} {:>10} {:>8} {:>9} {:>10}  verdict",
        "target",
        "object",
        "objects",
        "N MiB",
        "base MiB",
        "after MiB",
        "growth",
        "per byte",
        "fixed MiB"
    );
    for m in results {
        println!(
            "{:<10} {:>8} {:>9} {:>8.1} {:>9.1} {:>10.1} {:>7.2}x {:>8.2}x {:>10.1}  {}{}",
            m.target,
            m.object_size,
            m.objects,
            m.body_bytes as f64 / (1 << 20) as f64,
            m.rss_base_kib as f64 / 1024.0,
            m.rss_after_kib as f64 / 1024.0,
            m.growth_per_byte,
            m.marginal_per_byte,
            m.fixed_kib as f64 / 1024.0,
            if m.within_target { "ok" } else { "over" },
            if m.failed > 0 {
                format!(" ({} failed requests)", m.failed)
            } else {
                String::new()
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::Growth;

    #[test]
    fn the_fixed_cost_of_a_fill_is_told_apart_from_the_cost_per_byte() {
        // 100 MiB of bodies at 1.05 per byte, plus 20 MiB the fill costs
        // whatever its size, 10 MiB of it paid in the first half.
        let mib = 1024;
        let g = Growth::of(
            [
                10 * mib,
                10 * mib + 10 * mib + 105 * mib / 2,
                10 * mib + 20 * mib + 105 * mib,
            ],
            50 << 20,
            100 << 20,
        );
        assert!((g.growth - 1.25).abs() < 1e-9, "{g:?}");
        assert!((g.marginal - (10.0 + 52.5) / 50.0).abs() < 1e-9, "{g:?}");
        // A fixed cost paid across both halves shows partly in the slope;
        // one paid in the first half alone is all in `fixed`.
        let g = Growth::of(
            [0, 10 * mib + 50 * mib, 10 * mib + 100 * mib],
            50 << 20,
            100 << 20,
        );
        assert_eq!(g.marginal, 1.0);
        assert_eq!(g.fixed_kib, 10 * 1024);
    }
}
