//! Edges that follow a bus-backed purge log (NATS JetStream) directly
//! instead of through a control session: their heartbeats, per-record
//! acknowledgements and the log's own per-edge progress (the consumers'
//! state) feed the same registry and tracker as sessions do, so that the
//! purge answer, `GET /_purge/status/<id>`, `GET /_edges` and dry runs work
//! the same on both backends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgecache::purge::{EdgeDirectory, EdgeEvent, EdgeInfo, EdgeProgress};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{MissedTickBehavior, interval};

use super::Control;
use super::registry::{EdgeIdentity, Membership, SessionCmd};

/// How often the log's per-edge progress is read.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// An edge with no heartbeat for this long is unreachable.
const SILENCE_LIMIT: Duration = Duration::from_secs(5);

/// How long an edge has to answer a dry run.
const DRY_RUN_WITHIN: Duration = Duration::from_secs(5);

/// One edge as this follower tracks it.
struct Member {
    session: u64,
    identity: EdgeIdentity,
    last_heard: Instant,
    connected: bool,
    forwarder: JoinHandle<()>,
}

impl Drop for Member {
    fn drop(&mut self) {
        self.forwarder.abort();
    }
}

fn identity(edge: EdgeInfo) -> EdgeIdentity {
    EdgeIdentity {
        id: edge.id,
        region: edge.region,
        address: edge.address,
    }
}

/// Follows the edges of `directory` until its event channel closes.
pub(crate) async fn follow(ctx: Arc<Control>, directory: Arc<dyn EdgeDirectory>) {
    let mut events = directory.events();
    let mut members: HashMap<String, Member> = HashMap::new();
    // The log's per-edge progress is read on its own task: a slow answer
    // (a cluster electing leaders) must not hold up heartbeats.
    let (progress_tx, mut progress_rx) = mpsc::channel(1);
    let poller = tokio::spawn(poll_progress(Arc::clone(&directory), progress_tx));
    let _poller = AbortOnDrop(poller);
    let mut silence = interval(POLL_EVERY);
    silence.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(e) => {
                    tracing::trace!(event = ?e, "control: bus event");
                    on_event(&ctx, &directory, &mut members, e);
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "control: edge events lagged; the next poll catches up");
                }
                Err(RecvError::Closed) => return,
            },
            Some(progress) = progress_rx.recv() => {
                for p in progress {
                    progressed(&ctx, &directory, &mut members, p);
                }
            }
            _ = silence.tick() => {
                for (id, member) in &mut members {
                    if member.connected && member.last_heard.elapsed() > SILENCE_LIMIT {
                        member.connected = false;
                        ctx.registry.leave(id, member.session);
                        tracing::info!(edge = %id, "control: edge silent on the purge bus");
                    }
                }
            }
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads the per-edge progress every [`POLL_EVERY`] and sends it on.
async fn poll_progress(directory: Arc<dyn EdgeDirectory>, tx: mpsc::Sender<Vec<EdgeProgress>>) {
    loop {
        match directory.progress().await {
            Ok(progress) => {
                if tx.send(progress).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::debug!(error = %e, "control: cannot read the edges' progress"),
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

fn on_event(
    ctx: &Arc<Control>,
    directory: &Arc<dyn EdgeDirectory>,
    members: &mut HashMap<String, Member>,
    event: EdgeEvent,
) {
    match event {
        EdgeEvent::Heartbeat { edge, applied } => {
            heartbeat(ctx, directory, members, identity(edge), applied);
        }
        EdgeEvent::Applied {
            edge_id,
            seq,
            affected,
        } => {
            ctx.tracker.ack(seq, &edge_id, affected);
            if let Some(member) = members.get_mut(&edge_id) {
                member.last_heard = Instant::now();
                ctx.registry.heard(&edge_id, member.session);
                ctx.registry.applied(&edge_id, member.session, seq);
            }
        }
    }
}

/// Registers `identity` (again), forwarding its dry runs to the bus.
fn join(
    ctx: &Arc<Control>,
    directory: &Arc<dyn EdgeDirectory>,
    identity: EdgeIdentity,
    applied: u64,
) -> Member {
    let Membership {
        session, mut cmds, ..
    } = ctx.registry.join(identity.clone(), applied);
    let (ctx2, directory, id) = (Arc::clone(ctx), Arc::clone(directory), identity.id.clone());
    let forwarder = tokio::spawn(async move {
        while let Some(SessionCmd::DryRun { request, selector }) = cmds.recv().await {
            let (ctx, directory, id) = (Arc::clone(&ctx2), Arc::clone(&directory), id.clone());
            tokio::spawn(async move {
                match directory.dry_run(&id, selector, DRY_RUN_WITHIN).await {
                    Ok(Some(affected)) => ctx.dry_runs.deliver(request, &id, affected),
                    Ok(None) => tracing::debug!(edge = %id, "control: no dry-run answer"),
                    Err(e) => tracing::debug!(edge = %id, error = %e, "control: dry run failed"),
                }
            });
        }
    });
    Member {
        session,
        identity,
        last_heard: Instant::now(),
        connected: true,
        forwarder,
    }
}

fn heartbeat(
    ctx: &Arc<Control>,
    directory: &Arc<dyn EdgeDirectory>,
    members: &mut HashMap<String, Member>,
    identity: EdgeIdentity,
    applied: u64,
) {
    let id = identity.id.clone();
    match members.get_mut(&id) {
        Some(member)
            if member.connected
                && member.identity.region == identity.region
                && member.identity.address == identity.address =>
        {
            member.last_heard = Instant::now();
            ctx.registry.heard(&id, member.session);
            ctx.registry.applied(&id, member.session, applied);
        }
        _ => {
            tracing::info!(edge = %id, region = %identity.region, address = %identity.address,
                applied, "control: edge follows the purge bus");
            let member = join(ctx, directory, identity, applied);
            members.insert(id, member);
        }
    }
}

fn progressed(
    ctx: &Arc<Control>,
    directory: &Arc<dyn EdgeDirectory>,
    members: &mut HashMap<String, Member>,
    progress: EdgeProgress,
) {
    let id = progress.edge.id.clone();
    match members.get(&id) {
        Some(member) => ctx.registry.applied(&id, member.session, progress.applied),
        None => {
            // Known to the log but silent: listed, unreachable.
            let mut member = join(ctx, directory, identity(progress.edge), progress.applied);
            member.connected = false;
            ctx.registry.leave(&id, member.session);
            members.insert(id, member);
        }
    }
}
