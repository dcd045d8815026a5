//! The origin's side of the NATS backend: [`NatsLog`] appends purges to a
//! JetStream stream (publish-acknowledged, de-duplicated by the purge's
//! UUID), reads it back for edges on the built-in control protocol, and is
//! the [`EdgeDirectory`] of the edges that consume the stream directly.

use crate::purge::now_ms;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::{self, message::PublishMessage};
use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::connect::{self, Subjects, edge_token, unavailable};
use super::settings::NatsSettings;
use super::wire_msg::{self, Beat, Report};
use crate::purge::bus::{EdgeDirectory, EdgeEvent, EdgeProgress};
use crate::purge::{LogFuture, PurgeLog, PurgeLogError, PurgeRecord, PurgeSelector};

/// Live records buffered for slow subscribers.
const LIVE_CAPACITY: usize = 1024;

/// Edge events buffered for the control listener.
const EVENT_CAPACITY: usize = 4096;

/// Pause before the follower re-creates its consumer after an error.
const FOLLOW_RETRY: Duration = Duration::from_millis(500);

/// Longest a backlog read may take.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Attempts (a second apart) to get the stream ready at start.
const SETUP_ATTEMPTS: u32 = 30;

/// Request timeout for stream and consumer information.
const INFO_TIMEOUT: Duration = Duration::from_secs(3);

/// The purge log on a NATS JetStream stream.
#[derive(Clone)]
pub struct NatsLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for NatsLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsLog")
            .field("stream", &self.inner.settings.stream)
            .field("urls", &self.inner.settings.urls)
            .finish_non_exhaustive()
    }
}

struct Inner {
    settings: NatsSettings,
    subjects: Subjects,
    client: async_nats::Client,
    js: jetstream::Context,
    live: broadcast::Sender<PurgeRecord>,
    events: broadcast::Sender<EdgeEvent>,
    /// Issue time of the last purge appended here (kept increasing).
    last_issued_ms: Mutex<u64>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Position of the stream: (oldest held, newest).
async fn positions(js: &jetstream::Context, name: &str) -> Result<(u64, u64), PurgeLogError> {
    let info = async {
        let stream = js
            .get_stream_no_info(name)
            .await
            .map_err(|e| e.to_string())?;
        stream.get_info().await.map_err(|e| e.to_string())
    };
    let info = tokio::time::timeout(INFO_TIMEOUT, info)
        .await
        .map_err(|_| unavailable("stream info", "timed out"))?
        .map_err(|e| unavailable("stream info", e))?;
    let state = info.state;
    let head = state.last_sequence;
    let oldest = if state.messages == 0 {
        head + 1
    } else {
        state.first_sequence
    };
    Ok((oldest, head))
}

/// A record from a stream message: the stream sequence is its sequence.
fn record_of(message: &jetstream::Message) -> Option<PurgeRecord> {
    let seq = message.info().ok()?.stream_sequence;
    match crate::wire::decode_body::<PurgeRecord>(&message.payload) {
        Ok(mut record) => {
            record.seq = seq;
            Some(record)
        }
        Err(e) => {
            tracing::warn!(seq, error = %e, "NATS purge log: skipping a message that is not a purge record");
            None
        }
    }
}

/// An ordered (gap-detecting, self-healing) consumer from `start_seq`.
async fn ordered_from(
    js: &jetstream::Context,
    name: &str,
    subject: &str,
    start_seq: u64,
) -> Result<pull::Ordered, PurgeLogError> {
    let stream = js
        .get_stream_no_info(name)
        .await
        .map_err(|e| unavailable("get the purge stream", e))?;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: subject.to_string(),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: start_seq.max(1),
            },
            ..pull::OrderedConfig::default()
        })
        .await
        .map_err(|e| unavailable("create a reader", e))?;
    consumer
        .messages()
        .await
        .map_err(|e| unavailable("read the purge stream", e))
}

/// Forwards every record appended after `head` to `live`, for as long as
/// the log lives, re-creating its consumer after errors.
async fn follow(
    js: jetstream::Context,
    name: String,
    subject: String,
    head: u64,
    live: broadcast::Sender<PurgeRecord>,
) {
    let mut next = head + 1;
    loop {
        match ordered_from(&js, &name, &subject, next).await {
            Ok(mut messages) => {
                while let Some(message) = messages.next().await {
                    match message {
                        Ok(message) => {
                            let seq = message.info().map_or(0, |i| i.stream_sequence);
                            if seq < next {
                                continue;
                            }
                            next = seq + 1;
                            if let Some(record) = record_of(&message) {
                                let _ = live.send(record);
                            }
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "NATS purge log: follower error");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "NATS purge log: cannot follow the stream"),
        }
        tokio::time::sleep(FOLLOW_RETRY).await;
    }
}

/// Turns edges' heartbeats and acknowledgements into [`EdgeEvent`]s.
async fn listen(
    client: async_nats::Client,
    subjects: Subjects,
    events: broadcast::Sender<EdgeEvent>,
) {
    loop {
        let subs = async {
            let beats = client.subscribe(subjects.heartbeats()).await?;
            let acks = client.subscribe(subjects.applied_all()).await?;
            Ok::<_, async_nats::SubscribeError>((beats, acks))
        };
        let (mut beats, mut acks) = match subs.await {
            Ok(subs) => subs,
            Err(e) => {
                tracing::debug!(error = %e, "NATS purge log: cannot subscribe to edges");
                tokio::time::sleep(FOLLOW_RETRY).await;
                continue;
            }
        };
        loop {
            let event = tokio::select! {
                beat = beats.next() => match beat {
                    Some(m) => wire_msg::decode::<Beat>(&m.payload).map(|b| EdgeEvent::Heartbeat {
                        edge: b.edge,
                        applied: b.applied,
                    }),
                    None => {
                        tracing::info!("NATS purge log: heartbeat subscription ended; resubscribing");
                        break;
                    }
                },
                ack = acks.next() => match ack {
                    Some(m) => wire_msg::decode::<Report>(&m.payload).map(|r| EdgeEvent::Applied {
                        edge_id: r.edge_id,
                        seq: r.seq,
                        affected: r.affected,
                    }),
                    None => break,
                },
            };
            if let Some(event) = event {
                let _ = events.send(event);
            }
        }
        tokio::time::sleep(FOLLOW_RETRY).await;
    }
}

impl NatsLog {
    /// Connects, creates (or updates) the stream, and starts following it.
    pub async fn connect(settings: &NatsSettings) -> Result<NatsLog, PurgeLogError> {
        settings.validate().map_err(PurgeLogError::Unavailable)?;
        let subjects = Subjects::new(settings);
        let client = connect::connect(settings, "edgecache-origin").await?;
        let js = connect::jetstream(client.clone(), settings.publish_timeout.0);
        // A cluster that is just starting needs a moment to elect its
        // JetStream leaders: retry for a bounded time.
        let mut attempt = 0u32;
        let head = loop {
            attempt += 1;
            let ready = async {
                connect::ensure_stream(&js, settings, &subjects).await?;
                positions(&js, &settings.stream).await
            };
            match ready.await {
                Ok((_, head)) => break head,
                Err(e) if attempt < SETUP_ATTEMPTS => {
                    tracing::info!(error = %e, attempt, "NATS purge log not ready yet; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let (live, _) = broadcast::channel(LIVE_CAPACITY);
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let tasks = vec![
            tokio::spawn(follow(
                js.clone(),
                settings.stream.clone(),
                subjects.log(),
                head,
                live.clone(),
            )),
            tokio::spawn(listen(client.clone(), subjects.clone(), events.clone())),
        ];
        tracing::info!(stream = %settings.stream, urls = ?settings.urls, head,
            "purge log on NATS JetStream");
        Ok(NatsLog {
            inner: Arc::new(Inner {
                settings: settings.clone(),
                subjects,
                client,
                js,
                live,
                events,
                last_issued_ms: Mutex::new(0),
                tasks,
            }),
        })
    }

    /// Publishes `record` (its `seq` is ignored) and returns it with the
    /// stream sequence. A publish whose acknowledgement does not come is
    /// retried with the same message id (the purge's UUID), so the stream
    /// stores it once however many attempts reach it.
    pub async fn publish(&self, mut record: PurgeRecord) -> Result<PurgeRecord, PurgeLogError> {
        let inner = &self.inner;
        record.seq = 0;
        let payload =
            crate::wire::encode_body(&record).map_err(|e| PurgeLogError::Encode(e.to_string()))?;
        let payload = bytes::Bytes::from(payload);
        let msg_id = record.id.to_string();
        let timeout = inner.settings.publish_timeout.0;
        let attempts = inner.settings.publish_attempts;
        // Fast failures (no stream leader during an election) keep retrying
        // for the whole budget, not just `attempts` times.
        let budget = timeout * attempts;
        let started = tokio::time::Instant::now();
        let mut last_error = String::new();
        let mut attempt = 0u32;
        while attempt < attempts || started.elapsed() < budget {
            attempt += 1;
            let publish = PublishMessage::build()
                .payload(payload.clone())
                .message_id(msg_id.clone());
            let acked = async {
                let ack = inner
                    .js
                    .send_publish(inner.subjects.log(), publish)
                    .await
                    .map_err(|e| e.to_string())?;
                ack.await.map_err(|e| e.to_string())
            };
            match tokio::time::timeout(timeout, acked).await {
                Ok(Ok(ack)) => {
                    if ack.duplicate || attempt > 1 {
                        tracing::info!(id = %record.id, seq = ack.sequence, attempt,
                            duplicate = ack.duplicate, "NATS purge log: publish retried");
                    }
                    record.seq = ack.sequence;
                    return Ok(record);
                }
                Ok(Err(e)) => last_error = e,
                Err(_) => last_error = format!("no acknowledgement within {timeout:?}"),
            }
            tracing::warn!(id = %record.id, attempt, error = %last_error,
                "NATS purge log: publish not acknowledged; retrying with the same id");
            let pause = Duration::from_millis(100 * u64::from(attempt.min(10)));
            tokio::time::sleep(pause).await;
        }
        Err(PurgeLogError::Unavailable(format!(
            "NATS: publish not acknowledged after {attempt} attempts: {last_error}"
        )))
    }

    async fn read_records(&self, after_seq: u64) -> Result<Vec<PurgeRecord>, PurgeLogError> {
        let inner = &self.inner;
        let (oldest, head) = positions(&inner.js, &inner.settings.stream).await?;
        if after_seq >= head {
            return Ok(Vec::new());
        }
        let start = (after_seq + 1).max(oldest);
        let read = async {
            let mut messages = ordered_from(
                &inner.js,
                &inner.settings.stream,
                &inner.subjects.log(),
                start,
            )
            .await?;
            let mut records = Vec::new();
            while let Some(message) = messages.next().await {
                let message = message.map_err(|e| unavailable("read the purge stream", e))?;
                let seq = message.info().map_or(0, |i| i.stream_sequence);
                if let Some(record) = record_of(&message) {
                    records.push(record);
                }
                if seq >= head {
                    break;
                }
            }
            Ok(records)
        };
        tokio::time::timeout(READ_TIMEOUT, read)
            .await
            .map_err(|_| unavailable("read the purge stream", "timed out"))?
    }

    async fn edge_progress(&self) -> Result<Vec<EdgeProgress>, PurgeLogError> {
        let inner = &self.inner;
        let list = async {
            let stream = inner
                .js
                .get_stream_no_info(&inner.settings.stream)
                .await
                .map_err(|e| unavailable("get the purge stream", e))?;
            let mut consumers = stream.consumers();
            let mut out = Vec::new();
            while let Some(info) = consumers.next().await {
                let info = info.map_err(|e| unavailable("list consumers", e))?;
                let Some(edge) = info
                    .config
                    .description
                    .as_deref()
                    .and_then(wire_msg::edge_of_description)
                else {
                    continue;
                };
                let now = time::OffsetDateTime::now_utc();
                let idle_ms = [info.ack_floor.last_active, info.delivered.last_active]
                    .into_iter()
                    .flatten()
                    .max()
                    .map(|t| u64::try_from((now - t).whole_milliseconds()).unwrap_or(0));
                out.push(EdgeProgress {
                    edge,
                    applied: info.ack_floor.stream_sequence,
                    pending: info.num_pending + info.num_ack_pending as u64,
                    idle_ms,
                });
            }
            Ok(out)
        };
        tokio::time::timeout(INFO_TIMEOUT * 2, list)
            .await
            .map_err(|_| unavailable("list consumers", "timed out"))?
    }

    async fn ask_dry_run(
        &self,
        edge_id: &str,
        selector: PurgeSelector,
        within: Duration,
    ) -> Result<Option<u64>, PurgeLogError> {
        let inner = &self.inner;
        let payload = wire_msg::encode(&selector)?;
        let subject = inner.subjects.dry_run(&edge_token(edge_id));
        let request = inner.client.request(subject, payload.into());
        match tokio::time::timeout(within, request).await {
            Ok(Ok(reply)) => Ok(wire_msg::decode::<u64>(&reply.payload)),
            Ok(Err(e)) => {
                tracing::debug!(edge = edge_id, error = %e, "NATS dry run: no answer");
                Ok(None)
            }
            Err(_) => Ok(None),
        }
    }

    fn next_issue_ms(&self) -> u64 {
        let mut last = self
            .inner
            .last_issued_ms
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *last = now_ms().max(*last);
        *last
    }
}

impl PurgeLog for NatsLog {
    fn append(&self, selector: PurgeSelector, soft: bool) -> LogFuture<'_, PurgeRecord> {
        let record = PurgeRecord {
            id: uuid::Uuid::now_v7(),
            seq: 0,
            issued_at_ms: self.next_issue_ms(),
            selector,
            soft,
        };
        Box::pin(self.publish(record))
    }

    fn read_from(&self, after_seq: u64) -> LogFuture<'_, Vec<PurgeRecord>> {
        Box::pin(self.read_records(after_seq))
    }

    fn head_seq(&self) -> LogFuture<'_, u64> {
        Box::pin(async {
            let (_, head) = positions(&self.inner.js, &self.inner.settings.stream).await?;
            Ok(head)
        })
    }

    fn oldest_seq(&self) -> LogFuture<'_, u64> {
        Box::pin(async {
            let (oldest, _) = positions(&self.inner.js, &self.inner.settings.stream).await?;
            Ok(oldest)
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<PurgeRecord> {
        self.inner.live.subscribe()
    }
}

impl EdgeDirectory for NatsLog {
    fn events(&self) -> broadcast::Receiver<EdgeEvent> {
        self.inner.events.subscribe()
    }

    fn progress(&self) -> LogFuture<'_, Vec<EdgeProgress>> {
        Box::pin(self.edge_progress())
    }

    fn dry_run(
        &self,
        edge_id: &str,
        selector: PurgeSelector,
        within: Duration,
    ) -> LogFuture<'_, Option<u64>> {
        let edge_id = edge_id.to_string();
        Box::pin(async move { self.ask_dry_run(&edge_id, selector, within).await })
    }
}
