//! The edge's side of the NATS backend: [`NatsSource`], a durable pull
//! consumer named after the edge, with explicit acks and one record in
//! flight, so that records arrive in stream order and a restarted or
//! partitioned edge resumes where its consumer stopped.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::Subject;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::{self, Message};
use futures_util::StreamExt;
use tokio::task::JoinHandle;
use tokio::time::{Interval, MissedTickBehavior};

use super::connect::{self, Subjects, edge_token, unavailable};
use super::settings::NatsSettings;
use super::wire_msg::{self, Beat, Report};
use crate::purge::bus::{EdgeInfo, PurgeSource, SourceEvent};
use crate::purge::{LogFuture, PurgeLogError, PurgeRecord, PurgeSelector};

/// How often the edge sends a heartbeat and checks its consumer.
const BEAT_EVERY: Duration = Duration::from_secs(1);

/// Request timeout for the consumer's information.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Idle heartbeat asked of the server on pull requests.
const PULL_HEARTBEAT: Duration = Duration::from_secs(2);

/// Expiry of one pull request.
const PULL_EXPIRES: Duration = Duration::from_secs(10);

/// The edge's end of the purge log on NATS JetStream.
pub struct NatsSource {
    client: async_nats::Client,
    subjects: Subjects,
    token: String,
    edge: EdgeInfo,
    consumer: PullConsumer,
    messages: pull::Stream,
    dry_runs: async_nats::Subscriber,
    /// The last sequence applied (or counted as applied).
    applied: u64,
    /// The same, for the heartbeat task.
    shared_applied: Arc<AtomicU64>,
    /// Publishes heartbeats, whatever the consumer is doing.
    heartbeats: JoinHandle<()>,
    /// When the edge's cache began filling (ms since the epoch).
    cache_since_ms: u64,
    /// Whether the consumer had delivered anything when opened.
    consumer_used: bool,
    /// The consumer's ack floor when opened.
    floor_at_open: u64,
    /// The record handed out, waiting for [`PurgeSource::applied`].
    held: Option<(Message, u64)>,
    /// A record to hand out after the Reset just returned.
    queued: Option<(Message, PurgeRecord)>,
    replies: HashMap<u64, Subject>,
    next_request: u64,
    beat: Interval,
}

impl std::fmt::Debug for NatsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSource")
            .field("edge", &self.edge.id)
            .field("applied", &self.applied)
            .finish_non_exhaustive()
    }
}

fn start_time(ms: u64) -> time::OffsetDateTime {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

impl NatsSource {
    /// Connects as `edge`, which has applied everything up to
    /// `last_applied` and whose cache began filling at `cache_since_ms`,
    /// and binds (creating it if needed) its durable consumer. Fails when
    /// the bus or the stream is not there (yet).
    pub async fn open(
        settings: &NatsSettings,
        edge: EdgeInfo,
        last_applied: u64,
        cache_since_ms: u64,
    ) -> Result<NatsSource, PurgeLogError> {
        settings.validate().map_err(PurgeLogError::Unavailable)?;
        let subjects = Subjects::new(settings);
        let token = edge_token(&edge.id);
        let client = connect::connect(settings, &format!("edgecache-edge {}", edge.id)).await?;
        let js = connect::jetstream(client.clone(), REQUEST_TIMEOUT);
        let stream = js
            .get_stream(&settings.stream)
            .await
            .map_err(|e| unavailable(&format!("purge stream {}", settings.stream), e))?;
        let config = pull::Config {
            durable_name: Some(token.clone()),
            description: Some(wire_msg::description_of_edge(&edge)),
            deliver_policy: DeliverPolicy::ByStartTime {
                start_time: start_time(cache_since_ms),
            },
            ack_policy: AckPolicy::Explicit,
            ack_wait: settings.ack_wait.0,
            max_ack_pending: 1,
            filter_subject: subjects.log(),
            ..pull::Config::default()
        };
        let consumer: PullConsumer = stream
            .get_or_create_consumer(&token, config)
            .await
            .map_err(|e| unavailable(&format!("consumer {token}"), e))?;
        let info = consumer.cached_info();
        let consumer_used = info.delivered.stream_sequence > 0;
        let floor_at_open = info.ack_floor.stream_sequence;
        let messages = consumer
            .stream()
            .max_messages_per_batch(16)
            .heartbeat(PULL_HEARTBEAT)
            .expires(PULL_EXPIRES)
            .messages()
            .await
            .map_err(|e| unavailable("pull from the consumer", e))?;
        let dry_runs = client
            .subscribe(subjects.dry_run(&token))
            .await
            .map_err(|e| unavailable("subscribe to dry runs", e))?;
        let shared_applied = Arc::new(AtomicU64::new(last_applied));
        let heartbeats = tokio::spawn(heartbeats(
            client.clone(),
            subjects.heartbeat(&token),
            edge.clone(),
            Arc::clone(&shared_applied),
        ));
        let mut beat = tokio::time::interval(BEAT_EVERY);
        beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tracing::info!(edge = %edge.id, consumer = %token, floor = floor_at_open,
            pending = info.num_pending, "following the purge log on NATS");
        Ok(NatsSource {
            client,
            subjects,
            token,
            edge,
            consumer,
            messages,
            dry_runs,
            applied: last_applied,
            shared_applied,
            heartbeats,
            cache_since_ms,
            consumer_used,
            floor_at_open,
            held: None,
            queued: None,
            replies: HashMap::new(),
            next_request: 0,
            beat,
        })
    }

    /// What a delivered message means for this edge (None: nothing to do).
    async fn delivered(&mut self, message: Message) -> Option<SourceEvent> {
        let seq = message.info().map_or(0, |i| i.stream_sequence);
        if seq <= self.applied {
            // Delivered again (an ack was lost): it was applied already.
            ack(&message).await;
            return None;
        }
        let Ok(mut record) = crate::wire::decode_body::<PurgeRecord>(&message.payload) else {
            tracing::warn!(
                seq,
                "NATS purge log: skipping a message that is not a purge record"
            );
            ack(&message).await;
            self.set_applied(seq);
            return Some(SourceEvent::Advance { up_to_seq: seq });
        };
        record.seq = seq;
        if self.applied == 0 && record.issued_at_ms < self.cache_since_ms {
            // Issued before this cache began: it cannot concern it.
            ack(&message).await;
            self.set_applied(seq);
            return Some(SourceEvent::Advance { up_to_seq: seq });
        }
        let after = if self.applied > 0 {
            Some(self.applied)
        } else if self.consumer_used {
            Some(self.floor_at_open)
        } else {
            None
        };
        if let Some(after) = after.filter(|a| seq > a + 1) {
            // With one record in flight, a gap means records left the
            // stream (retention) before this edge applied them.
            let up_to_seq = seq - 1;
            self.set_applied(up_to_seq);
            self.queued = Some((message, record));
            return Some(SourceEvent::Reset {
                up_to_seq,
                reason: format!(
                    "purges {}..={up_to_seq} left the stream before this edge applied them",
                    after + 1
                ),
            });
        }
        self.held = Some((message, seq));
        Some(SourceEvent::Record(record))
    }

    /// Counts `seq` as applied.
    fn set_applied(&mut self, seq: u64) {
        self.applied = seq;
        self.shared_applied.store(seq, Ordering::Relaxed);
    }

    /// The consumer's state: contact, or not.
    async fn check_contact(&mut self) -> SourceEvent {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.consumer.get_info()).await {
            Ok(Ok(info)) => SourceEvent::Contact {
                head_seq: info.delivered.stream_sequence + info.num_pending,
            },
            Ok(Err(e)) => SourceEvent::Lost {
                reason: format!("NATS: consumer state: {e}"),
            },
            Err(_) => SourceEvent::Lost {
                reason: format!("NATS: no answer within {REQUEST_TIMEOUT:?}"),
            },
        }
    }

    async fn next_event(&mut self) -> Result<SourceEvent, PurgeLogError> {
        if let Some((message, record)) = self.queued.take() {
            self.held = Some((message, record.seq));
            return Ok(SourceEvent::Record(record));
        }
        loop {
            tokio::select! {
                message = self.messages.next() => match message {
                    Some(Ok(message)) => {
                        if let Some(event) = self.delivered(message).await {
                            return Ok(event);
                        }
                    }
                    Some(Err(e)) => {
                        return Ok(SourceEvent::Lost { reason: format!("NATS: pull: {e}") });
                    }
                    None => return Err(unavailable("pull", "the consumer's message stream ended")),
                },
                request = self.dry_runs.next() => {
                    let Some(request) = request else {
                        return Err(unavailable("dry runs", "subscription ended"));
                    };
                    let Some(reply) = request.reply else { continue };
                    let Some(selector) = wire_msg::decode::<PurgeSelector>(&request.payload) else {
                        continue;
                    };
                    self.next_request += 1;
                    self.replies.insert(self.next_request, reply);
                    return Ok(SourceEvent::DryRun { request: self.next_request, selector });
                }
                _ = self.beat.tick() => return Ok(self.check_contact().await),
            }
        }
    }

    async fn acknowledge(&mut self, seq: u64, affected: u64) -> Result<(), PurgeLogError> {
        if let Some((message, held)) = self.held.take() {
            if held == seq {
                ack(&message).await;
            } else {
                self.held = Some((message, held));
            }
        }
        self.set_applied(self.applied.max(seq));
        let report = Report {
            edge_id: self.edge.id.clone(),
            seq,
            affected,
        };
        let payload = wire_msg::encode(&report)?;
        if let Err(e) = self
            .client
            .publish(self.subjects.applied(&self.token), payload.into())
            .await
        {
            tracing::debug!(error = %e, "NATS: cannot report an applied purge");
        }
        Ok(())
    }

    async fn answer(&mut self, request: u64, affected: u64) -> Result<(), PurgeLogError> {
        let Some(reply) = self.replies.remove(&request) else {
            return Ok(());
        };
        let payload = wire_msg::encode(&affected)?;
        self.client
            .publish(reply, payload.into())
            .await
            .map_err(|e| unavailable("answer a dry run", e))
    }
}

impl Drop for NatsSource {
    fn drop(&mut self) {
        self.heartbeats.abort();
    }
}

/// Publishes this edge's heartbeat every [`BEAT_EVERY`].
async fn heartbeats(
    client: async_nats::Client,
    subject: String,
    edge: EdgeInfo,
    applied: Arc<AtomicU64>,
) {
    let mut tick = tokio::time::interval(BEAT_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let beat = Beat {
            edge: edge.clone(),
            applied: applied.load(Ordering::Relaxed),
        };
        if let Ok(payload) = wire_msg::encode(&beat) {
            if let Err(e) = client.publish(subject.clone(), payload.into()).await {
                tracing::debug!(error = %e, "NATS: cannot publish a heartbeat");
            }
        }
    }
}

/// Acknowledges a message; a lost ack only means it comes again (and is
/// then recognised as applied).
async fn ack(message: &jetstream::Message) {
    if let Err(e) = message.ack().await {
        tracing::debug!(error = %e, "NATS: cannot acknowledge a purge record");
    }
}

impl PurgeSource for NatsSource {
    fn next(&mut self) -> LogFuture<'_, SourceEvent> {
        Box::pin(self.next_event())
    }

    fn applied(&mut self, seq: u64, affected: u64) -> LogFuture<'_, ()> {
        Box::pin(self.acknowledge(seq, affected))
    }

    fn dry_run_result(&mut self, request: u64, affected: u64) -> LogFuture<'_, ()> {
        Box::pin(self.answer(request, affected))
    }
}
