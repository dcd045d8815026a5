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
