//! Purge at the edge: the control client that follows the origin's purge
//! log, the indexes that find what a purge selects, applying it (hard, soft
//! or dry run), and the edge-local admin endpoint.

pub mod admin;
pub mod apply;
pub mod backoff;
pub mod bus;
pub mod client;
pub mod index;
pub mod link;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::state::EdgeState;

pub use link::ControlLink;

/// How often the index is checked for entries whose object left unnoticed.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// Keeps the purge index bounded until shutdown: moka's eviction listener
/// removes most entries; this catches the rest.
pub async fn maintain(state: Arc<EdgeState>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tick.tick() => {
                state.store.sync().await;
                let pruned = apply::prune(&state.store);
                if pruned > 0 {
                    tracing::debug!(pruned, "purge index pruned");
                }
            }
        }
    }
}
