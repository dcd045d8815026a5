//! Following a bus-backed purge log (`[purge] backend = "nats"`) instead of
//! the origin's control listener: the same apply, acknowledgement and
//! `max_purge_lag` bookkeeping as the control client, driven by a
//! [`PurgeSource`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use edgecache::purge::nats::{NatsSettings, NatsSource};
use edgecache::purge::{EdgeInfo, PurgeSource, SourceEvent};
use tokio::sync::watch;

use super::apply::{Action, apply, drop_all};
use super::backoff::Backoff;
use super::client::apply_record;
use crate::state::EdgeState;

/// Follows the purge log on NATS until shutdown, re-opening the source
/// (with backoff and jitter) when it fails.
pub async fn run(
    state: Arc<EdgeState>,
    settings: NatsSettings,
    public_addr: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let link = &state.control;
    let edge = EdgeInfo {
        id: link.resolve_id(&state.config.name, public_addr).to_string(),
        region: link.region.clone(),
        address: public_addr.to_string(),
    };
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let opened = tokio::select! {
            _ = shutdown.changed() => break,
            opened = NatsSource::open(&settings, edge.clone(), link.last_applied(), link.cache_since_ms) => opened,
        };
        match opened {
            Ok(mut source) => {
                let ended = tokio::select! {
                    _ = shutdown.changed() => break,
                    ended = follow(&state, &mut source, &mut backoff) => ended,
                };
                tracing::warn!(error = %ended, "purge bus source failed; reopening");
                link.set_error(Some(ended.to_string()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot follow the purge bus");
                link.set_error(Some(e.to_string()));
            }
        }
        link.set_connected(false);
        let delay = backoff.next_delay();
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    link.set_connected(false);
}

/// Handles the source's events until it fails.
async fn follow(
    state: &Arc<EdgeState>,
    source: &mut NatsSource,
    backoff: &mut Backoff,
) -> edgecache::purge::PurgeLogError {
    let link = &state.control;
    loop {
        let event = match source.next().await {
            Ok(event) => event,
            Err(e) => return e,
        };
        let result = match event {
            SourceEvent::Contact { head_seq } => {
                if !link.is_connected() {
                    tracing::info!(
                        head_seq,
                        applied = link.last_applied(),
                        "joined the purge bus"
                    );
                }
                link.touch();
                link.set_connected(true);
                link.set_error(None);
                link.set_head_seq(head_seq.max(link.last_applied()));
                backoff.reset();
                Ok(())
            }
            SourceEvent::Lost { reason } => {
                if link.is_connected() {
                    tracing::warn!(%reason, "purge bus out of reach");
                }
                link.set_connected(false);
                link.set_error(Some(reason));
                Ok(())
            }
            SourceEvent::Record(record) => {
                link.touch();
                let affected = apply_record(state, &record).await;
                source.applied(record.seq, affected).await
            }
            SourceEvent::Advance { up_to_seq } => {
                link.touch();
                link.set_last_applied(up_to_seq.max(link.last_applied()));
                Ok(())
            }
            SourceEvent::Reset { up_to_seq, reason } => {
                link.touch();
                let affected = drop_all(&state.store);
                tracing::warn!(up_to_seq, %reason, affected, "purge bus reset: cache dropped");
                link.set_last_applied(up_to_seq.max(link.last_applied()));
                Ok(())
            }
            SourceEvent::DryRun { request, selector } => {
                let affected = apply(&state.store, &selector, Action::DryRun).await;
                source.dry_run_result(request, affected).await
            }
        };
        if let Err(e) = result {
            return e;
        }
    }
}
