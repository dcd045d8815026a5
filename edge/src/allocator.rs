//! Handing the memory the allocator holds free back to the OS once fills
//! stop.
//!
//! mimalloc (the edge's global allocator) keeps freed pages for a short
//! purge delay and purges them on the owning thread's later allocations.
//! A burst of fills frees a lot at once (each body arrives in the origin
//! connection's read buffers, which are free once it is stored); a node
//! that then goes quiet would keep all of that resident until traffic
//! resumed (0.06-0.17 x N for 256 KiB objects in the benchmark's memory
//! check). While fills go on, mimalloc's own delayed purge is the right
//! pace: returning pages that the next fill faults back in would only cost.
//! Fills are counted where they start, by the node's `origin_fetches`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::state::EdgeState;

/// How often the task looks; fills have stopped when a whole period
/// started none.
const EVERY: Duration = Duration::from_millis(250);

/// Until shutdown: when a period after some origin fetches started none,
/// returns mimalloc's free pages to the OS, once. A pure hit load fetches
/// nothing and is never interrupted. On a multi-thread runtime this reaches the
/// heap of the thread the task runs on; the other workers' free pages go
/// back on their own next allocations, as before.
pub async fn release_after_fills(state: Arc<EdgeState>, shutdown: watch::Receiver<bool>) {
    after_fills_stop(&state.counters.origin_fetches, shutdown, || {
        let started = Instant::now();
        release_free_memory();
        tracing::debug!(
            took_us = started.elapsed().as_micros() as u64,
            "fills stopped: free memory returned to the OS"
        );
    })
    .await;
}

/// Calls `release` once each time `fills` stops moving for a period after
/// it moved, until shutdown.
async fn after_fills_stop(
    fills: &AtomicU64,
    mut shutdown: watch::Receiver<bool>,
    mut release: impl FnMut(),
) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = fills.load(Ordering::Relaxed);
    let mut filled = false;
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tick.tick() => {
                let now = fills.load(Ordering::Relaxed);
                if now != seen {
                    seen = now;
                    filled = true;
                } else if filled {
                    filled = false;
                    release();
                }
            }
        }
    }
}

/// Asks mimalloc to return the pages it holds free to the OS now.
pub fn release_free_memory() {
    // SAFETY: mi_collect takes no pointers and may be called from any
    // thread at any time; where mimalloc is not the global allocator
    // (tests), it collects mimalloc's own, empty, heap.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test(start_paused = true)]
    async fn releases_once_each_time_stores_stop_and_ends_on_shutdown() {
        let fills = Arc::new(AtomicU64::new(0));
        let releases = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn({
            let (fills, releases) = (fills.clone(), releases.clone());
            async move {
                after_fills_stop(&fills, rx, || {
                    releases.fetch_add(1, Ordering::Relaxed);
                })
                .await;
            }
        });
        let count = || releases.load(Ordering::Relaxed);
        tokio::time::sleep(EVERY * 4).await;
        assert_eq!(count(), 0, "no fills, nothing released");
        for _ in 0..12 {
            fills.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(EVERY / 2).await;
        }
        assert_eq!(count(), 0, "not while fills go on");
        tokio::time::sleep(EVERY * 3).await;
        assert_eq!(count(), 1, "once after they stop");
        tokio::time::sleep(EVERY * 8).await;
        assert_eq!(count(), 1, "and not again while quiet");
        fills.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(EVERY * 3).await;
        assert_eq!(count(), 2, "again after the next fill");
        tx.send(true).expect("task listening");
        tokio::time::timeout(EVERY * 4, task)
            .await
            .expect("the task ends on shutdown")
            .expect("no panic");
    }
}
