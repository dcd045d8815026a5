//! The NATS JetStream backend of the purge log. Nothing of NATS leaves this
//! module: the origin uses [`NatsLog`] as a [`crate::purge::PurgeLog`] and
//! an [`crate::purge::EdgeDirectory`]; an edge follows the log through
//! [`NatsSource`], a [`crate::purge::PurgeSource`].
//!
//! Layout on the bus (prefix `edgecache.purge` by default):
//! - stream `EDGECACHE_PURGE` on `<prefix>.log`: one message per purge,
//!   the bincode [`crate::purge::PurgeRecord`] (its sequence is the stream
//!   sequence), `Nats-Msg-Id` = the purge's UUID; bounded by age and count;
//! - one durable pull consumer per edge, named after the edge id, explicit
//!   acks, one record in flight (so records apply in order);
//! - `<prefix>.edges.<edge>`: heartbeats; `<prefix>.applied.<edge>`:
//!   per-record acks with affected counts; `<prefix>.dryrun.<edge>`:
//!   dry-run requests (request / reply).

mod connect;
mod log;
mod settings;
mod source;
mod wire_msg;

pub use log::NatsLog;
pub use settings::{
    NatsSettings, PASSWORD_ENV, PurgeBackend, PurgeBusArgs, PurgeBusSettings, TOKEN_ENV,
};
pub use source::NatsSource;
