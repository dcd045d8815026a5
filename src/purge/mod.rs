//! Purge: the record every edge applies, in order, by sequence number.
//! The log that orders and keeps them sits behind [`PurgeLog`]; the
//! built-in file backend ([`FileLog`]) and (later) NATS JetStream implement
//! it.

pub mod bus;
mod file_format;
mod file_log;
mod log;
pub mod nats;
mod record;

pub use bus::{EdgeDirectory, EdgeEvent, EdgeInfo, EdgeProgress, PurgeSource, SourceEvent};
pub use file_log::{DEFAULT_MAX_AGE, DEFAULT_MAX_RECORDS, FileLog, FileLogConfig};
pub use log::{LogFuture, PurgeLog, PurgeLogError};
pub use record::{PurgeRecord, PurgeSelector};

/// Milliseconds since the Unix epoch, the clock of purge records and
/// heartbeats (0 before the epoch, saturating far after it).
pub fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// [`unix_ms`] of now.
pub fn now_ms() -> u64 {
    unix_ms(std::time::SystemTime::now())
}
