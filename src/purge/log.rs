//! The purge log abstraction: an ordered, durable sequence of purge records
//! that every edge applies in order.
//!
//! The built-in backend is [`super::FileLog`]; NATS JetStream will implement
//! the same trait. Nothing here is specific to either backend.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::broadcast;

use super::{PurgeRecord, PurgeSelector};

/// The future every [`PurgeLog`] method returns: boxed, so that the trait is
/// object safe and usable as `Arc<dyn PurgeLog>`.
pub type LogFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, PurgeLogError>> + Send + 'a>>;

/// Why a purge log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PurgeLogError {
    /// Reading or writing the backing store failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, and on what.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The stored log is damaged somewhere other than a torn tail.
    #[error("purge log {location} is corrupt at byte offset {offset}: {reason}")]
    Corrupt {
        /// Where the log lives (a path, a stream name).
        location: String,
        /// Byte offset of the first bad entry.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A record could not be encoded.
    #[error("cannot encode a purge log entry: {0}")]
    Encode(String),
    /// The backend cannot take writes (an earlier failure left it unusable,
    /// or it is unreachable).
    #[error("purge log unavailable: {0}")]
    Unavailable(String),
}

/// An ordered, durable log of purges with dense sequence numbers 1, 2, 3, ...
/// that are never reused, even across restarts and compaction.
///
/// Every method is cheap to call concurrently; implementations serialise
/// appends themselves.
pub trait PurgeLog: Send + Sync {
    /// Appends a purge and returns its record (new UUID v7, next sequence
    /// number, issue time). The record is durable before the future
    /// completes, and is then published to every [`PurgeLog::subscribe`]r.
    fn append(&self, selector: PurgeSelector, soft: bool) -> LogFuture<'_, PurgeRecord>;

    /// The records with `seq > after_seq` still held (see
    /// [`PurgeLog::oldest_seq`]), in sequence order.
    fn read_from(&self, after_seq: u64) -> LogFuture<'_, Vec<PurgeRecord>>;

    /// The newest sequence number ever assigned (0 before the first purge).
    fn head_seq(&self) -> LogFuture<'_, u64>;

    /// The sequence number of the oldest record still held; everything
    /// below it was compacted away. When the log holds no records this is
    /// `head_seq + 1`. A reader that has applied less than `oldest_seq - 1`
    /// cannot catch up from the log and must drop its whole cache.
    fn oldest_seq(&self) -> LogFuture<'_, u64>;

    /// Live records appended from now on, in sequence order.
    ///
    /// To follow the log without a gap or a duplicate: subscribe first, then
    /// [`PurgeLog::read_from`] the backlog, then take live records skipping
    /// any `seq` already seen. A receiver that lags gets
    /// `RecvError::Lagged` and should re-read from its last sequence.
    fn subscribe(&self) -> broadcast::Receiver<PurgeRecord>;
}
