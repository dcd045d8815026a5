//! One proxied connection: two directions, each a reader that stamps chunks
//! with a release time and a writer that delivers them no earlier, in order,
//! through a bounded channel (backpressure), obeying the link's mode.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::debug;

use super::Mode;
use super::link::Shared;

/// Largest chunk read at once.
const CHUNK_SIZE: usize = 16 * 1024;
/// Chunks in flight per direction: at most 1 MiB is buffered each way.
const CHANNEL_CHUNKS: usize = 64;
/// How long to wait for the upstream to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Data read from one side, or its end (`None`), to deliver at `release`.
struct Chunk {
    data: Option<Bytes>,
    release: Instant,
}

/// Why a connection ended early.
#[derive(Debug)]
enum End {
    /// Reset both sides (mode, reset-mid-stream, or an I/O error).
    Reset,
    /// The link shut down: just close.
    Shutdown,
}

/// Which way a writer delivers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Direction {
    ToUpstream,
    ToClient,
}

/// Counts an open connection for as long as it lives.
struct OpenGuard<'a>(&'a AtomicU64);

impl<'a> OpenGuard<'a> {
    fn new(open: &'a AtomicU64) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        OpenGuard(open)
    }
}

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Closes `stream` with a RST instead of a FIN once it is dropped
/// (`SO_LINGER` 0; this never blocks).
pub(crate) fn reset(stream: &TcpStream) {
    if let Err(e) = stream.set_zero_linger() {
        debug!(error = %e, "cannot set SO_LINGER 0");
    }
}

/// Proxies one accepted connection until both sides are done, an error, a
/// reset or the link's shutdown.
pub(crate) async fn serve_connection(mut client: TcpStream, shared: Arc<Shared>) {
    let _open = OpenGuard::new(&shared.counters.open);
    if let Err(e) = client.set_nodelay(true) {
        debug!(link = %shared.name, error = %e, "cannot set TCP_NODELAY");
    }
    let mut upstream = None;
    let result = proxy(&mut client, &mut upstream, &shared).await;
    debug!(link = %shared.name, ?result, "connection ended");
    if let Err(End::Reset) = result {
        reset(&client);
        if let Some(upstream) = &upstream {
            reset(upstream);
        }
    }
}

async fn proxy(
    client: &mut TcpStream,
    upstream: &mut Option<TcpStream>,
    shared: &Shared,
) -> Result<(), End> {
    let mut closed = shared.closed.subscribe();
    let mut refuse = shared.mode.subscribe();
    let (client_read, client_write) = client.split();
    let (to_upstream_tx, to_upstream_rx) = mpsc::channel(CHANNEL_CHUNKS);
    let (to_client_tx, to_client_rx) = mpsc::channel(CHANNEL_CHUNKS);
    // The client side is read from the start, even while blackholed, so a
    // client's close is noticed; the channel bounds what is held.
    let from_client = read_side(client_read, to_upstream_tx, shared);
    let rest = async {
        wait_forwarding(shared).await?;
        let stream = connect_upstream(shared).await?;
        let (upstream_read, upstream_write) = upstream.insert(stream).split();
        tokio::try_join!(
            write_side(
                upstream_write,
                to_upstream_rx,
                shared,
                Direction::ToUpstream
            ),
            read_side(upstream_read, to_client_tx, shared),
            write_side(client_write, to_client_rx, shared, Direction::ToClient),
        )
        .map(|_| ())
    };
    tokio::select! {
        result = async { tokio::try_join!(from_client, rest).map(|_| ()) } => result,
        _ = refuse.wait_for(|s| s.mode == Mode::Refuse) => Err(End::Reset),
        _ = closed.wait_for(|c| *c) => Err(End::Shutdown),
    }
}

/// Waits until the mode lets data through; `Refuse` resets.
async fn wait_forwarding(shared: &Shared) -> Result<Mode, End> {
    let mut mode = shared.mode.subscribe();
    let state = *mode
        .wait_for(|s| s.mode != Mode::Blackhole)
        .await
        .map_err(|_| End::Shutdown)?;
    if state.mode == Mode::Refuse {
        return Err(End::Reset);
    }
    Ok(state.mode)
}

async fn connect_upstream(shared: &Shared) -> Result<TcpStream, End> {
    let addr = shared.upstream;
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            debug!(link = %shared.name, upstream = %addr, error = %e, "upstream connect failed");
            return Err(End::Reset);
        }
        Err(_) => {
            debug!(link = %shared.name, upstream = %addr, "upstream connect timed out");
            return Err(End::Reset);
        }
    };
    if let Err(e) = stream.set_nodelay(true) {
        debug!(link = %shared.name, error = %e, "cannot set TCP_NODELAY");
    }
    Ok(stream)
}

/// Reads one side into `tx`, stamping each chunk (and the end) with its
/// release time. Blocks on a full channel: that is the backpressure.
async fn read_side(
    mut reader: ReadHalf<'_>,
    tx: mpsc::Sender<Chunk>,
    shared: &Shared,
) -> Result<(), End> {
    let mut clock = ReleaseClock::new();
    loop {
        let mut buf = BytesMut::with_capacity(CHUNK_SIZE);
        let n = reader.read_buf(&mut buf).await.map_err(|e| {
            debug!(link = %shared.name, error = %e, "read failed");
            End::Reset
        })?;
        let (delay, jitter) = shared.delay();
        let release = clock.next(delay, jitter);
        let data = (n > 0).then(|| buf.freeze());
        if tx.send(Chunk { data, release }).await.is_err() || n == 0 {
            // The writer is gone (the connection is ending), or this side is done.
            return Ok(());
        }
    }
}

/// Delivers chunks from `rx` at their release time, holding them while the
/// link is blackholed, and resets per the mode.
async fn write_side(
    mut writer: WriteHalf<'_>,
    mut rx: mpsc::Receiver<Chunk>,
    shared: &Shared,
    direction: Direction,
) -> Result<(), End> {
    let mut mode = shared.mode.subscribe();
    let counter = match direction {
        Direction::ToUpstream => &shared.counters.to_upstream,
        Direction::ToClient => &shared.counters.to_client,
    };
    // Bytes delivered to the client in the current mode generation.
    let mut generation = None;
    let mut delivered_in_mode = 0u64;
    let io_error = |e: std::io::Error| {
        debug!(link = %shared.name, ?direction, error = %e, "write failed");
        End::Reset
    };
    while let Some(chunk) = rx.recv().await {
        if chunk.release > Instant::now() {
            tokio::time::sleep_until(chunk.release).await;
        }
        let state = *mode
            .wait_for(|s| s.mode != Mode::Blackhole)
            .await
            .map_err(|_| End::Shutdown)?;
        let Some(mut data) = chunk.data else {
            writer.shutdown().await.map_err(io_error)?;
            return Ok(());
        };
        let mut reset_after = false;
        match state.mode {
            Mode::Refuse => return Err(End::Reset),
            Mode::ResetMidStream { after_bytes } if direction == Direction::ToClient => {
                if generation != Some(state.generation) {
                    generation = Some(state.generation);
                    delivered_in_mode = 0;
                }
                let remaining = after_bytes.saturating_sub(delivered_in_mode);
                if data.len() as u64 >= remaining {
                    // `remaining` fits: it is at most `data.len()`.
                    data.truncate(usize::try_from(remaining).unwrap_or(data.len()));
                    reset_after = true;
                }
            }
            _ => {}
        }
        writer.write_all(&data).await.map_err(io_error)?;
        delivered_in_mode += data.len() as u64;
        counter.fetch_add(data.len() as u64, Ordering::Relaxed);
        if reset_after {
            debug!(link = %shared.name, delivered_in_mode, "reset mid-stream");
            return Err(End::Reset);
        }
    }
    Ok(())
}

/// Release times of one direction: read time + delay + jitter, never
/// earlier than the previous one (no reordering).
struct ReleaseClock {
    last: Instant,
    rng: u64,
}

impl ReleaseClock {
    fn new() -> Self {
        // RandomState is seeded randomly per instance: a cheap random seed.
        ReleaseClock {
            last: Instant::now(),
            rng: RandomState::new().hash_one(0u64),
        }
    }

    fn next(&mut self, delay: Duration, jitter: Duration) -> Instant {
        let jitter_nanos = u64::try_from(jitter.as_nanos()).unwrap_or(u64::MAX);
        let extra = match jitter_nanos {
            0 => 0,
            n => self.next_random() % n.saturating_add(1),
        };
        let release = (Instant::now() + delay + Duration::from_nanos(extra)).max(self.last);
        self.last = release;
        release
    }

    /// SplitMix64.
    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_times_are_delayed_and_ordered() {
        let mut clock = ReleaseClock::new();
        let start = Instant::now();
        let mut previous = start;
        for i in 0..200 {
            // Shrinking delays must not reorder.
            let delay = Duration::from_millis(200 - i);
            let release = clock.next(delay, Duration::from_millis(20));
            assert!(release >= previous);
            assert!(release >= start + delay);
            assert!(release <= Instant::now() + Duration::from_millis(400));
            previous = release;
        }
    }

    #[test]
    fn jitter_stays_in_range() {
        let mut clock = ReleaseClock::new();
        let jitter = Duration::from_millis(10);
        let mut saw_spread = false;
        let mut first = None;
        for _ in 0..100 {
            clock.last = Instant::now() - Duration::from_secs(1);
            let before = Instant::now();
            let release = clock.next(Duration::ZERO, jitter);
            assert!(release >= before);
            assert!(release <= Instant::now() + jitter);
            let offset = release - before;
            match first {
                None => first = Some(offset),
                Some(f) if f != offset => saw_spread = true,
                Some(_) => {}
            }
        }
        assert!(saw_spread, "jitter should vary");
    }
}
