//! The control client: one long-lived connection to the origin's control
//! listener. It says Hello, applies every purge record in order (once:
//! sequence numbers at or below the last applied are only acknowledged),
//! acknowledges each, answers dry runs, and exchanges heartbeats. A silent
//! link is declared dead and the client reconnects with backoff and jitter.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgecache::purge::PurgeRecord;
use edgecache::wire::{ControlFrame, WireError, read_frame, write_frame};
use tokio::io::BufReader;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::apply::{Action, apply, drop_all};
use super::backoff::Backoff;
use crate::state::EdgeState;

/// Interval between our heartbeats.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// Silence after which the link counts as dead.
pub const DEAD_AFTER: Duration = Duration::from_secs(5);
/// Longest wait for the TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for one frame to be written.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a control session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The TCP connection could not be made.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The control address.
        addr: String,
        /// What failed.
        reason: String,
    },
    /// A frame could not be read or written (including a malformed frame).
    #[error("control link: {0}")]
    Wire(#[from] WireError),
    /// Nothing arrived for [`DEAD_AFTER`].
    #[error("control link silent for {0:?}: dead")]
    Dead(Duration),
    /// A write did not complete in time.
    #[error("control link: write timed out")]
    WriteTimeout,
    /// The control plane sent an Error frame.
    #[error("control plane refused: {0}")]
    Refused(String),
    /// A frame that makes no sense here.
    #[error("control protocol: {0}")]
    Protocol(String),
}

/// Aborts the reader task when the session ends.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Follows the control plane at `addr` until shutdown, reconnecting as needed.
pub async fn run(
    state: Arc<EdgeState>,
    addr: String,
    public_addr: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        let mut welcomed = false;
        let ended = tokio::select! {
            _ = shutdown.changed() => break,
            ended = session(&state, &addr, public_addr, &mut welcomed) => ended,
        };
        state.control.set_connected(false);
        if welcomed {
            backoff.reset();
        }
        if let Err(e) = ended {
            tracing::warn!(control = %addr, error = %e, "purge control link down");
            state.control.set_error(Some(e.to_string()));
        }
        let delay = backoff.next_delay();
        tracing::debug!(control = %addr, ?delay, "reconnecting to the control plane");
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    state.control.set_connected(false);
}

/// One connection: Hello, then frames until it fails or goes silent.
async fn session(
    state: &Arc<EdgeState>,
    addr: &str,
    public_addr: SocketAddr,
    welcomed: &mut bool,
) -> Result<(), SessionError> {
    let connect_err = |reason: String| SessionError::Connect {
        addr: addr.to_string(),
        reason,
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| connect_err("timed out".into()))?
        .map_err(|e| connect_err(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    // Reads run on their own task so that a frame is never cut in half by
    // the select below; frames arrive here in order.
    let (tx, mut rx) = mpsc::channel::<Result<ControlFrame, WireError>>(64);
    let _reader = AbortOnDrop(tokio::spawn(async move {
        let mut read = BufReader::new(read);
        loop {
            let frame = read_frame(&mut read).await;
            let end = frame.is_err();
            if tx.send(frame).await.is_err() || end {
                break;
            }
        }
    }));
    let link = &state.control;
    let hello = ControlFrame::Hello {
        edge_id: link.resolve_id(&state.config.name, public_addr).to_string(),
        region: link.region.clone(),
        public_addr: public_addr.to_string(),
        last_applied: link.last_applied(),
        cache_since_ms: link.cache_since_ms,
    };
    send(&mut write, &hello).await?;
    let mut heartbeat = tokio::time::interval(HEARTBEAT_EVERY);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_frame = Instant::now();
    loop {
        tokio::select! {
            frame = rx.recv() => {
                let frame = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(e)) => {
                        if matches!(e, WireError::Version(_) | WireError::TooLarge(_) | WireError::Decode(_)) {
                            let reason = format!("bad frame: {e}");
                            let _ = send(&mut write, &ControlFrame::Error { reason }).await;
                        }
                        return Err(e.into());
                    }
                    None => return Err(WireError::Closed.into()),
                };
                last_frame = Instant::now();
                link.touch();
                handle(state, &mut write, frame, welcomed).await?;
            }
            _ = heartbeat.tick() => {
                let silent = last_frame.elapsed();
                if silent > DEAD_AFTER {
                    return Err(SessionError::Dead(silent));
                }
                let beat = ControlFrame::Heartbeat {
                    at_ms: edgecache::purge::now_ms(),
                    seq: link.last_applied(),
                };
                send(&mut write, &beat).await?;
            }
        }
    }
}

/// Acts on one frame from the control plane.
async fn handle(
    state: &Arc<EdgeState>,
    write: &mut OwnedWriteHalf,
    frame: ControlFrame,
    welcomed: &mut bool,
) -> Result<(), SessionError> {
    let link = &state.control;
    match frame {
        ControlFrame::Welcome {
            head_seq,
            oldest_seq,
        } => {
            tracing::info!(
                head_seq,
                oldest_seq,
                applied = link.last_applied(),
                "joined the purge control plane"
            );
            link.set_head_seq(head_seq);
            link.set_connected(true);
            link.set_error(None);
            *welcomed = true;
        }
        ControlFrame::Heartbeat { seq, .. } => link.set_head_seq(seq),
        ControlFrame::Error { reason } => return Err(SessionError::Refused(reason)),
        _ if !*welcomed => {
            return Err(SessionError::Protocol(format!(
                "{} before Welcome",
                frame.name()
            )));
        }
        ControlFrame::Record(record) => {
            let affected = apply_record(state, &record).await;
            let applied = ControlFrame::Applied {
                seq: record.seq,
                affected,
            };
            send(write, &applied).await?;
        }
        ControlFrame::ResetCache { up_to_seq, reason } => {
            let affected = drop_all(&state.store);
            tracing::warn!(up_to_seq, %reason, affected, "control plane reset: cache dropped");
            // Exactly `up_to_seq`, even when lower: the log may have been
            // replaced, and its sequence numbers start over.
            link.set_last_applied(up_to_seq);
            if up_to_seq > 0 {
                let applied = ControlFrame::Applied {
                    seq: up_to_seq,
                    affected,
                };
                send(write, &applied).await?;
            }
        }
        ControlFrame::DryRun { request, selector } => {
            let affected = apply(&state.store, &selector, Action::DryRun).await;
            send(write, &ControlFrame::DryRunResult { request, affected }).await?;
        }
        other @ (ControlFrame::Hello { .. }
        | ControlFrame::Applied { .. }
        | ControlFrame::DryRunResult { .. }) => {
            return Err(SessionError::Protocol(format!(
                "unexpected {} from the control plane",
                other.name()
            )));
        }
    }
    Ok(())
}

/// Applies a record unless it was applied before; returns what it affected.
pub(crate) async fn apply_record(state: &EdgeState, record: &PurgeRecord) -> u64 {
    let link = &state.control;
    let last = link.last_applied();
    if record.seq <= last {
        tracing::debug!(seq = record.seq, last, "purge already applied");
        return 0;
    }
    if last > 0 && record.seq > last + 1 {
        tracing::warn!(
            seq = record.seq,
            last,
            "purge sequence gap: records in between were never received"
        );
    }
    let affected = apply(
        &state.store,
        &record.selector,
        Action::from_soft(record.soft),
    )
    .await;
    link.set_last_applied(record.seq);
    tracing::info!(
        seq = record.seq,
        id = %record.id,
        soft = record.soft,
        affected,
        "purge applied"
    );
    affected
}

async fn send(write: &mut OwnedWriteHalf, frame: &ControlFrame) -> Result<(), SessionError> {
    tokio::time::timeout(WRITE_TIMEOUT, write_frame(write, frame))
        .await
        .map_err(|_| SessionError::WriteTimeout)?
        .map_err(SessionError::Wire)
}
