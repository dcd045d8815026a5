//! Purge: the record every edge applies, in order, by sequence number.
//! The log that orders and keeps them sits behind [`PurgeLog`]; the
//! built-in file backend and (later) NATS JetStream implement it.

mod record;

pub use record::{PurgeRecord, PurgeSelector};
