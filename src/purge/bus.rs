//! Backend-neutral interfaces for a purge log that edges follow by
//! themselves (a message bus such as NATS JetStream) instead of through the
//! origin's control listener.
//!
//! - Origin side, beside [`super::PurgeLog`]: an [`EdgeDirectory`] tells
//!   the control listener which edges follow the log, how far each has
//!   applied it, and runs dry runs on them.
//! - Edge side: a [`PurgeSource`] hands the edge the records to apply, in
//!   order, and takes its acknowledgements.
//!
//! Nothing here names a particular bus.

use std::time::Duration;

use tokio::sync::broadcast;

use super::{LogFuture, PurgeRecord, PurgeSelector};

/// Who an edge is, as it announces itself on the bus.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EdgeInfo {
    /// The edge's id (unique per edge).
    pub id: String,
    /// Its region.
    pub region: String,
    /// Its public address.
    pub address: String,
}

/// How far one edge has applied the log, as the backend itself tracks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeProgress {
    /// The edge.
    pub edge: EdgeInfo,
    /// The highest sequence it acknowledged (everything up to it applied).
    pub applied: u64,
    /// Records held for it and not yet acknowledged.
    pub pending: u64,
    /// Milliseconds since it last acknowledged or fetched anything, when
    /// known.
    pub idle_ms: Option<u64>,
}

/// Something an edge said on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeEvent {
    /// The edge is alive and has applied everything up to `applied`.
    Heartbeat {
        /// Who.
        edge: EdgeInfo,
        /// Its last applied sequence.
        applied: u64,
    },
    /// The edge applied one record.
    Applied {
        /// The edge's id.
        edge_id: String,
        /// The record's sequence.
        seq: u64,
        /// Entries removed or marked stale.
        affected: u64,
    },
}

/// The origin's view of the edges that follow a bus-backed log directly.
pub trait EdgeDirectory: Send + Sync {
    /// Heartbeats and per-record acknowledgements as they arrive.
    fn events(&self) -> broadcast::Receiver<EdgeEvent>;

    /// Every edge the backend keeps progress for.
    fn progress(&self) -> LogFuture<'_, Vec<EdgeProgress>>;

    /// Asks one edge how many entries `selector` would affect; `None` when
    /// it did not answer within `within`.
    fn dry_run(
        &self,
        edge_id: &str,
        selector: PurgeSelector,
        within: Duration,
    ) -> LogFuture<'_, Option<u64>>;
}

/// What a [`PurgeSource`] hands the edge next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceEvent {
    /// The bus answered: the edge is in contact with the log, whose newest
    /// sequence is `head_seq` (as far as the source knows).
    Contact {
        /// The log's newest sequence.
        head_seq: u64,
    },
    /// The bus did not answer in time; the source keeps trying.
    Lost {
        /// What failed.
        reason: String,
    },
    /// The next record to apply, in order; answer with
    /// [`PurgeSource::applied`] before asking for the next event.
    Record(PurgeRecord),
    /// Records up to `up_to_seq` cannot concern this edge's cache (they
    /// predate it): count them as applied without applying them.
    Advance {
        /// The sequence now counted as applied.
        up_to_seq: u64,
    },
    /// Records this edge needs are no longer held: drop the whole cache,
    /// then count `up_to_seq` as applied.
    Reset {
        /// The sequence the reset stands for.
        up_to_seq: u64,
        /// Why.
        reason: String,
    },
    /// The origin asks how many entries `selector` would affect; answer
    /// with [`PurgeSource::dry_run_result`].
    DryRun {
        /// Correlates the answer.
        request: u64,
        /// The selector.
        selector: PurgeSelector,
    },
}

/// The edge's end of a bus-backed purge log.
pub trait PurgeSource: Send {
    /// The next event. An error means the source is unusable: open a new
    /// one (after a backoff).
    fn next(&mut self) -> LogFuture<'_, SourceEvent>;

    /// The record `seq` (the last [`SourceEvent::Record`]) was applied,
    /// affecting `affected` entries: acknowledge it.
    fn applied(&mut self, seq: u64, affected: u64) -> LogFuture<'_, ()>;

    /// Answers the dry run `request`.
    fn dry_run_result(&mut self, request: u64, affected: u64) -> LogFuture<'_, ()>;
}
