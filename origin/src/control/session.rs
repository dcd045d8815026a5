//! One edge's session on the control connection: Hello, Welcome, catch-up,
//! then live records, heartbeats both ways, acknowledgements and dry runs.
//!
//! A bad frame, a wrong version or a silent peer ends this session only,
//! with a logged reason (and an Error frame when the link still works).

use edgecache::purge::now_ms;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use edgecache::purge::PurgeRecord;
use edgecache::wire::{self, ControlFrame, WireError, read_frame};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, interval, sleep_until, timeout};

use super::Control;
use super::catch_up::{self, EdgeProgress};
use super::registry::{EdgeIdentity, SessionCmd};

/// How long an edge has to send its Hello.
pub(crate) const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the origin sends a heartbeat.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

/// A session with no frame from the edge for this long is dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(5);

/// The longest a batch of frames may take to write.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Frames written per turn of the loop, so acks are read in between.
const BATCH: usize = 64;

/// Inbound frames handled per turn of the loop.
const INBOUND_PER_TURN: usize = 256;

/// Above this many queued frames, live records are left in the broadcast
/// channel (and re-read from the log if it overflows).
const MAX_QUEUED: usize = 4096;

/// Longest edge id, region or address accepted.
const MAX_NAME: usize = 256;

/// Why a session ended.
enum End {
    /// Normal: the edge left, or was replaced.
    Quiet(String),
    /// Something went wrong; tell the edge if possible.
    Fault(String),
}

struct Session {
    ctx: Arc<Control>,
    identity: EdgeIdentity,
    session: u64,
    peer: SocketAddr,
    wr: OwnedWriteHalf,
    queue: VecDeque<ControlFrame>,
    /// The highest sequence queued (or covered by a ResetCache).
    covered: u64,
}

/// Runs the session of an edge that connected from `peer`; returns when it
/// ends.
pub(crate) async fn run(stream: TcpStream, peer: SocketAddr, ctx: Arc<Control>) {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let hello = match timeout(HELLO_TIMEOUT, read_frame::<_, ControlFrame>(&mut rd)).await {
        Ok(Ok(frame)) => check_hello(frame),
        Ok(Err(e)) => Err(describe(&e)),
        Err(_) => Err(format!("no Hello within {} s", HELLO_TIMEOUT.as_secs())),
    };
    let (identity, progress) = match hello {
        Ok(hello) => hello,
        Err(reason) => {
            tracing::warn!(%peer, %reason, "control: refusing an edge connection");
            send_error(&mut wr, &reason).await;
            return;
        }
    };
    // Subscribe before reading the log: no gap between backlog and live.
    let live = ctx.log.subscribe();
    let log = Arc::clone(&ctx.log);
    let positions = async {
        let head = log.head_seq().await?;
        let oldest = log.oldest_seq().await?;
        let backlog = log
            .read_from(catch_up::read_from_seq(progress, head))
            .await?;
        Ok::<_, edgecache::purge::PurgeLogError>((head, oldest, backlog))
    };
    let (head, oldest, backlog) = match positions.await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(%peer, error = %e, "control: cannot read the purge log");
            send_error(&mut wr, "the origin cannot read its purge log").await;
            return;
        }
    };
    let plan = catch_up::plan(progress, head, oldest, backlog);
    let membership = ctx.registry.join(identity.clone(), plan.applied);
    tracing::info!(
        edge = %identity.id, region = %identity.region, address = %identity.address, %peer,
        last_applied = progress.last_applied, head, oldest,
        catch_up = plan.frames.len(),
        "control: edge connected"
    );
    let mut queue = VecDeque::with_capacity(plan.frames.len() + 1);
    queue.push_back(ControlFrame::Welcome {
        head_seq: head,
        oldest_seq: oldest,
    });
    queue.extend(plan.frames);
    let mut session = Session {
        ctx: Arc::clone(&ctx),
        identity,
        session: membership.session,
        peer,
        wr,
        queue,
        covered: plan.covered,
    };

    let (in_tx, in_rx) = mpsc::channel(INBOUND_PER_TURN);
    let reader = tokio::spawn(async move {
        loop {
            let frame = read_frame::<_, ControlFrame>(&mut rd).await;
            let last = frame.is_err();
            if in_tx.send(frame).await.is_err() || last {
                break;
            }
        }
    });
    let end = session.run(live, in_rx, membership).await;
    reader.abort();
    ctx.registry.leave(&session.identity.id, session.session);
    let (edge, peer) = (&session.identity.id, session.peer);
    match end {
        End::Quiet(reason) => {
            tracing::info!(%edge, %peer, %reason, "control: edge session ended");
        }
        End::Fault(reason) => {
            tracing::warn!(%edge, %peer, %reason, "control: edge session closed");
            send_error(&mut session.wr, &reason).await;
        }
    }
}

/// The edge's identity and progress from its first frame.
fn check_hello(frame: ControlFrame) -> Result<(EdgeIdentity, EdgeProgress), String> {
    let ControlFrame::Hello {
        edge_id,
        region,
        public_addr,
        last_applied,
        cache_since_ms,
    } = frame
    else {
        return Err(format!("expected Hello first, got {}", frame.name()));
    };
    if edge_id.is_empty() {
        return Err("empty edge id".into());
    }
    for (what, value) in [
        ("edge id", &edge_id),
        ("region", &region),
        ("address", &public_addr),
    ] {
        if value.len() > MAX_NAME || value.chars().any(char::is_control) {
            return Err(format!(
                "{what} must be at most {MAX_NAME} bytes without control characters"
            ));
        }
    }
    Ok((
        EdgeIdentity {
            id: edge_id,
            region,
            address: public_addr,
        },
        EdgeProgress {
            last_applied,
            cache_since_ms,
        },
    ))
}

fn describe(e: &WireError) -> String {
    match e {
        WireError::Closed => "closed before a Hello".into(),
        other => other.to_string(),
    }
}

/// Best effort: tell the peer why it is being closed.
async fn send_error(wr: &mut OwnedWriteHalf, reason: &str) {
    let frame = ControlFrame::Error {
        reason: reason.to_string(),
    };
    if let Ok(bytes) = wire::encode(&frame) {
        let _ = timeout(Duration::from_secs(1), wr.write_all(&bytes)).await;
    }
    let _ = timeout(Duration::from_secs(1), wr.shutdown()).await;
}

impl Session {
    async fn run(
        &mut self,
        mut live: tokio::sync::broadcast::Receiver<PurgeRecord>,
        mut inbound: mpsc::Receiver<Result<ControlFrame, WireError>>,
        membership: super::registry::Membership,
    ) -> End {
        let super::registry::Membership { kick, mut cmds, .. } = membership;
        let mut heartbeat = interval(HEARTBEAT_EVERY);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        loop {
            if let Err(end) = self.flush().await {
                return end;
            }
            tokio::select! {
                biased;
                () = kick.notified() => {
                    return End::Fault("replaced by a newer session of the same edge".into());
                }
                frame = inbound.recv() => {
                    let Some(frame) = frame else {
                        return End::Quiet("connection closed".into());
                    };
                    last_heard = Instant::now();
                    self.ctx.registry.heard(&self.identity.id, self.session);
                    if let Err(end) = self.inbound(frame) {
                        return end;
                    }
                    for _ in 1..INBOUND_PER_TURN {
                        let Ok(frame) = inbound.try_recv() else { break };
                        if let Err(end) = self.inbound(frame) {
                            return end;
                        }
                    }
                }
                Some(cmd) = cmds.recv() => match cmd {
                    SessionCmd::DryRun { request, selector } => {
                        self.queue.push_back(ControlFrame::DryRun { request, selector });
                    }
                },
                record = live.recv(), if self.queue.len() < MAX_QUEUED => match record {
                    Ok(record) => self.queue_record(record),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::debug!(edge = %self.identity.id, missed, "control: re-reading the log");
                        if let Err(end) = self.requeue_from_log().await {
                            return end;
                        }
                    }
                    Err(RecvError::Closed) => return End::Fault("the purge log closed".into()),
                },
                _ = heartbeat.tick() => {
                    let seq = self.ctx.log.head_seq().await.unwrap_or(self.covered);
                    self.queue.push_back(ControlFrame::Heartbeat { at_ms: now_ms(), seq });
                }
                () = sleep_until(last_heard + SILENCE_LIMIT) => {
                    return End::Fault(format!("no frame from the edge for {} s", SILENCE_LIMIT.as_secs()));
                }
                () = std::future::ready(()), if !self.queue.is_empty() => {}
            }
        }
    }

    /// Writes up to [`BATCH`] queued frames.
    async fn flush(&mut self) -> Result<(), End> {
        if self.queue.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::new();
        for _ in 0..BATCH {
            let Some(frame) = self.queue.pop_front() else {
                break;
            };
            let encoded =
                wire::encode(&frame).map_err(|e| End::Fault(format!("cannot encode: {e}")))?;
            bytes.extend(encoded);
        }
        match timeout(WRITE_TIMEOUT, self.wr.write_all(&bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(End::Quiet(format!("write failed: {e}"))),
            Err(_) => Err(End::Quiet(format!(
                "the edge did not read for {} s",
                WRITE_TIMEOUT.as_secs()
            ))),
        }
    }

    fn queue_record(&mut self, record: PurgeRecord) {
        if record.seq > self.covered {
            self.covered = record.seq;
            self.queue.push_back(ControlFrame::Record(record));
        }
    }

    /// After the live channel overflowed: everything after `covered` from
    /// the log, or a ResetCache if it was compacted meanwhile.
    async fn requeue_from_log(&mut self) -> Result<(), End> {
        let records = self
            .ctx
            .log
            .read_from(self.covered)
            .await
            .map_err(|e| End::Fault(format!("cannot read the purge log: {e}")))?;
        if let Some(first) = records.first() {
            if first.seq > self.covered + 1 {
                let up_to_seq = first.seq - 1;
                self.queue.push_back(ControlFrame::ResetCache {
                    up_to_seq,
                    reason: format!(
                        "purges up to {up_to_seq} were compacted while the edge lagged behind"
                    ),
                });
                self.covered = up_to_seq;
            }
        }
        for record in records {
            self.queue_record(record);
        }
        Ok(())
    }

    fn inbound(&mut self, frame: Result<ControlFrame, WireError>) -> Result<(), End> {
        let frame = match frame {
            Ok(frame) => frame,
            Err(WireError::Closed) => {
                return Err(End::Quiet("the edge closed the connection".into()));
            }
            Err(WireError::Io(e)) => return Err(End::Quiet(format!("read failed: {e}"))),
            Err(e) => return Err(End::Fault(e.to_string())),
        };
        match frame {
            ControlFrame::Applied { seq, affected } => {
                if seq > self.covered {
                    tracing::warn!(edge = %self.identity.id, seq, sent = self.covered,
                        "control: ignoring an ack for a sequence never sent");
                    return Ok(());
                }
                self.ctx.tracker.ack(seq, &self.identity.id, affected);
                self.ctx
                    .registry
                    .applied(&self.identity.id, self.session, seq);
            }
            ControlFrame::Heartbeat { .. } => {}
            ControlFrame::DryRunResult { request, affected } => {
                self.ctx
                    .dry_runs
                    .deliver(request, &self.identity.id, affected);
            }
            ControlFrame::Error { reason } => {
                return Err(End::Quiet(format!("the edge reported an error: {reason}")));
            }
            other => {
                return Err(End::Fault(format!(
                    "unexpected {} frame from an edge",
                    other.name()
                )));
            }
        }
        Ok(())
    }
}
