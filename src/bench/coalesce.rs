//! `edgecache bench coalesce`: a cold key asked for by many clients at the
//! same moment. Reports how many requests reached the origin and how the
//! answers spread after the origin's: the first client's answer marks when
//! the origin's reached the edge, the last shows how long the waiters
//! behind it took.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::client::{self, fmt_us};
use super::node_command;
use crate::lab::{NodeProcess, sibling_binary};

/// Flags of `edgecache bench coalesce`.
#[derive(Debug, clap::Args)]
pub struct CoalesceArgs {
    /// Concurrent clients, each on its own connection.
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// Body size of the cold object, bytes (at or above the edge's stream
    /// threshold, 64 KiB, the waiters are served as the body streams in).
    #[arg(long, default_value_t = 1024)]
    pub size: u64,
    /// How long the origin waits before answering, milliseconds.
    #[arg(long, default_value_t = 100)]
    pub origin_delay_ms: u64,
    /// Rounds, each with a new cold key.
    #[arg(long, default_value_t = 5)]
    pub rounds: u32,
    /// CPUs the edge is pinned to (taskset -c).
    #[arg(long, default_value = "0")]
    pub edge_cpus: String,
    /// CPUs the clients run on, one thread (a list like `1` or `1-3`;
    /// keep them off the edge's, or the clients measure themselves).
    #[arg(long, default_value = "1")]
    pub client_cpus: String,
    /// Write the rounds as JSON.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// One round's figures.
#[derive(Debug, Clone, Serialize)]
pub struct CoalesceRound {
    /// Round number, from 1.
    pub round: u32,
    /// Requests for the cold key that reached the origin.
    pub origin_requests: u64,
    /// Clients answered 200 with the whole body.
    pub answered: usize,
    /// Clients that got anything else (error, short body, timeout).
    pub failed: usize,
    /// From sending to the first complete answer, microseconds.
    pub first_us: f64,
    /// From sending to the last complete answer, microseconds.
    pub last_us: f64,
    /// Last answer minus first answer: the spread after the origin's.
    pub spread_us: f64,
    /// Median answer minus first answer.
    pub spread_p50_us: f64,
}

/// Runs the benchmark: an origin, one edge, `clients` connections.
pub async fn run(args: CoalesceArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=20_000).contains(&args.clients),
        "--clients must be 1..=20000"
    );
    anyhow::ensure!((1..=100).contains(&args.rounds), "--rounds must be 1..=100");
    raise_open_files(args.clients as u64 + 256);
    let client_cpus = parse_cpu_list(&args.client_cpus)?;
    let origin_bin = sibling_binary("origin")?;
    let edge_bin = sibling_binary("edge")?;
    super::warn_if_debug(&edge_bin);
    let origin_ip = Ipv4Addr::new(127, 0, 66, 1);
    let edge_ip = Ipv4Addr::new(127, 0, 66, 2);
    let (program, mut origin_args) = node_command(None);
    origin_args.extend([
        origin_bin.display().to_string(),
        "--listen".into(),
        format!("{origin_ip}:0"),
    ]);
    let mut origin = NodeProcess::spawn("origin", &program, &origin_args, &["http"])?;
    let origin_addr = origin.addr("http").context("origin address")?;
    let (program, mut edge_args) = node_command(Some(&args.edge_cpus));
    edge_args.extend([
        edge_bin.display().to_string(),
        "--origin".into(),
        format!("http://{origin_addr}"),
        "--listen".into(),
        format!("{edge_ip}:0"),
        "--admin-listen".into(),
        format!("{edge_ip}:0"),
    ]);
    let mut edge = NodeProcess::spawn("edge", &program, &edge_args, &["http", "admin"])?;
    // The clients get a thread of their own on their own CPUs: on the
    // runtime that started the nodes they could run next to the edge.
    let result = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                pin_current_thread(&client_cpus)?;
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("building the clients' runtime")?
                    .block_on(measure(&args, &edge, origin_addr))
            })
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the clients' thread panicked")))
    });
    edge.stop(Duration::from_secs(3));
    origin.stop(Duration::from_secs(3));
    let rounds = result?;
    print(&args, &rounds);
    if let Some(path) = &args.json {
        super::write_json(path, &rounds)?;
    }
    Ok(())
}

async fn measure(
    args: &CoalesceArgs,
    edge: &NodeProcess,
    origin: SocketAddr,
) -> anyhow::Result<Vec<CoalesceRound>> {
    let addr = edge.addr("http").context("edge address")?;
    let mut rounds = Vec::new();
    for round in 1..=args.rounds {
        // New connections each round: a connection that failed last round
        // must not count against this one. Raw sockets and a minimal reader
        // keep the client's own cost per answer small: with 1,000 answers
        // arriving together, a heavier client would measure itself.
        let mut streams = Vec::with_capacity(args.clients);
        for _ in 0..args.clients {
            let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
                .await
                .context("connecting to the edge: timed out")?
                .context("connecting to the edge")?;
            stream.set_nodelay(true)?;
            streams.push(stream);
        }
        let path = format!(
            "/_gen/{}/cold-{}-{round}?ttl=600&delay_ms={}",
            args.size,
            std::process::id(),
            args.origin_delay_ms
        );
        let before = origin_count(origin, &path).await?;
        let (go_tx, go_rx) = tokio::sync::watch::channel(false);
        let request: Arc<[u8]> = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n")
            .into_bytes()
            .into();
        let size = args.size;
        let mut tasks = tokio::task::JoinSet::new();
        for mut stream in streams {
            let mut go = go_rx.clone();
            let request = request.clone();
            // Allocated before the start: the answers are read into it
            // without zeroing or growing it.
            let mut buf = Vec::with_capacity(size as usize + 4096);
            tasks.spawn(async move {
                let _ = go.wait_for(|go| *go).await;
                let answer = async {
                    stream.write_all(&request).await.ok()?;
                    read_answer(&mut stream, &mut buf, size).await
                };
                tokio::time::timeout(Duration::from_secs(30), answer)
                    .await
                    .ok()
                    .flatten()
            });
        }
        // Let every task reach the wait before the start.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        go_tx.send_replace(true);
        let mut done: Vec<f64> = Vec::with_capacity(args.clients);
        let mut failed = 0;
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Some(at)) => done.push(at.duration_since(started).as_secs_f64() * 1e6),
                _ => failed += 1,
            }
        }
        done.sort_by(f64::total_cmp);
        let after = origin_count(origin, &path).await?;
        let first = done.first().copied().unwrap_or(0.0);
        let last = done.last().copied().unwrap_or(0.0);
        let median = done.get(done.len() / 2).copied().unwrap_or(0.0);
        let r = CoalesceRound {
            round,
            origin_requests: after.saturating_sub(before),
            answered: done.len(),
            failed,
            first_us: first,
            last_us: last,
            spread_us: last - first,
            spread_p50_us: median - first,
        };
        println!(
            "round {round}: {} answered, {} failed, {} origin request(s); first {} last {} (spread {})",
            r.answered,
            r.failed,
            r.origin_requests,
            fmt_us(r.first_us),
            fmt_us(r.last_us),
            fmt_us(r.spread_us)
        );
        rounds.push(r);
    }
    Ok(rounds)
}

/// Reads one HTTP/1.1 answer; the instant it was complete, when it was a
/// 200 with a `size`-byte body.
async fn read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>, size: u64) -> Option<Instant> {
    let mut head_len = None;
    // Bounded: the head is at most 64 KiB and the body `size` bytes.
    while buf.len() < 64 * 1024 + size as usize {
        if buf.len() == buf.capacity() {
            buf.reserve(16 * 1024);
        }
        let n = stream.read_buf(buf).await.ok()?;
        if n == 0 {
            return None;
        }
        if head_len.is_none() {
            head_len = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
        }
        if let Some(head) = head_len {
            if buf.len() as u64 >= head as u64 + size {
                let ok = buf.starts_with(b"HTTP/1.1 200 ")
                    && content_length(&buf[..head]) == Some(size)
                    && buf.len() as u64 == head as u64 + size;
                return ok.then(Instant::now);
            }
        }
    }
    None
}

/// The Content-Length of a response head.
fn content_length(head: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(head).ok()?;
    text.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

/// Requests the origin has counted for `path` (its `/_stats` by path).
async fn origin_count(origin: SocketAddr, path: &str) -> anyhow::Result<u64> {
    let stats = client::get_json(origin, "/_stats").await?;
    let bare = path.split('?').next().unwrap_or(path);
    let by_path = &stats["by_path"];
    Ok(by_path[path]
        .as_u64()
        .or(by_path[bare].as_u64())
        .unwrap_or(0))
}

fn print(args: &CoalesceArgs, rounds: &[CoalesceRound]) {
    let mut spreads: Vec<f64> = rounds.iter().map(|r| r.spread_us).collect();
    spreads.sort_by(f64::total_cmp);
    let median = spreads.get(spreads.len() / 2).copied().unwrap_or(0.0);
    let worst = spreads.last().copied().unwrap_or(0.0);
    let origin: u64 = rounds.iter().map(|r| r.origin_requests).sum();
    let failed: usize = rounds.iter().map(|r| r.failed).sum();
    println!(
        "\n{} clients x {} rounds, {} B object, origin answers after {} ms",
        args.clients,
        rounds.len(),
        args.size,
        args.origin_delay_ms
    );
    println!(
        "origin requests: {origin} over {} rounds; failed clients: {failed}",
        rounds.len()
    );
    println!(
        "last answer after the first (the origin's): median {}, worst {}",
        fmt_us(median),
        fmt_us(worst)
    );
}

/// Parses a CPU list as taskset takes it: `1`, `0,2`, `1-3`.
fn parse_cpu_list(list: &str) -> anyhow::Result<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("--client-cpus: {part:?} is not a CPU or a range like 1-3");
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.parse().with_context(bad)?, b.parse().with_context(bad)?),
            None => {
                let cpu: usize = part.parse().with_context(bad)?;
                (cpu, cpu)
            }
        };
        anyhow::ensure!(first <= last && last < 1024, "{}", bad());
        cpus.extend(first..=last);
    }
    anyhow::ensure!(!cpus.is_empty(), "--client-cpus names no CPU");
    Ok(cpus)
}

/// Pins the calling thread to `cpus`.
fn pin_current_thread(cpus: &[usize]) -> anyhow::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET stays within
    // it for CPUs below CPU_SETSIZE (checked); sched_setaffinity reads the
    // set for the calling thread (pid 0).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            anyhow::ensure!(
                cpu < libc::CPU_SETSIZE as usize,
                "CPU {cpu} is out of range"
            );
            libc::CPU_SET(cpu, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            let err = std::io::Error::last_os_error();
            anyhow::bail!("pinning the clients to CPUs {cpus:?}: {err}");
        }
    }
    Ok(())
}

/// Raises the soft limit on open files towards `want` (one per client
/// connection), within the hard limit.
fn raise_open_files(want: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid resource and a pointer to a
    // live rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < want {
            limit.rlim_cur = want.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{content_length, parse_cpu_list};

    #[test]
    fn cpu_lists_are_read_like_taskset() {
        assert_eq!(parse_cpu_list("1").unwrap(), [1]);
        assert_eq!(parse_cpu_list("0,2-3").unwrap(), [0, 2, 3]);
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("x").is_err());
        assert!(parse_cpu_list("").is_err());
    }

    #[test]
    fn content_length_is_read_case_blind() {
        let head = b"HTTP/1.1 200 OK\r\ncontent-type: x\r\nContent-Length: 1024\r\n\r\n";
        assert_eq!(content_length(head), Some(1024));
        assert_eq!(content_length(b"HTTP/1.1 200 OK\r\n\r\n"), None);
    }
}
