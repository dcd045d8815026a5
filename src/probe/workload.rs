//! What the probe requests from each edge: hits (a long-lived object,
//! primed first), misses (unique cache-busting URLs), revalidations
//! (`max-age=0` objects on a serve-stale route) and the same on an `error`
//! route (`/_gen/1024/strict-...`), interleaved, N of each.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use indicatif::ProgressBar;

use super::request::{Sample, timed_get};

/// One region-to-edge path the probe measures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The clients' region.
    pub region: String,
    /// The edge.
    pub edge: String,
    /// Whether the steering DNS answered this edge for the region.
    pub steered: bool,
    /// The link carrying the region's clients to the edge.
    pub link: SocketAddr,
    /// The client address requests come from.
    pub client: Ipv4Addr,
    /// The configured round trip between the region and the edge.
    pub rtt_ms: u32,
}

/// The objects of one probe run.
#[derive(Debug, Clone)]
pub struct Objects {
    hit: String,
    revalidate: String,
    strict: String,
}

impl Objects {
    /// Objects unique to a run (`run` is a fresh id).
    pub fn new(run: &str) -> Objects {
        Objects {
            hit: "/_gen/1024/probe-hit?ttl=3600".to_string(),
            revalidate: format!("/_gen/1024/probe-reval-{run}?cc=max-age%3D0"),
            strict: format!("/_gen/1024/strict-{run}?cc=max-age%3D0"),
        }
    }

    /// Requests per round of the workload.
    pub const PER_ROUND: u64 = 4;

    fn miss() -> String {
        format!("/_gen/1024?ttl=60&v={}", uuid::Uuid::now_v7())
    }
}

/// Stores the objects at the target edge (not measured).
pub async fn prime(target: &Target, objects: &Objects, host: &str, timeout: Duration) {
    for path in [&objects.hit, &objects.revalidate, &objects.strict] {
        let _ = timed_get(target.link, target.client, host, path, timeout).await;
    }
}

/// `rounds` rounds of one hit, one miss, one revalidation and one strict
/// revalidation against the target.
pub async fn measure(
    target: &Target,
    objects: &Objects,
    host: &str,
    rounds: u64,
    timeout: Duration,
    progress: &ProgressBar,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    for _ in 0..rounds {
        let miss = Objects::miss();
        for path in [&objects.hit, &miss, &objects.revalidate, &objects.strict] {
            samples.push(timed_get(target.link, target.client, host, path, timeout).await);
            progress.inc(1);
        }
    }
    samples
}
